"""False-reproduction rate at the boundary when a claim looks after every seed: fixed-n tests against e-processes.

Each draw is a sequence of up to 30 seeds for which the claim "greater than thr" is false by the
smallest margin. A look after every seed from ``min_seeds(alpha)`` to 30, stopping at the first
rejection, is how a batched run uses a test; the rate is the fraction of draws that ever come out
reproduced. Fixed-n rows use the numbers repro.stats.decide uses (scipy's one-sample t; the exact
sign test :func:`repro.stats.sign_test`), vectorised over draws; sequential rows run the real
:func:`repro.sequential.sequential_path` and :func:`repro.sequential.decide_sequential` per draw.
The two "one look at n = 30" rows are the fixed tests used as designed, for contrast. The
sub-Gaussian rows below them break the method's assumption (sd = 2 sigma; t with 2 degrees of
freedom, infinite variance) and show what the spread check of :func:`repro.sequential.decide_sequential`
leaves through at its default level (0.1), at 0.01 and switched off. A second table gives how often the
check voids a decision on data that meet the assumption (sd = sigma, the edge, and sd = 0.8 sigma; on
the boundary, and one sigma above it, where the claim is true).

Run (the table in docs/statistics.md came from this)::

    .venv/bin/python benchmarks/bench_sequential_calibration.py
"""

from __future__ import annotations

import argparse
import datetime
import math
import time

import numpy as np
from scipy import stats

from repro.claim import Greater, min_seeds
from repro.sequential import SPREAD_LEVEL, decide_sequential, sequential_path
from repro.stats import sign_test

MAX_SEEDS = 30
ALPHAS = (0.05, 0.01)
BETA = (2.0, 5.0)  # bounded data on [0, 1], mean 2/7


def normal(rng: np.random.Generator, reps: int) -> tuple[np.ndarray, float]:
    return rng.normal(0.0, 1.0, (reps, MAX_SEEDS)), 0.0


def beta(rng: np.random.Generator, reps: int) -> tuple[np.ndarray, float]:
    return rng.beta(*BETA, (reps, MAX_SEEDS)), BETA[0] / sum(BETA)


def normal_sd(sd: float, mean: float = 0.0):
    def draw(rng: np.random.Generator, reps: int) -> tuple[np.ndarray, float]:
        return rng.normal(mean, sd, (reps, MAX_SEEDS)), 0.0

    return draw


def t2(rng: np.random.Generator, reps: int) -> tuple[np.ndarray, float]:
    return rng.standard_t(2, (reps, MAX_SEEDS)), 0.0


def fixed(kind: str, peek: bool):
    def rate(x: np.ndarray, thr: float, alpha: float) -> float:
        rejected = np.zeros(x.shape[0], dtype=bool)
        for n in range(min_seeds(alpha), MAX_SEEDS + 1) if peek else [MAX_SEEDS]:
            if kind == "t":
                p = stats.ttest_1samp(x[:, :n], thr, axis=1, alternative="greater").pvalue
            else:
                p = np.array([sign_test(int(k), n)[0] for k in (x[:, :n] > thr).sum(axis=1)])
            rejected |= p < alpha
        return float(rejected.mean())

    return rate


def outcomes(method: str, x: np.ndarray, thr: float, alpha: float, spread_level: float, **options) -> list[str]:
    claim = Greater(test="greater", threshold=thr, alpha=alpha)
    return [
        decide_sequential(sequential_path(claim, {"main": row}, method=method, **options), alpha,
                          spread_level=spread_level).outcome
        for row in x
    ]  # fmt: skip


def sequential(method: str, spread_level: float = SPREAD_LEVEL, **options):
    def rate(x: np.ndarray, thr: float, alpha: float) -> float:
        return float(np.mean([o == "reproduced" for o in outcomes(method, x, thr, alpha, spread_level, **options)]))

    return rate


ROWS = [
    ("fixed-n t-test (ttest_1samp), look after every seed", "normal, mean = thr", normal, fixed("t", True)),
    ("fixed-n sign test, look after every seed", "normal, median = thr", normal, fixed("sign", True)),
    ("sequential sign", "normal, median = thr", normal, sequential("sign")),
    ("sequential betting, bounds [0, 1]", "Beta(2, 5), mean = thr", beta, sequential("betting", bounds=(0.0, 1.0))),
    ("sequential subgaussian, sigma = 1", "normal(sd 1), mean = thr", normal, sequential("subgaussian", sigma=1.0)),
    ("*fixed-n t-test, one look at n = 30*", "normal, mean = thr", normal, fixed("t", False)),
    ("*fixed-n sign test, one look at n = 30*", "normal, median = thr", normal, fixed("sign", False)),
    ("sequential subgaussian, sigma = 1, no spread check", "normal(sd 2), mean = thr", normal_sd(2.0),
     sequential("subgaussian", spread_level=0.0, sigma=1.0)),
    ("sequential subgaussian, sigma = 1, spread check at 0.01", "normal(sd 2), mean = thr", normal_sd(2.0),
     sequential("subgaussian", spread_level=0.01, sigma=1.0)),
    (f"sequential subgaussian, sigma = 1, spread check at {SPREAD_LEVEL:g} (default)", "normal(sd 2), mean = thr",
     normal_sd(2.0), sequential("subgaussian", sigma=1.0)),
    ("sequential subgaussian, sigma = 1, no spread check", "t(2), mean = thr", t2,
     sequential("subgaussian", spread_level=0.0, sigma=1.0)),
    ("sequential subgaussian, sigma = 1, spread check at 0.01", "t(2), mean = thr", t2,
     sequential("subgaussian", spread_level=0.01, sigma=1.0)),
    (f"sequential subgaussian, sigma = 1, spread check at {SPREAD_LEVEL:g} (default)", "t(2), mean = thr", t2,
     sequential("subgaussian", sigma=1.0)),
]  # fmt: skip

# data that meet sigma = 1: how often the spread check voids a decision (reproduced or not)
VOID_ROWS = [
    ("normal(sd 1), mean = thr", normal_sd(1.0)),
    ("normal(sd 0.8), mean = thr", normal_sd(0.8)),
    ("normal(sd 1), mean = thr + 1 (the claim holds)", normal_sd(1.0, 1.0)),
    ("normal(sd 0.8), mean = thr + 1 (the claim holds)", normal_sd(0.8, 1.0)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20_261_201)
    args = parser.parse_args()
    start = time.perf_counter()
    header = " | ".join(f"α={a:g}: rate (SE)" for a in ALPHAS)
    print(f"| procedure | data | {header} |\n|---|---|" + "---|" * len(ALPHAS))
    for name, data, draw, rate in ROWS:
        cells = []
        for i, alpha in enumerate(ALPHAS):
            x, thr = draw(np.random.default_rng([args.seed, i]), args.reps)
            r = rate(x, thr, alpha)
            se = math.sqrt(max(r * (1 - r), 1e-12) / args.reps)
            over = " **over**" if r > alpha + 3 * math.sqrt(alpha * (1 - alpha) / args.reps) else ""
            cells.append(f"{r:.4f} ({se:.4f}){over}")
        print(f"| {name} | {data} | " + " | ".join(cells) + " |")
    print(
        f"\n{args.reps} draws per cell, looks after every seed from min_seeds(alpha) (5 at α=0.05, 7 at α=0.01) "
        f"to {MAX_SEEDS}; **over**: above alpha + 3 SE of alpha. {time.perf_counter() - start:.0f} s, "
        f"{datetime.date.today().isoformat()}."
    )
    start = time.perf_counter()
    print("\n| spread check | data (sigma = 1) | " + " | ".join(f"α={a:g}: voided / decided" for a in ALPHAS)
          + " |\n|---|---|" + "---|" * len(ALPHAS))  # fmt: skip
    for level in (0.01, SPREAD_LEVEL):
        for data, draw in VOID_ROWS:
            cells = []
            for i, alpha in enumerate(ALPHAS):
                x, thr = draw(np.random.default_rng([args.seed, 10 + i]), args.reps)
                got = outcomes("subgaussian", x, thr, alpha, level, sigma=1.0)
                decided = sum(o != "inconclusive" for o in got)
                void = sum(o == "error" for o in got) / max(decided, 1)
                cells.append(f"{void:.4f} of {decided}")
            print(f"| {level:g} | {data} | " + " | ".join(cells) + " |")
    print(f"\n{args.reps} draws per cell. {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()

"""What sequential seeds would buy the ci suite: every ci claim replayed on its stored seeds.

For each claim run at ci scale, the stored per-seed values (in seed order, as a sequential run would
have computed them) are fed to the sign e-process (:mod:`repro.sequential`, no assumption), looked at
after every ``--batch`` seeds with the claim's family bar m / alpha, up to the claim's declared seeds
as the maximum. Reported beside the fixed-n verdict: the seeds each would spend, the compute time
that is (each seed's stored runtime), and the verdicts after each family's Holm correction (on the
anytime p-values at each claim's stop). Nothing is run and no claim is changed: it reads the store.

    REPRO_HOME=.repro .venv/bin/python benchmarks/bench_sequential_ci.py [--batch 2] [--claims claims]
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, defaultdict

from repro import sequential
from repro.judge import evaluate, judge_all, observations
from repro.load import load_claims
from repro.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--claims", default="claims")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    claim_set, store = load_claims(args.claims), Store.default()
    chosen = [c for c in claim_set if not c.skipped("ci") and c.sequential is None]
    fixed = {run.claim.id: run for run in judge_all(chosen, "ci", store, claim_set)}
    rows, anytime = [], {}
    for claim in chosen:
        run = evaluate(claim, "ci", store)
        if not run.complete:
            print(f"{claim.id}: not run in this store, left out")
            continue
        values, sweep = observations(claim, run.results)
        n, m = len(run.seeds), claim_set.family_size(claim, "ci")
        if getattr(claim.assertion, "paired", True) is False:  # sequential mode needs paired arms
            print(f"{claim.id}: unpaired arms, no sequential replay; counted with its fixed seeds")
            anytime[claim.id] = (fixed[claim.id].verdict.p_value or 1.0, fixed[claim.id].verdict.p_opposite or 1.0)
            rows.append((claim, n, n, run.runtime_s / n, None))
            continue
        path = sequential.sequential_path(claim.assertion, values, sweep, method="sign")
        d = sequential.decide_sequential(path, claim.assertion.alpha, level_divisor=m)
        used = min(n, math.ceil(d.stopped_at / args.batch) * args.batch) if d.outcome != "inconclusive" else n
        per_seed = run.runtime_s / n
        anytime[claim.id] = (d.p_anytime, d.p_opposite_anytime)
        rows.append((claim, n, used, per_seed, d))
    # Holm within each family on the anytime p-values at each claim's stop; controls alone.
    families: dict[str, list[str]] = defaultdict(list)
    for claim, *_ in rows:
        family = claim_set.family(claim)
        families[family or claim.id].append(claim.id)
    decided = {}
    for ids in families.values():
        p = sequential.holm_anytime([anytime[i][0] for i in ids])
        q = sequential.holm_anytime([anytime[i][1] for i in ids])
        for i, pi, qi in zip(ids, p, q, strict=True):
            alpha = claim_set.get(i).assertion.alpha
            decided[i] = "reproduced" if pi < alpha else "not_reproduced" if qi < alpha else "inconclusive"
    print("| claim | family size | fixed: seeds, verdict | sequential (sign): seeds, verdict |")
    print("| --- | ---: | --- | --- |")
    totals = Counter()
    for claim, n, used, per_seed, _ in rows:
        f, s = fixed[claim.id].verdict.outcome, decided[claim.id]
        totals["fixed seeds"] += n
        totals["sequential seeds"] += used
        totals["fixed s"] += n * per_seed
        totals["sequential s"] += used * per_seed
        totals["fixed decided"] += f != "inconclusive"
        totals["sequential decided"] += s != "inconclusive"
        totals["same verdict"] += f == s
        print(f"| {claim.id} | {claim_set.family_size(claim, 'ci')} | {n}, {f} | {used}, {s} |")
    print(f"\n{len(rows)} claims. Seeds: fixed {totals['fixed seeds']}, sequential {totals['sequential seeds']}. "
          f"Compute (stored runtime per seed): fixed {totals['fixed s']:.0f} s, "
          f"sequential {totals['sequential s']:.0f} s. "
          f"Decided: fixed {totals['fixed decided']}, sequential {totals['sequential decided']}. "
          f"Same verdict: {totals['same verdict']}.")  # fmt: skip


if __name__ == "__main__":
    main()

"""The exact, distribution-free primitives under :mod:`repro.stats`: numbers, never verdicts.

The sign test, the signed-rank test and its exact sign-flip distribution, the order-statistic
interval of a median, the Walsh-average (Hodges-Lehmann) interval, the exact binomial test with its
Clopper-Pearson interval, the seeded permutation test and the per-seed Spearman rho. Each takes
arrays or counts and returns p-values or bounds; which of them decides a claim, and what its
verdict says, is :mod:`repro.stats`'s business. A module of their own because they are the part
:mod:`repro.sequential`, :mod:`repro.plan` and the benchmarks reuse, and the part that is checked
against scipy on its own (tests/test_stats.py).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

import numpy as np
from scipy import stats

__all__ = ["N_RESAMPLES", "RANDOM_SEED", "TIE_ULPS", "beyond", "sign_test", "signed_rank_test"]

#: Seed of every permutation generator: same inputs give byte-identical verdicts.
RANDOM_SEED = 20_240_601
#: Resamples for Monte Carlo permutation tests (they go exact when the permutations are fewer).
N_RESAMPLES = 9999
_BATCH = 1000  # resamples per vectorised batch: bounds memory at 10,000 seeds
_EXACT_SIGNED_RANK_MAX_N = 400  # exact signed-rank distribution up to here; normal approximation above
#: scipy >= 1.15 names the generator argument ``rng``; older releases (pyproject allows 1.11) ``random_state``.
_RNG_ARGUMENT = "rng" if "rng" in inspect.signature(stats.permutation_test).parameters else "random_state"
#: A value within this many machine epsilons (of the largest magnitude among it, its operands and the
#: threshold) of a threshold is ON the threshold: 0.93 - 0.91 against a margin of 0.02 is a tie.
TIE_ULPS = 8


# -- comparison with a threshold ------------------------------------------------------------------
def beyond(value: np.ndarray | float, threshold: float, sign: int = 1,
           operands: np.ndarray | float | None = None) -> np.ndarray:  # fmt: skip
    """Whether each value lies strictly beyond ``threshold`` (above for sign +1, below for -1), a
    value within rounding error of it counting as on it (so against a strict claim).

    Rounding error: ``TIE_ULPS`` machine epsilons of the largest magnitude among the value, the
    threshold and ``operands`` (the numbers the value was computed from, e.g. ``max(|x|, |y|)`` for
    a difference ``x - y``). The one comparison every sign test, constant-data path, predicate and
    margin in :mod:`repro.stats` makes; the complement of ``beyond(v, t, -sign)`` is "on or beyond".
    """
    v = np.asarray(value, dtype=float)
    scale = np.maximum(np.abs(v), abs(float(threshold)))
    if operands is not None:
        scale = np.maximum(scale, np.abs(np.asarray(operands, dtype=float)))
    return np.asarray(sign * (v - threshold) > TIE_ULPS * np.finfo(float).eps * scale)


# -- exact tests ----------------------------------------------------------------------------------
def sign_test(k: int, n: int) -> tuple[float, float]:
    """Exact sign test: (p of "P(beyond) > 1/2", p of "P(beyond) < 1/2") for k of n seeds strictly beyond.

    Seeds on the threshold are in n and not in k: they count against the claim, so a median on the
    threshold is never "beyond" it, and more seeds on it only ever push towards not_reproduced.
    """
    return _sign_p(int(k), int(n))


@functools.lru_cache(maxsize=4096)
def _sign_p(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 1.0, 1.0
    return float(stats.binom.sf(k - 1, n, 0.5)), float(stats.binom.cdf(k, n, 0.5))


def signed_rank_test(d: np.ndarray) -> tuple[float, float]:
    """Exact one-sided signed-rank p-values (d > 0, d < 0) from the sign-flip distribution.

    Ranks of |d| with zeros included (Pratt): a zero keeps its rank and adds nothing either way, so
    zeros never make a p smaller than its exact floor (scipy's normal fallback did). Tied |d| take
    mid-ranks; the distribution is computed exactly on doubled ranks up to 400 seeds, by the normal
    approximation with the tie correction above that.
    """
    ranks = stats.rankdata(np.abs(d))  # (n,) mid-ranks, zeros included
    live = d != 0
    r = ranks[live]
    t_plus = float(r[d[live] > 0].sum())
    if r.size == 0:
        return 1.0, 1.0
    if r.size <= _EXACT_SIGNED_RANK_MAX_N:
        # Each nonzero seed's sign is a fair coin under the null; ranks doubled to integers (mid-ranks).
        cdf, sf = _signed_rank_distribution(tuple(sorted(int(v) for v in np.rint(2 * r))))
        observed = int(round(2 * t_plus))
        p_greater = float(sf[observed])  # summed from the tail, so a p of 2**-60 stays 2**-60
        p_less = float(cdf[observed])
        return min(1.0, max(p_greater, 0.0)), min(1.0, p_less)
    mean = r.sum() / 2
    sd = math.sqrt((r**2).sum() / 4)
    z = (t_plus - mean) / sd
    return float(stats.norm.sf(z)), float(stats.norm.cdf(z))


def _median_interval(x: np.ndarray, alpha: float) -> tuple[float, float, str]:
    """Order-statistic interval of the median at 1 - 2*alpha: [x_(j), x_(n+1-j)], the largest j with
    P(Bin(n, 1/2) <= j - 1) < alpha. It excludes the threshold exactly when the sign test rejects."""
    xs, n = np.sort(x), x.size
    j = _order_statistic_depth(n, alpha)
    if j == 0:
        return float(xs[0]), float(xs[-1]), "range (too few seeds for an order-statistic interval)"
    return float(xs[j - 1]), float(xs[n - j]), "order statistics (sign test)"


@functools.lru_cache(maxsize=1024)
def _order_statistic_depth(n: int, alpha: float) -> int:
    """The largest j with P(Bin(n, 1/2) <= j - 1) < alpha (0 when even j = 1 fails)."""
    return int(np.sum(stats.binom.cdf(np.arange(n), n, 0.5) < alpha))


@functools.lru_cache(maxsize=256)
def _signed_rank_distribution(doubled_ranks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(P(T <= t), P(T >= t)) of the doubled signed-rank statistic T when each rank's sign is a fair
    coin; read-only arrays, each summed from its own tail."""
    total = sum(doubled_ranks)
    dist = np.zeros(total + 1)
    dist[0] = 1.0
    for step in doubled_ranks:
        shifted = np.zeros_like(dist)
        shifted[step:] = dist[: total + 1 - step]
        dist = 0.5 * (dist + shifted)
    cdf, sf = np.cumsum(dist), np.cumsum(dist[::-1])[::-1]
    cdf.flags.writeable = sf.flags.writeable = False
    return cdf, sf


class _End(float):
    """An interval's end (a float) that also says whether the interval holds it: ``excluded`` when the
    test the interval inverts rejects at the end itself (a discrete test's confidence set can be half-open)."""

    excluded: bool

    def __new__(cls, value: float, excluded: bool = False) -> _End:
        end = super().__new__(cls, value)
        end.excluded = excluded
        return end


def _walsh_interval(x: np.ndarray, level: float) -> tuple[float, float, float]:
    """Hodges-Lehmann estimate and the exact inversion of :func:`signed_rank_test` at 1 - 2*alpha.

    The interval is every t at which neither one-sided test of x - t rejects at alpha = (1 - level) / 2,
    computed with :func:`signed_rank_test` itself, so ties and zeros count exactly as the test counts
    them (Pratt zeros, mid-ranks). Between two neighbouring Walsh averages neither the signs nor the
    order of |x - t| change, so the test's p is constant there: the test is evaluated at each Walsh
    average and at one point inside each gap (and beyond each end), and each end is found by bisection
    (the p of "location above t" rises with t, that of "below t" falls). An end the test rejects at
    (a tie or zero there can tip it) is returned ``excluded`` (:class:`_End`): the interval is then
    half-open at it. When even t beyond every seed is not rejected (fewer seeds than the exact floor,
    0.5**n >= alpha), the interval would be unbounded: the seeds' range is returned instead.
    """
    i, j = np.triu_indices(x.size)
    walsh = np.sort((x[i] + x[j]) / 2)  # (n(n+1)/2,)
    estimate = float(np.median(walsh))
    alpha = (1 - level) / 2
    points = np.unique(walsh)  # (K,) distinct Walsh averages
    below, above = points[0] - 1.0 - abs(points[0]), points[-1] + 1.0 + abs(points[-1])
    gaps = np.concatenate([[below], (points[:-1] + points[1:]) / 2, [above]])  # (K + 1,)
    candidates = np.empty(2 * points.size + 1)  # gap, Walsh average, gap, ..., gap: ascending
    candidates[0::2], candidates[1::2] = gaps, points

    def kept_above(k: int) -> bool:  # "location above t" not rejected: rises from False to True with t
        return signed_rank_test(x - candidates[k])[0] >= alpha

    def kept_below(k: int) -> bool:  # "location below t" not rejected: falls from True to False with t
        return signed_rank_test(x - candidates[k])[1] >= alpha

    first = _first(kept_above, candidates.size)  # the first candidate not rejected from below
    last = _first(lambda k: not kept_below(k), candidates.size) - 1  # the last not rejected from above
    if first == 0 or last == candidates.size - 1:
        return estimate, float(walsh[0]), float(walsh[-1])
    # A gap point kept: the Walsh average before it was rejected, so the interval starts just above it.
    low = _End(candidates[first], False) if first % 2 else _End(candidates[first - 1], True)
    high = _End(candidates[last], False) if last % 2 else _End(candidates[last + 1], True)
    return estimate, low, high


def _first(predicate: Callable[[int], bool], size: int) -> int:
    """The first k in 0..size-1 where a predicate that is False, then True, becomes True (size: never)."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@functools.lru_cache(maxsize=4096)
def _binomial(k: int, n: int, p0: float, alpha: float) -> tuple[float, float, float, float]:
    """Exact binomial p-values (greater, less) and the Clopper-Pearson interval at 1 - 2*alpha."""
    p = stats.binomtest(k, n, p=p0, alternative="greater").pvalue
    p_opp = stats.binomtest(k, n, p=p0, alternative="less").pvalue
    # Each Clopper-Pearson bound is a one-sided exact bound at alpha (beta quantiles, as scipy's
    # proportion_ci(method="exact") computes them, without its two-sided test's overflow near 0).
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.isf(alpha, k + 1, n - k))
    return float(p), float(p_opp), low, high


# -- permutation tests and rank correlation -----------------------------------------------------
def _seeded() -> dict[str, np.random.Generator]:
    """A fresh generator from the fixed seed for each call: a verdict never depends on call order."""
    return {_RNG_ARGUMENT: np.random.default_rng(RANDOM_SEED)}


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _welch_t(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Welch's t of mean(x) - mean(y); a resample whose arms are both constant gives +-1e300 (0 when equal)."""
    diff = np.mean(x, axis=axis) - np.mean(y, axis=axis)
    se = np.sqrt(np.var(x, axis=axis, ddof=1) / x.shape[axis] + np.var(y, axis=axis, ddof=1) / y.shape[axis])
    return np.divide(diff, se, out=np.asarray(np.sign(diff) * 1e300, dtype=float), where=se > 0)


def _perm(x: np.ndarray, y: np.ndarray, alternative: str, *, paired: bool, studentized: bool = False) -> float:
    """One-sided permutation p of mean(x) - mean(y): sign flips within seeds when paired.

    ``studentized`` (unpaired only) permutes Welch's t instead of the mean difference: exact when
    the arms are exchangeable, and still of the right size when their spreads or shapes differ,
    where the permutation distribution of the plain mean difference is not (Janssen 1997; Chung &
    Romano 2013).
    """
    statistic = _welch_t if studentized and not paired else _mean_diff
    return stats.permutation_test(
        (x, y), statistic, permutation_type="samples" if paired else "independent", vectorized=True,
        n_resamples=N_RESAMPLES, batch=_BATCH, alternative=alternative, **_seeded(),
    ).pvalue  # fmt: skip


def _exactness(x: np.ndarray, y: np.ndarray) -> str:
    """'exact' when scipy enumerates every split of the two arms, else 'Monte Carlo'."""
    return "exact" if math.comb(x.size + y.size, x.size) <= N_RESAMPLES else f"Monte Carlo, {N_RESAMPLES} resamples"


def _spearman(block: np.ndarray, centred_sweep: np.ndarray) -> np.ndarray:
    """Spearman rho of each row of (..., K) against the sweep; a constant row gives 0, not NaN."""
    ranks = stats.rankdata(block, axis=-1)
    ranks -= ranks.mean(axis=-1, keepdims=True)
    numerator = ranks @ centred_sweep  # (...)
    denominator = np.sqrt((ranks**2).sum(axis=-1) * (centred_sweep**2).sum())
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)

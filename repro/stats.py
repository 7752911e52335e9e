"""Verdicts from per-seed metrics: each assertion kind is decided by one named, calibrated test.

Why this shape: a claim is judged by two one-sided tests, the claim's own (H0: the claim is false)
and the opposite one (H0: the claim holds). ``reproduced`` when the first rejects at alpha,
``not_reproduced`` when the second does, ``inconclusive`` otherwise, so a small or noisy run can
never pass and a negative control fails visibly. Within a family of claims the Holm-adjusted p
decides (:func:`adjust`, applied by :mod:`repro.judge`).

The seed is the unit of replication: every test takes one number per seed (cells of one seed are
summarised within the seed first), and no kind decides on fewer than :func:`repro.claim.min_seeds`
seeds. Each interval is the one its test inverts, two-sided at 1 - 2*alpha, so "the interval
excludes the threshold" and "the test rejects" agree: a t interval for t-tests (the TOST interval
for equivalence), an order-statistic interval for the median under the sign test, the Walsh-average
interval under the signed-rank test, Clopper-Pearson for a binomial fraction.

Ties: a seed exactly on the threshold does not satisfy a strict claim, so the sign tests count it
against the claim (they test P(X beyond t) > 1/2 with ties in n); the verdicts are monotone in the
seeds. ``docs/statistics.md`` records each test's false-reproduction rate at its boundary.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from repro.claim import Assertion, Difference, Equivalent, Greater, Less, Outcome, Proportion, Trend, min_seeds

__all__ = [
    "N_RESAMPLES",
    "RANDOM_SEED",
    "SequentialRecord",
    "Verdict",
    "adjust",
    "decide",
    "error_verdict",
    "holm",
    "sign_test",
]

#: Seed of every permutation generator: same inputs give byte-identical verdicts.
RANDOM_SEED = 20_240_601
#: Resamples for Monte Carlo permutation tests (they go exact when the permutations are fewer).
N_RESAMPLES = 9999
_SIGN = "scipy.stats.binomtest (sign test)"
_SIGNED_RANK = "signed-rank test (exact sign-flip distribution, zeros kept)"
_BATCH = 1000  # resamples per vectorised batch: bounds memory at 10,000 seeds
_EXACT_SIGNED_RANK_MAX_N = 400  # exact signed-rank distribution up to here; normal approximation above
#: scipy >= 1.15 names the generator argument ``rng``; older releases (pyproject allows 1.11) ``random_state``.
_RNG_ARGUMENT = "rng" if "rng" in inspect.signature(stats.permutation_test).parameters else "random_state"


class SequentialRecord(BaseModel):
    """How a sequential claim's seeds were spent (:mod:`repro.sequential`): where it stopped and why."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    method: str = Field(description="sign, betting or subgaussian: the e-process and its stated assumption.")
    batch: int
    max_seeds: int
    seeds_used: int = Field(description="Seeds up to the stop: the first look where a side crossed, or all.")
    e_value: float = Field(description="Largest e-value against 'the claim is false' up to the stop.")
    e_opposite: float = Field(description="Largest e-value against 'the claim holds' up to the stop.")
    bar: float = Field(description="What an e-value must exceed to decide: the family's size / alpha.")
    stopped: str = Field(description="Why the run stopped, in one sentence.")


class Verdict(BaseModel):
    """What the statistics say about one claim at one scale; plain data, JSON-serialisable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    outcome: Outcome
    test: str = Field(description="The named library call that decided, e.g. 'scipy.stats.ttest_1samp'.")
    estimate: float | None = Field(
        description="Mean, median, Hodges-Lehmann, fraction, median per-seed rho or (mean / median) difference."
    )
    ci_low: float | None
    ci_high: float | None
    ci_level: float = Field(description="Two-sided level, 1 - 2*alpha, matching the one-sided test.")
    ci_method: str = Field(
        description="The interval the test inverts: 't', 'Welch t', 'order statistics (sign test)', "
        "'exact Walsh-average (Hodges-Lehmann)', 'Clopper-Pearson', 'exact (every seed equal)', ..."
    )
    p_value: float | None = Field(description="Raw p of the claim's one-sided test (H0: the claim is false).")
    p_opposite: float | None = Field(description="Raw p of the opposite one-sided test (H0: the claim holds).")
    p_adjusted: float | None = Field(
        None, description="Holm-adjusted p within the claim's family; this, not the raw p, decides the outcome."
    )
    p_opposite_adjusted: float | None = Field(None, description="Holm-adjusted opposite p within the family.")
    family: str | None = Field(None, description="The multiple-comparison family; None: judged alone.")
    family_size: int = Field(1, ge=1, description="Tests in the family (1 when judged alone).")
    tested: str = Field("", description="What the test shows when it rejects, e.g. 'mean above 5'.")
    shortfall: str = Field("", description="Why an inconclusive verdict is inconclusive, and what would settle it.")
    alpha: float
    n: int = Field(ge=0, description="Observations used: seeds, or both arms' seeds.")
    units: int = Field(0, ge=0, description="Independent seeds behind the test (per arm when unpaired).")
    threshold: float | None = Field(description="threshold, margin, min_fraction or min_rho.")
    message: str = Field(description="One plain sentence: why this outcome.")
    sequential: SequentialRecord | None = Field(
        None, description="Set for a sequential claim: p-values and interval are then anytime-valid."
    )

    def summary(self) -> str:
        """One line for a pytest failure or a table cell: outcome, estimate [ci], threshold, test, p."""
        if self.outcome == "error" or self.estimate is None:
            return f"{self.message} ({self.test})"
        ci = (
            ""
            if self.ci_low is None or self.ci_high is None
            else (f" [{self.ci_low:.4g}, {self.ci_high:.4g}] ({self.ci_level:.0%} {self.ci_method})")
        )
        p = "n/a" if self.p_value is None else f"{self.p_value:.3g}"
        if self.p_adjusted is not None:
            p += f", Holm p={self.p_adjusted:.3g} over {self.family_size} in {self.family}"
        return (
            f"{self.outcome}: estimate {self.estimate:.4g}{ci} vs {self.threshold:.4g}; "
            f"{self.test} p={p} (alpha {self.alpha:g}, n={self.n})"
        )


class _BadData(Exception):
    """Inputs no test can use (NaN, inf, too few seeds): reported as an 'error' verdict, never a pass."""


def decide(assertion: Assertion, values: Mapping[str, np.ndarray], sweep: np.ndarray | None = None) -> Verdict:
    """Judge ``assertion`` on per-seed ``values`` (arm name -> array; single-arm claims use "main").

    Shapes: greater/less (n_seeds,); proportion (n_seeds,) or (n_seeds, K) cells per seed; trend
    (n_seeds, K) with ``sweep`` the (K,) coordinates; difference/equivalent (n_seeds,) per arm. A
    wrong shape or a missing arm is a programming error (ValueError); bad data (NaN, inf, n < 2) is
    an error verdict. Fewer seeds than :func:`repro.claim.min_seeds` give ``inconclusive``, whatever
    the p. The verdict is the claim's alone; :func:`adjust` re-decides it within a family.
    """
    kinds: dict[type, Callable[..., Verdict]] = {
        Greater: _location, Less: _location, Proportion: _proportion,
        Trend: _trend, Difference: _difference, Equivalent: _equivalent,
    }  # fmt: skip
    if type(assertion) not in kinds:
        raise TypeError(f"not an assertion model: {type(assertion).__name__}")
    try:
        with warnings.catch_warnings():
            # Precision-loss and 0/0 warnings: their results are checked by _finite_statistic and _verdict.
            warnings.simplefilter("ignore", RuntimeWarning)
            return kinds[type(assertion)](assertion, values, sweep)
    except _BadData as bad:
        return error_verdict(assertion, str(bad))
    except ArithmeticError as exc:  # overflow on extreme inputs (a min_fraction of 1e-307): never a pass
        return error_verdict(assertion, f"the test overflowed on these values ({exc})")


def error_verdict(assertion: Assertion, message: str) -> Verdict:
    """An 'error' verdict, never a pass: bad data here, or a crash or missing results in the runner."""
    return Verdict(
        outcome="error", test=_primary_test(assertion), estimate=None, ci_low=None, ci_high=None,
        ci_level=1 - 2 * assertion.alpha, ci_method="none", p_value=None, p_opposite=None,
        alpha=assertion.alpha, n=0, threshold=_threshold(assertion), message=f"Error: {message.rstrip('.')}.",
    )  # fmt: skip


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values: the j-th smallest of m becomes max over i <= j of
    min(1, (m - i + 1) p_(i)) (Holm 1979; equal to statsmodels' multipletests method="holm", which
    tests/test_stats.py checks, without its full garbage collection on every call).

    A claim without a p-value (an error verdict) stays None and does not count as a test.
    """
    present = [(i, p) for i, p in enumerate(p_values) if p is not None]
    if any(not (math.isfinite(p) and 0.0 <= p <= 1.0) for _, p in present):
        raise ValueError(f"p-values must lie in [0, 1]; got {list(p_values)}")
    adjusted: list[float | None] = [None] * len(p_values)
    m, running = len(present), 0.0
    for rank, (i, p) in enumerate(sorted(present, key=lambda item: item[1])):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


# -- the kinds ------------------------------------------------------------------------------------
def _location(a: Greater | Less, values: Mapping[str, np.ndarray], sweep: Any) -> Verdict:
    """Greater / Less: the seeds' location against a threshold (t, exact signed-rank or exact sign test)."""
    x = _arm(values, "main", 1, "(n_seeds,)")
    _need(x.size, 2, "seeds")
    sign, word = (1, "above") if isinstance(a, Greater) else (-1, "below")
    side, other = ("greater", "less") if sign > 0 else ("less", "greater")
    thr, n, level = a.threshold, x.size, 1 - 2 * a.alpha
    method = a.method or "t"
    if method != "sign" and np.all(x == x[0]):
        return _constant(a, float(x[0]), sign * (x[0] - thr) > 0, n, thr, f"every seed's value {word} {thr:g}")
    if method == "t":
        result = stats.ttest_1samp(x, thr)  # two-sided: its interval at 1 - 2*alpha bounds each one-sided test
        _finite_statistic(result.statistic)
        p, p_opp = _one_sided(result.statistic, result.df, sign)
        low, high = result.confidence_interval(level)
        return _judge(
            a, test="scipy.stats.ttest_1samp", estimate=float(x.mean()), ci=(low, high, "t"), p=p, p_opp=p_opp,
            n=n, threshold=thr, claim=f"mean {word} {thr:g}",
        )  # fmt: skip
    if method == "wilcoxon":
        p, p_opp = signed_rank_test(sign * (x - thr))
        estimate, low, high = _walsh_interval(x, level)
        return _judge(
            a, test=_SIGNED_RANK, estimate=estimate,
            ci=(low, high, "exact Walsh-average (Hodges-Lehmann)"), p=p, p_opp=p_opp, n=n, threshold=thr,
            claim=f"the seeds lie symmetrically about a point {word} {thr:g}",
        )  # fmt: skip
    return _sign_verdict(a, x, sign, thr, f"median {word} {thr:g}")


def _one_sided(t: float, df: float, sign: int) -> tuple[float, float]:
    """(p of the claimed side, p of the opposite side) of a t statistic: the claimed side is t > 0
    for sign = +1. The same numbers as scipy's ``alternative=`` calls, from one test."""
    upper, lower = float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))
    return (upper, lower) if sign > 0 else (lower, upper)


def _sign_verdict(a: Any, x: np.ndarray, sign: int, thr: float, claim: str, *,
                  test: str = _SIGN) -> Verdict:  # fmt: skip
    """The exact sign test of "more than half the seeds lie strictly beyond thr" (ties count against)."""
    k, n = int(np.sum(sign * (x - thr) > 0)), x.size
    p, p_opp = sign_test(k, n)
    low, high, method = _median_interval(x, a.alpha)
    return _judge(
        a, test=test, estimate=float(np.median(x)), ci=(low, high, method), p=p, p_opp=p_opp, n=n, threshold=thr,
        claim=f"{claim} ({k} of {n} seeds strictly beyond it)",
    )  # fmt: skip


def _proportion(a: Proportion, values: Mapping[str, np.ndarray], sweep: Any) -> Verdict:
    """Proportion: the exact binomial test over seeds; with cells, the sign test on per-seed fractions."""
    x = _arm(values, "main", None, "(n_seeds,) or (n_seeds, K)")
    if x.ndim not in (1, 2):
        raise ValueError(f"arm 'main' must have shape (n_seeds,) or (n_seeds, K); got shape {x.shape}")
    _need(x.shape[0], 2, "seeds")
    op, v, tol = a.predicate.op, a.predicate.value, a.predicate.tolerance
    hits = {
        ">": x > v, ">=": x >= v, "<": x < v, "<=": x <= v,
        "==": np.abs(x - v) <= tol, "!=": np.abs(x - v) > tol,
    }[op]  # fmt: skip
    p0 = a.min_fraction
    if x.ndim == 2:  # cells of one seed share a model: the seed's fraction is the observation
        fractions = hits.mean(axis=1)  # (n_seeds,)
        return _sign_verdict(
            a, fractions, 1, p0, f"more than half the seeds have more than {p0:g} of their cells with value {op} {v:g}",
            test=_SIGN + " on per-seed fractions of cells",
        )  # fmt: skip
    k, n = int(hits.sum()), x.size
    p, p_opp, low, high = _binomial(k, n, p0, a.alpha)
    return _judge(
        a, test="scipy.stats.binomtest", estimate=k / n, ci=(low, high, "Clopper-Pearson"), p=p, p_opp=p_opp, n=n,
        threshold=p0, claim=f"more than {p0:g} of seeds have value {op} {v:g} ({k} of {n})",
    )  # fmt: skip


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


def _trend(a: Trend, values: Mapping[str, np.ndarray], sweep: np.ndarray | None) -> Verdict:
    """Trend: each seed's Spearman rho along the sweep, signed by the claimed direction; the exact
    sign test that more than half the seeds have rho above ``min_rho`` (a rho on it counts against)."""
    y = _arm(values, "main", 2, "(n_seeds, K)")  # (n_seeds, K)
    if sweep is None or np.shape(sweep) != (y.shape[1],):
        raise ValueError(f"a trend claim needs sweep coordinates of shape ({y.shape[1]},); got {np.shape(sweep)}")
    s = np.asarray(sweep, dtype=float)  # (K,)
    if not np.all(np.isfinite(s)):
        raise _BadData("the sweep coordinates hold NaN or inf")
    _need(y.shape[0], 2, "seeds")
    _need(y.shape[1], 2, "sweep points")
    if np.all(s == s[0]):
        raise _BadData("the sweep coordinates are all equal, so no rank correlation is defined")
    sign = 1 if a.direction == "increasing" else -1
    centred = stats.rankdata(s) - (s.size + 1) / 2  # (K,) centred sweep ranks
    rho = sign * _spearman(y, centred)  # (n_seeds,) signed per-seed rho
    rho = np.round(rho, 12)  # a rho of exactly min_rho must tie with it, not miss it by rounding
    return _sign_verdict(
        a, rho, 1, a.min_rho, f"{a.direction} trend: median per-seed Spearman rho above {a.min_rho:g}",
        test=_SIGN + " on per-seed Spearman rho",
    )  # fmt: skip


def _difference(a: Difference, values: Mapping[str, np.ndarray], sweep: Any) -> Verdict:
    """Difference: a - b beyond ``margin``: paired t, Welch t, sign or permutation test."""
    x, y = _two_arms(a, values)
    sign, side, other = (1, "greater", "less") if a.direction == "greater" else (-1, "less", "greater")
    m, level = a.margin, 1 - 2 * a.alpha
    word = "above" if sign > 0 else "below"
    claim = f"mean {a.a} - {a.b} {word} {m:g}"
    method = a.method or "t"
    if a.paired:
        d = x - y  # (n_seeds,)
        _need(d.size, 2, "seeds")
        if method == "sign":
            return _sign_verdict(a, d, sign, m, f"median {a.a} - {a.b} {word} {m:g}")
        if np.all(d == d[0]):
            return _constant(a, float(d[0]), sign * (d[0] - m) > 0, d.size, m, f"every seed's difference ({claim})")
        paired_t = stats.ttest_1samp(d, m)  # the same test as ttest_rel(x - m, y), with its interval
        low, high = paired_t.confidence_interval(level)
        estimate, ci, n, constant = float(d.mean()), (low, high, "t"), d.size, False
    else:
        if method == "sign":
            raise ValueError("the sign test needs paired arms: set paired = true or method = 't' / 'permutation'")
        _need(min(x.size, y.size), 2, "seeds in each arm")
        estimate, n = float(x.mean() - y.mean()), x.size + y.size
        constant = bool(np.all(x == x[0]) and np.all(y == y[0]))  # Welch is 0/0; a permutation test is exact
        if constant:
            ci = (estimate, estimate, "exact (each arm constant)")
        else:
            welch = stats.ttest_ind(x - m, y, equal_var=False)
            low, high = welch.confidence_interval(level)
            ci = (low + m, high + m, "Welch t")
    if method == "t" and not constant:
        result = paired_t if a.paired else welch
        _finite_statistic(result.statistic)
        p, p_opp = _one_sided(result.statistic, result.df, sign)
        test = "scipy.stats.ttest_rel" if a.paired else "scipy.stats.ttest_ind (Welch)"
    else:
        p, p_opp = (_perm(x - m, y, alt, paired=a.paired) for alt in (side, other))
        test = "scipy.stats.permutation_test" + (f" ({_exactness(x, y)}; each arm constant)" if constant else "")
        if not constant:
            ci = (ci[0], ci[1], ci[2] + " (the permutation test's own interval is not computed)")
    return _judge(a, test=test, estimate=estimate, ci=ci, p=p, p_opp=p_opp, n=n, threshold=m, claim=claim,
                  units=min(x.size, y.size))  # fmt: skip


def _equivalent(a: Equivalent, values: Mapping[str, np.ndarray], sweep: Any) -> Verdict:
    """Equivalent: TOST within +-margin (its 1 - 2*alpha t interval inside the margins).

    The opposite, "beyond one of the margins", is two one-sided tests of which either may reject:
    Bonferroni over the two keeps its size at alpha.
    """
    x, y = _two_arms(a, values)
    m, level = a.margin, 1 - 2 * a.alpha
    claim = f"|mean {a.a} - {a.b}| below {m:g}"
    if a.paired:
        d = x - y  # (n_seeds,)
        _need(d.size, 2, "seeds")
        if np.all(d == d[0]):  # identical arms, or a constant offset: exact sign test
            return _constant(a, float(d[0]), abs(d[0]) < m, d.size, m, f"every seed's difference ({claim})")
        low, high = stats.ttest_1samp(d, 0.0).confidence_interval(level)
        estimate, ci, n = float(d.mean()), (low, high, "t (the TOST interval)"), d.size
        p, (t1, p1, _), (t2, p2, _) = ttost_paired(x, y, -m, m)
        test = "statsmodels.stats.weightstats.ttost_paired"
    else:
        _need(min(x.size, y.size), 2, "seeds in each arm")
        estimate, n = float(x.mean() - y.mean()), x.size + y.size
        if np.all(x == x[0]) and np.all(y == y[0]):  # Welch is 0/0; exact permutation TOST
            inside = max(_perm(x + m, y, "greater", paired=False), _perm(x - m, y, "less", paired=False))
            beyond = min(_perm(x + m, y, "less", paired=False), _perm(x - m, y, "greater", paired=False))
            return _judge(
                a, test=f"scipy.stats.permutation_test ({_exactness(x, y)} TOST; each arm constant)", estimate=estimate,
                ci=(estimate, estimate, "exact (each arm constant)"), p=inside, p_opp=min(1.0, 2 * beyond), n=n,
                threshold=m, claim=claim, units=min(x.size, y.size),
            )  # fmt: skip
        low, high = stats.ttest_ind(x, y, equal_var=False).confidence_interval(level)
        ci = (low, high, "Welch t (the TOST interval)")
        p, (t1, p1, _), (t2, p2, _) = ttost_ind(x, y, -m, m, usevar="unequal")
        test = "statsmodels.stats.weightstats.ttost_ind (Welch)"
    _finite_statistic(t1)
    # ttost's halves test diff > -m (p1) and diff < m (p2); their complements are the opposite tests.
    return _judge(
        a, test=test, estimate=estimate, ci=ci, p=p, p_opp=min(1.0, 2 * min(1 - p1, 1 - p2)), n=n, threshold=m,
        claim=claim, units=min(x.size, y.size),
    )  # fmt: skip


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


def _walsh_interval(x: np.ndarray, level: float) -> tuple[float, float, float]:
    """Hodges-Lehmann estimate and the exact Walsh-average interval that inverts the signed-rank test."""
    i, j = np.triu_indices(x.size)
    walsh = np.sort((x[i] + x[j]) / 2)  # (n(n+1)/2,)
    alpha = (1 - level) / 2
    n = x.size
    if n <= _EXACT_SIGNED_RANK_MAX_N:
        cdf, _ = _signed_rank_distribution(tuple(range(2, 2 * n + 1, 2)))  # untied ranks 1..n, doubled
        c = int(np.sum(cdf[::2] < alpha))  # c values t = 0..c-1 with P(T <= t) < alpha
    else:
        mean, sd = n * (n + 1) / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
        c = max(0, int(math.floor(mean - stats.norm.ppf(1 - alpha) * sd)) + 1)
    # The test at alpha rejects "location <= theta" when T+ (the Walsh averages above theta) exceeds
    # the c-th largest value: the interval keeps Walsh averages c..N-c+1 (1-based), the c-th from
    # each end. With c = 0 no theta is ever rejected: the whole range.
    low, high = (walsh[0], walsh[-1]) if c == 0 else (walsh[c - 1], walsh[walsh.size - c])
    return float(np.median(walsh)), float(low), float(high)


# -- helpers --------------------------------------------------------------------------------------
def _arm(values: Mapping[str, np.ndarray], key: str, ndim: int | None, shape: str) -> np.ndarray:
    if key not in values:
        raise ValueError(f"values has no arm {key!r}; it has {sorted(values)}")
    x = np.asarray(values[key], dtype=float)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"arm {key!r} must have shape {shape}; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise _BadData(f"arm {key!r} holds NaN or inf (a failed or diverged run)")
    return x


def _need(n: int, minimum: int, what: str) -> None:
    if n < minimum:
        raise _BadData(f"the test needs at least {minimum} {what} and got {n}")


def _two_arms(a: Difference | Equivalent, values: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _arm(values, a.a, 1, "(n_seeds,)"), _arm(values, a.b, 1, "(n_seeds,)")
    if a.paired and x.shape != y.shape:
        raise ValueError(f"paired arms {a.a!r} {x.shape} and {a.b!r} {y.shape} must have the same shape")
    return x, y


def _finite_statistic(t: float) -> None:
    if not math.isfinite(t):
        raise _BadData("the seeds differ only by rounding error, so the t statistic is undefined")


def _constant(a: Any, c: float, holds: bool, n: int, threshold: float, claim: str) -> Verdict:
    """Every seed gave the same value c: the exact sign test of "this seed strictly satisfies the claim"."""
    p, p_opp = sign_test(n if holds else 0, n)
    return _judge(
        a, test="scipy.stats.binomtest (sign test; every seed equal)", estimate=c,
        ci=(c, c, "exact (every seed equal)"), p=p, p_opp=p_opp, n=n, threshold=threshold,
        claim=f"{claim} (all {n} seeds give {c:g})",
    )  # fmt: skip


def _message(outcome: str, claim: str, p: float, p_opp: float, alpha: float, n: int, adjusted: bool,
             shortfall: str) -> str:  # fmt: skip
    which = "Holm-adjusted " if adjusted else ""
    if outcome == "reproduced":
        reason = f"'{claim}' is shown: {which}one-sided p={p:.3g} < alpha={alpha:g} (n={n})"
    elif outcome == "not_reproduced":
        reason = f"the opposite of '{claim}' is shown: {which}one-sided p={p_opp:.3g} < alpha={alpha:g} (n={n})"
    else:
        reason = (
            f"neither '{claim}' nor its opposite is shown at alpha={alpha:g} "
            f"({which}p={p:.3g}, opposite p={p_opp:.3g}, n={n}); {shortfall}"
        )
    return f"{outcome.replace('_', ' ').capitalize()}: {reason}."


def _outcome(p: float, p_opp: float, alpha: float, units: int) -> str:
    if units < min_seeds(alpha):
        return "inconclusive"
    if p < alpha:
        return "reproduced"
    if p_opp < alpha:
        return "not_reproduced"
    return "inconclusive"


def _shortfall(units: int, alpha: float) -> str:
    needed = min_seeds(alpha)
    if units < needed:
        return f"{units} seeds cannot decide at alpha {alpha:g}: every kind needs at least {needed}"
    return "run `repro plan` for the seeds that give 80% power at the claim's smallest_effect"


def _judge(a: Any, *, test: str, estimate: float, ci: tuple[float, float, str], p: float, p_opp: float,
           n: int, threshold: float, claim: str, units: int | None = None) -> Verdict:  # fmt: skip
    """Outcome from the two one-sided p-values, with its reason; ``units``: independent seeds (per arm)."""
    units = n if units is None else units
    outcome = _outcome(p, p_opp, a.alpha, units)
    shortfall = _shortfall(units, a.alpha)
    return _verdict(
        outcome=outcome, test=test, estimate=float(estimate), ci_low=float(ci[0]), ci_high=float(ci[1]),
        ci_level=1 - 2 * a.alpha, ci_method=ci[2], p_value=float(p), p_opposite=float(p_opp), alpha=a.alpha,
        n=n, units=units, threshold=float(threshold), tested=claim, shortfall=shortfall,
        message=_message(outcome, claim, p, p_opp, a.alpha, n, False, shortfall),
    )  # fmt: skip


def adjust(verdict: Verdict, *, p_adjusted: float, p_opposite_adjusted: float, family: str, family_size: int,
           shortfall: str | None = None) -> Verdict:  # fmt: skip
    """The verdict re-decided by its family's Holm-adjusted p-values (raw p kept beside them).

    The same rule as the raw verdict, on the verdict's own ``units``: too few seeds stay inconclusive.
    """
    if verdict.outcome == "error" or verdict.p_value is None:
        return verdict
    outcome = _outcome(p_adjusted, p_opposite_adjusted, verdict.alpha, verdict.units)
    shortfall = verdict.shortfall if shortfall is None else shortfall
    message = _message(outcome, verdict.tested, p_adjusted, p_opposite_adjusted, verdict.alpha, verdict.n, True,
                       shortfall)  # fmt: skip
    message = message.rstrip(".") + f" (raw p={verdict.p_value:.3g}; Holm over the {family_size} claims of '{family}')."
    return verdict.model_copy(update={
        "outcome": outcome, "p_adjusted": float(p_adjusted), "p_opposite_adjusted": float(p_opposite_adjusted),
        "family": family, "family_size": family_size, "shortfall": shortfall, "message": message,
    })  # fmt: skip


def _verdict(**fields: Any) -> Verdict:
    """A Verdict whose numbers are all finite; anything else is bad data, never a NaN in a report."""
    numbers = [fields[k] for k in ("estimate", "ci_low", "ci_high", "p_value", "p_opposite")]
    if not all(math.isfinite(x) for x in numbers):
        raise _BadData("the test gave a non-finite result (values too large, or without usable spread)")
    return Verdict(**fields)


def _seeded() -> dict[str, np.random.Generator]:
    """A fresh generator from the fixed seed for each call: a verdict never depends on call order."""
    return {_RNG_ARGUMENT: np.random.default_rng(RANDOM_SEED)}


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _perm(x: np.ndarray, y: np.ndarray, alternative: str, *, paired: bool) -> float:
    """One-sided permutation p of mean(x) - mean(y): sign flips within seeds when paired."""
    return stats.permutation_test(
        (x, y), _mean_diff, permutation_type="samples" if paired else "independent", vectorized=True,
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


def _primary_test(a: Any) -> str:
    """The call that would have decided, named on an error verdict."""
    if isinstance(a, (Greater, Less)):
        names = {"t": "scipy.stats.ttest_1samp", None: "scipy.stats.ttest_1samp", "wilcoxon": _SIGNED_RANK}
        return names.get(a.method, _SIGN)
    if isinstance(a, Difference) and a.method in ("t", None):
        return "scipy.stats.ttest_rel" if a.paired else "scipy.stats.ttest_ind (Welch)"
    if isinstance(a, Difference) and a.method == "sign":
        return _SIGN
    if isinstance(a, Equivalent):
        return "statsmodels.stats.weightstats." + ("ttost_paired" if a.paired else "ttost_ind (Welch)")
    if isinstance(a, Trend):
        return _SIGN + " on per-seed Spearman rho"
    return "scipy.stats.binomtest" if isinstance(a, Proportion) else "scipy.stats.permutation_test"


def _threshold(a: Any) -> float:
    for name in ("threshold", "margin", "min_fraction", "min_rho"):
        if hasattr(a, name):
            return float(getattr(a, name))
    raise TypeError(f"{type(a).__name__} has no threshold")

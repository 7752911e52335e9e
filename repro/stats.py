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

Ties: a seed exactly on the threshold, or within the rounding error of the arithmetic that made it
(:func:`repro.stats_exact.beyond`: 0.93 - 0.91 against a margin of 0.02 is on it), does not satisfy a
strict claim, so the sign tests count it against the claim (they test P(X beyond t) > 1/2 with ties
in n); the verdicts are monotone in the seeds. ``docs/statistics.md`` records each test's
false-reproduction rate at its boundary.

This module holds :func:`decide` and the kinds; the exact primitives they call (sign and
signed-rank tests, order-statistic and Walsh intervals, the binomial and permutation tests) live in
:mod:`repro.stats_exact`, and the :class:`Verdict`, its decision rule and Holm's adjustment in
:mod:`repro.stats_verdict`. Every name callers import from here is re-exported here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from repro.claim import Assertion, Difference, Equivalent, Greater, Less, Proportion, Trend
from repro.stats_exact import (
    N_RESAMPLES,
    RANDOM_SEED,
    _binomial,
    _exactness,
    _median_interval,
    _perm,
    _spearman,
    _walsh_interval,
    beyond,
    sign_test,
    signed_rank_test,
)
from repro.stats_verdict import (
    _SIGN,
    _SIGNED_RANK,
    SequentialRecord,
    Verdict,
    _BadData,
    _judge,
    adjust,
    error_verdict,
    holm,
)
from repro.stats_verdict import _primary_test as _primary_test  # re-exported, as before the split

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
        return _constant(a, float(x[0]), bool(beyond(x[0], thr, sign)), n, thr, f"every seed's value {word} {thr:g}")
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


def _sign_verdict(a: Any, x: np.ndarray, sign: int, thr: float, claim: str, *, test: str = _SIGN,
                  operands: np.ndarray | None = None) -> Verdict:  # fmt: skip
    """The exact sign test of "more than half the seeds lie strictly beyond thr" (ties, and values
    within rounding error of thr, count against; ``operands``: what each value was computed from)."""
    k, n = int(np.sum(beyond(x, thr, sign, operands))), x.size
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
    # A value within rounding error of v (or of v +- tol) is on it: it satisfies ">=", "<=" and "==".
    hits = {
        ">": beyond(x, v, 1), ">=": ~beyond(x, v, -1), "<": beyond(x, v, -1), "<=": ~beyond(x, v, 1),
        "==": ~beyond(np.abs(x - v), tol, 1, np.maximum(np.abs(x), abs(v))),
        "!=": beyond(np.abs(x - v), tol, 1, np.maximum(np.abs(x), abs(v))),
    }[op]  # fmt: skip
    p0 = a.min_fraction
    if x.ndim == 2:  # cells of one seed share a model: the seed's fraction is the observation
        fractions = np.asarray(hits.mean(axis=1))  # (n_seeds,)
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


def _trend(a: Trend, values: Mapping[str, np.ndarray], sweep: np.ndarray | None) -> Verdict:
    """Trend: each seed's Spearman rho along the sweep, signed by the claimed direction; the exact
    sign test that more than half the seeds have rho above ``min_rho`` (a rho on it counts against)."""
    y = _arm(values, "main", 2, "(n_seeds, K)")  # (n_seeds, K)
    if sweep is None or np.shape(sweep) != (y.shape[1],):
        # np.shape(None) is () at run time; numpy's stub for np.shape takes no None.
        raise ValueError(f"a trend claim needs sweep coordinates of shape ({y.shape[1]},); got {np.shape(sweep)}")  # type: ignore[arg-type]
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
        operands = np.maximum(np.abs(x), np.abs(y))  # d's rounding error is relative to these
        if method == "sign":
            return _sign_verdict(a, d, sign, m, f"median {a.a} - {a.b} {word} {m:g}", operands=operands)
        if np.all(d == d[0]):
            holds = bool(np.all(beyond(d, m, sign, operands)))
            return _constant(a, float(d[0]), holds, d.size, m, f"every seed's difference ({claim})")
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
        # Unpaired: permute Welch's t (studentized), not the mean difference, unless both arms are constant.
        studentized = not a.paired and not constant
        shifted = _shifted(x, y, -m) if constant else x - m
        p, p_opp = (_perm(shifted, y, alt, paired=a.paired, studentized=studentized) for alt in (side, other))
        test = "scipy.stats.permutation_test" + (
            f" ({_exactness(x, y)}; each arm constant)" if constant else " (Welch t statistic)" if studentized else ""
        )
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
    if a.paired and a.method == "sign":
        return _sign_equivalence(a, x - y, np.maximum(np.abs(x), np.abs(y)))
    if a.paired:
        d = x - y  # (n_seeds,)
        _need(d.size, 2, "seeds")
        if np.all(d == d[0]):  # identical arms, or a constant offset: exact sign test
            holds = bool(np.all(beyond(np.abs(d), m, -1, np.maximum(np.abs(x), np.abs(y)))))
            return _constant(a, float(d[0]), holds, d.size, m, f"every seed's difference ({claim})")
        low, high = stats.ttest_1samp(d, 0.0).confidence_interval(level)
        estimate, ci, n = float(d.mean()), (low, high, "t (the TOST interval)"), d.size
        p, (t1, p1, _), (t2, p2, _) = ttost_paired(x, y, -m, m)
        test = "statsmodels.stats.weightstats.ttost_paired"
    else:
        _need(min(x.size, y.size), 2, "seeds in each arm")
        estimate, n = float(x.mean() - y.mean()), x.size + y.size
        if np.all(x == x[0]) and np.all(y == y[0]):  # Welch is 0/0; exact permutation TOST
            up, down = _shifted(x, y, m), _shifted(x, y, -m)  # a constant difference on a margin is a tie
            inside = max(_perm(up, y, "greater", paired=False), _perm(down, y, "less", paired=False))
            outside = min(_perm(up, y, "less", paired=False), _perm(down, y, "greater", paired=False))
            return _judge(
                a, test=f"scipy.stats.permutation_test ({_exactness(x, y)} TOST; each arm constant)", estimate=estimate,
                ci=(estimate, estimate, "exact (each arm constant)"), p=inside, p_opp=min(1.0, 2 * outside), n=n,
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


def _sign_equivalence(a: Equivalent, d: np.ndarray, operands: np.ndarray) -> Verdict:
    """Sign TOST: more than half the paired differences lie strictly above -margin, and more than half
    strictly below +margin (the median inside the margins; exact, whatever the differences' shape).

    Each half is the exact sign test; the claim holds when both reject (intersection-union, each at
    alpha). The opposite, "the median on or beyond one margin", is either half's opposite side:
    Bonferroni over the two, as for the t TOST. A difference within rounding error of a margin counts
    against the claim (:func:`repro.stats_exact.beyond`).
    """
    m, n = a.margin, d.size
    _need(n, 2, "seeds")
    k_low, k_high = int(np.sum(beyond(d, -m, 1, operands))), int(np.sum(beyond(d, m, -1, operands)))
    (p_low, opp_low), (p_high, opp_high) = sign_test(k_low, n), sign_test(k_high, n)
    low, high, method = _median_interval(d, a.alpha)
    return _judge(
        a, test="scipy.stats.binomtest (sign TOST: two exact sign tests)", estimate=float(np.median(d)),
        ci=(low, high, f"{method}; the TOST interval"), p=max(p_low, p_high),
        p_opp=min(1.0, 2 * min(opp_low, opp_high)), n=n, threshold=m,
        claim=f"|median {a.a} - {a.b}| below {m:g} ({k_low} of {n} seeds above -{m:g}, {k_high} below {m:g})",
    )  # fmt: skip


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


def _shifted(x: np.ndarray, y: np.ndarray, m: float) -> np.ndarray:
    """x + m for constant arms, snapped to y where x - y is within rounding error of -m (a tie)."""
    scale = max(abs(x[0]), abs(y[0]))
    on = not beyond(x[0] - y[0], -m, 1, scale) and not beyond(x[0] - y[0], -m, -1, scale)
    return np.full(x.shape, y[0]) if on else x + m


def _constant(a: Any, c: float, holds: bool, n: int, threshold: float, claim: str) -> Verdict:
    """Every seed gave the same value c: the exact sign test of "this seed strictly satisfies the claim"."""
    p, p_opp = sign_test(n if holds else 0, n)
    return _judge(
        a, test="scipy.stats.binomtest (sign test; every seed equal)", estimate=c,
        ci=(c, c, "exact (every seed equal)"), p=p, p_opp=p_opp, n=n, threshold=threshold,
        claim=f"{claim} (all {n} seeds give {c:g})",
    )  # fmt: skip

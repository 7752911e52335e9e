"""Verdicts from per-seed metrics: each assertion kind is decided by one named scipy/statsmodels call.

Why this shape: a claim is judged by two one-sided tests, the claim's own (H0: the claim is false)
and the opposite one (H0: the claim holds). ``reproduced`` when the first rejects at alpha,
``not_reproduced`` when the second does, ``inconclusive`` otherwise, so a small or noisy run can
never pass and a negative control fails visibly. Intervals are two-sided at 1 - 2*alpha so that
their bounds agree with the one-sided tests. Every random draw (bootstrap, permutation) uses a
fixed generator: reports rebuilt from the same store are byte-identical.

Degenerate data: when every seed gives the same value (counts often do) the t and rank statistics
are 0/0. The exact sign test of "this seed strictly satisfies the claim" decides instead, so a
value exactly at the threshold counts against the claim, whose inequality is strict.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from repro.claim import Assertion, Difference, Equivalent, Greater, Less, Outcome, Proportion, Trend

__all__ = ["N_RESAMPLES", "RANDOM_SEED", "Verdict", "decide", "error_verdict", "holm"]

#: Seed of every bootstrap and permutation generator: same inputs give byte-identical verdicts.
RANDOM_SEED = 20_240_601
#: Resamples for bootstrap intervals and permutation tests (permutation tests go exact when smaller).
N_RESAMPLES = 9999
#: Power at which the inconclusive message says how many seeds would be needed.
TARGET_POWER = 0.8
_SIGN = "scipy.stats.binomtest (sign test)"
_BATCH = 1000  # resamples per vectorised batch: bounds memory at 10,000 seeds
#: scipy >= 1.15 names the generator argument ``rng``; older releases (pyproject allows 1.11) ``random_state``.
_RNG_ARGUMENT = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


class Verdict(BaseModel):
    """What the statistics say about one claim at one scale; plain data, JSON-serialisable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    outcome: Outcome
    test: str = Field(description="The named library call that decided, e.g. 'scipy.stats.ttest_1samp'.")
    estimate: float | None = Field(description="Mean, median, fraction, signed mean rho or mean difference.")
    ci_low: float | None
    ci_high: float | None
    ci_level: float = Field(description="Two-sided level, 1 - 2*alpha, matching the one-sided test.")
    ci_method: str = Field(description="'BCa bootstrap', 'percentile bootstrap', 'Wilson', 'exact (...)'.")
    p_value: float | None = Field(description="p of the claim's one-sided test (H0: the claim is false).")
    p_opposite: float | None = Field(description="p of the opposite one-sided test (H0: the claim holds).")
    alpha: float
    n: int = Field(ge=0, description="Observations used: seeds, seeds x cells, or both arms' seeds.")
    threshold: float | None = Field(description="threshold, margin, min_fraction or min_rho.")
    message: str = Field(description="One plain sentence: why this outcome.")

    def summary(self) -> str:
        """One line for a pytest failure or a table cell: outcome, estimate [ci], threshold, test, p."""
        if self.outcome == "error" or self.estimate is None:
            return f"{self.message} ({self.test})"
        ci = f" [{self.ci_low:.4g}, {self.ci_high:.4g}] ({self.ci_level:.0%} {self.ci_method})"
        p = "n/a" if self.p_value is None else f"{self.p_value:.3g}"
        return (
            f"{self.outcome}: estimate {self.estimate:.4g}{ci} vs {self.threshold:.4g}; "
            f"{self.test} p={p} (alpha {self.alpha:g}, n={self.n})"
        )


class _BadData(Exception):
    """Inputs no test can use (NaN, inf, too few seeds): reported as an 'error' verdict, never a pass."""


def decide(assertion: Assertion, values: Mapping[str, np.ndarray], sweep: np.ndarray | None = None) -> Verdict:
    """Judge ``assertion`` on per-seed ``values`` (arm name -> array; single-arm claims use "main").

    Shapes: greater/less (n_seeds,); proportion any shape, flattened; trend (n_seeds, K) with
    ``sweep`` the (K,) coordinates; difference/equivalent (n_seeds,) per arm. A wrong shape or a
    missing arm is a programming error (ValueError); bad data (NaN, inf, n < 2) is an error verdict.
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


def error_verdict(assertion: Assertion, message: str) -> Verdict:
    """An 'error' verdict, never a pass: bad data here, or a crash or missing results in the runner."""
    return Verdict(
        outcome="error", test=_primary_test(assertion), estimate=None, ci_low=None, ci_high=None,
        ci_level=1 - 2 * assertion.alpha, ci_method="none", p_value=None, p_opposite=None,
        alpha=assertion.alpha, n=0, threshold=_threshold(assertion), message=f"Error: {message.rstrip('.')}.",
    )  # fmt: skip


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values (statsmodels multipletests, method="holm", never its default).

    A claim without a p-value (an error verdict) stays None and does not count as a test.
    """
    present = [(i, p) for i, p in enumerate(p_values) if p is not None]
    if any(not (math.isfinite(p) and 0.0 <= p <= 1.0) for _, p in present):
        raise ValueError(f"p-values must lie in [0, 1]; got {list(p_values)}")
    adjusted: list[float | None] = [None] * len(p_values)
    if present:
        corrected = multipletests([p for _, p in present], method="holm")[1]
        for (i, _), q in zip(present, corrected, strict=True):
            adjusted[i] = float(q)
    return adjusted


# -- the kinds ------------------------------------------------------------------------------------
def _location(a: Greater | Less, values: Mapping[str, np.ndarray], sweep: Any) -> Verdict:
    """Greater / Less: the seeds' location against a threshold (t, Wilcoxon or sign test)."""
    x = _arm(values, "main", 1, "(n_seeds,)")
    _need(x.size, 2, "seeds")
    sign, word = (1, "above") if isinstance(a, Greater) else (-1, "below")
    side, other = ("greater", "less") if sign > 0 else ("less", "greater")
    thr, n, level = a.threshold, x.size, 1 - 2 * a.alpha
    if np.all(x == x[0]):
        return _constant(a, float(x[0]), sign * (x[0] - thr) > 0, n, thr, f"every seed's value {word} {thr:g}")
    if a.method == "t":
        claim_test = stats.ttest_1samp(x, thr, alternative=side)
        _finite_statistic(claim_test.statistic)
        effect = sign * (x.mean() - thr) / x.std(ddof=1)
        return _judge(
            a, test="scipy.stats.ttest_1samp", estimate=float(x.mean()), ci=_interval((x,), np.mean, level),
            p=claim_test.pvalue, p_opp=stats.ttest_1samp(x, thr, alternative=other).pvalue, n=n,
            threshold=thr, claim=f"mean {word} {thr:g}", shortfall=_t_shortfall(effect, a.alpha, n),
        )  # fmt: skip
    if a.method == "wilcoxon":
        p = stats.wilcoxon(x - thr, alternative=side).pvalue
        p_opp = stats.wilcoxon(x - thr, alternative=other).pvalue
        test = "scipy.stats.wilcoxon"
    else:  # sign test; ties with the threshold are dropped (they favour neither side of the median)
        above, below = int(np.sum(sign * (x - thr) > 0)), int(np.sum(sign * (x - thr) < 0))
        p = stats.binomtest(above, above + below, 0.5, alternative="greater").pvalue
        p_opp = stats.binomtest(above, above + below, 0.5, alternative="less").pvalue
        test = _SIGN
    return _judge(
        a, test=test, estimate=float(np.median(x)), ci=_interval((x,), np.median, level), p=p, p_opp=p_opp,
        n=n, threshold=thr, claim=f"median {word} {thr:g}", shortfall=_sign_shortfall(n, a.alpha),
    )  # fmt: skip


def _proportion(a: Proportion, values: Mapping[str, np.ndarray], sweep: Any) -> Verdict:
    """Proportion: binomial test of the fraction of observations satisfying the predicate."""
    x = _arm(values, "main", None, "any shape").ravel()
    _need(x.size, 2, "observations")
    op, v, tol = a.predicate.op, a.predicate.value, a.predicate.tolerance
    hits = {
        ">": x > v, ">=": x >= v, "<": x < v, "<=": x <= v,
        "==": np.abs(x - v) <= tol, "!=": np.abs(x - v) > tol,
    }[op]  # fmt: skip
    k, n, p0 = int(hits.sum()), x.size, a.min_fraction
    claim_test = stats.binomtest(k, n, p=p0, alternative="greater")
    # Two-sided interval at 1 - 2*alpha, like every other kind (a one-sided test's own interval
    # would end at 1 and hide how far the fraction could reach).
    two_sided = stats.binomtest(k, n, p=p0, alternative="two-sided")
    ci = two_sided.proportion_ci(confidence_level=1 - 2 * a.alpha, method="wilson")
    return _judge(
        a, test="scipy.stats.binomtest", estimate=k / n, ci=(float(ci.low), float(ci.high), "Wilson"),
        p=claim_test.pvalue, p_opp=stats.binomtest(k, n, p=p0, alternative="less").pvalue, n=n, threshold=p0,
        claim=f"more than {p0:g} of observations have value {op} {v:g}",
        shortfall=_proportion_shortfall(k / n, p0, a.alpha, n),
    )  # fmt: skip


def _trend(a: Trend, values: Mapping[str, np.ndarray], sweep: np.ndarray | None) -> Verdict:
    """Trend: mean per-seed Spearman rho, stratified permutation test within seeds.

    The estimate and its interval are signed by the claimed direction (positive = the claimed
    trend) so they compare directly with ``min_rho``.
    """
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
    sign, side, other = (1, "greater", "less") if a.direction == "increasing" else (-1, "less", "greater")
    centred = stats.rankdata(s) - (s.size + 1) / 2  # (K,) centred sweep ranks

    def mean_rho(*columns: np.ndarray, axis: int = -1) -> np.ndarray:
        return _spearman(np.stack(columns, axis=-1), centred).mean(axis=-1)  # (..., n_seeds, K) -> (...)

    def p_for(alternative: str) -> float:
        # K paired samples (one per sweep point): permutes values across sweep points within each seed.
        return stats.permutation_test(
            tuple(y.T), mean_rho, permutation_type="samples", vectorized=True, n_resamples=N_RESAMPLES,
            batch=_BATCH, alternative=alternative, **_seeded(),
        ).pvalue  # fmt: skip

    rho = sign * _spearman(y, centred)  # (n_seeds,) signed per-seed rho
    p, p_opp = p_for(side), p_for(other)
    ci = _interval((rho,), np.mean, 1 - 2 * a.alpha)
    shortfall = (
        f"the CI's lower bound {ci[0]:.3g} is below min_rho {a.min_rho:g}" if p < a.alpha else "the seeds disagree"
    ) + "; more seeds would narrow the interval"
    return _judge(
        a, test="scipy.stats.permutation_test (stratified Spearman)", estimate=float(rho.mean()), ci=ci, p=p,
        p_opp=p_opp, n=y.shape[0], threshold=a.min_rho, claim=f"{a.direction} trend, mean rho at least {a.min_rho:g}",
        shortfall=shortfall, ci_agrees=ci[0] >= a.min_rho, ci_refutes=ci[1] < a.min_rho,
    )  # fmt: skip


def _difference(a: Difference, values: Mapping[str, np.ndarray], sweep: Any) -> Verdict:
    """Difference: mean(a - b) beyond ``margin``, by paired/Welch t or permutation test."""
    x, y = _two_arms(a, values)
    sign, side, other = (1, "greater", "less") if a.direction == "greater" else (-1, "less", "greater")
    m, level = a.margin, 1 - 2 * a.alpha
    claim = f"mean {a.a} - {a.b} {'above' if sign > 0 else 'below'} {m:g}"
    if a.paired:
        d = x - y  # (n_seeds,)
        _need(d.size, 2, "seeds")
        if np.all(d == d[0]):
            return _constant(a, float(d[0]), sign * (d[0] - m) > 0, d.size, m, f"every seed's difference ({claim})")
        estimate, ci, n, constant = float(d.mean()), _interval((d,), np.mean, level), d.size, False
    else:
        _need(min(x.size, y.size), 2, "seeds in each arm")
        estimate, n = float(x.mean() - y.mean()), x.size + y.size
        constant = bool(np.all(x == x[0]) and np.all(y == y[0]))  # Welch is 0/0; a permutation test is exact
        ci = (estimate, estimate, "exact (each arm constant)") if constant else _interval((x, y), _mean_diff, level)
    if a.method == "t" and not constant:
        pair = [stats.ttest_rel(x - m, y, alternative=alt) if a.paired else
                stats.ttest_ind(x - m, y, equal_var=False, alternative=alt) for alt in (side, other)]  # fmt: skip
        _finite_statistic(pair[0].statistic)
        p, p_opp = pair[0].pvalue, pair[1].pvalue
        test = "scipy.stats.ttest_rel" if a.paired else "scipy.stats.ttest_ind (Welch)"
        shortfall = _t_shortfall(sign * (estimate - m) / _spread(x, y, a.paired), a.alpha, x.size, y.size, a.paired)
    else:
        p, p_opp = (_perm(x - m, y, alt, paired=a.paired) for alt in (side, other))
        test = "scipy.stats.permutation_test" + (" (exact; each arm constant)" if constant else "")
        shortfall = "more seeds are needed to separate the difference from the margin"
    return _judge(a, test=test, estimate=estimate, ci=ci, p=p, p_opp=p_opp, n=n, threshold=m, claim=claim,
                  shortfall=shortfall)  # fmt: skip


def _equivalent(a: Equivalent, values: Mapping[str, np.ndarray], sweep: Any) -> Verdict:
    """Equivalent: TOST within +-margin; the opposite is a one-sided test beyond either margin."""
    x, y = _two_arms(a, values)
    m, level = a.margin, 1 - 2 * a.alpha
    claim = f"|mean {a.a} - {a.b}| below {m:g}"
    if a.paired:
        d = x - y  # (n_seeds,)
        _need(d.size, 2, "seeds")
        if np.all(d == d[0]):  # identical arms, or a constant offset: exact sign test
            return _constant(a, float(d[0]), abs(d[0]) < m, d.size, m, f"every seed's difference ({claim})")
        estimate, ci, n = float(d.mean()), _interval((d,), np.mean, level), d.size
        p, (t1, p1, _), (t2, p2, _) = ttost_paired(x, y, -m, m)
        test = "statsmodels.stats.weightstats.ttost_paired"
    else:
        _need(min(x.size, y.size), 2, "seeds in each arm")
        estimate, n = float(x.mean() - y.mean()), x.size + y.size
        if np.all(x == x[0]) and np.all(y == y[0]):  # Welch is 0/0; exact permutation TOST
            inside = max(_perm(x + m, y, "greater", paired=False), _perm(x - m, y, "less", paired=False))
            beyond = min(_perm(x + m, y, "less", paired=False), _perm(x - m, y, "greater", paired=False))
            return _judge(
                a, test="scipy.stats.permutation_test (exact TOST; each arm constant)", estimate=estimate,
                ci=(estimate, estimate, "exact (each arm constant)"), p=inside, p_opp=beyond, n=n, threshold=m,
                claim=claim, shortfall="more seeds per arm would lower the smallest p the test can give",
            )  # fmt: skip
        ci = _interval((x, y), _mean_diff, level)
        p, (t1, p1, _), (t2, p2, _) = ttost_ind(x, y, -m, m, usevar="unequal")
        test = "statsmodels.stats.weightstats.ttost_ind (Welch)"
    _finite_statistic(t1)
    # ttost's halves test diff > -m (p1) and diff < m (p2); their complements are the opposite tests.
    return _judge(
        a, test=test, estimate=estimate, ci=ci, p=p, p_opp=min(1 - p1, 1 - p2), n=n, threshold=m, claim=claim,
        shortfall=_t_shortfall((m - abs(estimate)) / _spread(x, y, a.paired), a.alpha, x.size, y.size, a.paired),
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


def _constant(a: Any, c: float, holds: bool, n: int, threshold: float, claim: str) -> Verdict:
    """Every seed gave the same value c: the exact sign test of "this seed strictly satisfies the claim"."""
    k = n if holds else 0
    return _judge(
        a, test="scipy.stats.binomtest (sign test; every seed equal)", estimate=c,
        ci=(c, c, "exact (every seed equal)"),
        p=stats.binomtest(k, n, 0.5, alternative="greater").pvalue,
        p_opp=stats.binomtest(k, n, 0.5, alternative="less").pvalue, n=n, threshold=threshold,
        claim=f"{claim} (all {n} seeds give {c:g})", shortfall=_sign_shortfall(n, a.alpha),
    )  # fmt: skip


def _judge(a: Any, *, test: str, estimate: float, ci: tuple[float, float, str], p: float, p_opp: float,
           n: int, threshold: float, claim: str, shortfall: str, ci_agrees: bool = True,
           ci_refutes: bool = False) -> Verdict:  # fmt: skip
    """Outcome from the two one-sided p-values (and, for trends, the CI against min_rho), with its reason."""
    if p < a.alpha and ci_agrees:
        outcome, reason = "reproduced", f"'{claim}' is shown: one-sided p={p:.3g} < alpha={a.alpha:g} (n={n})"
    elif p_opp < a.alpha:
        outcome = "not_reproduced"
        reason = f"the opposite of '{claim}' is shown: one-sided p={p_opp:.3g} < alpha={a.alpha:g} (n={n})"
    elif ci_refutes:
        outcome = "not_reproduced"
        reason = f"the CI's upper bound {ci[1]:.3g} lies below {threshold:g}, so '{claim}' fails (n={n})"
    else:
        outcome = "inconclusive"
        reason = (
            f"neither '{claim}' nor its opposite is shown at alpha={a.alpha:g} "
            f"(p={p:.3g}, opposite p={p_opp:.3g}, n={n}); {shortfall}"
        )
    return _verdict(
        outcome=outcome, test=test, estimate=float(estimate), ci_low=float(ci[0]), ci_high=float(ci[1]),
        ci_level=1 - 2 * a.alpha, ci_method=ci[2], p_value=float(p), p_opposite=float(p_opp), alpha=a.alpha,
        n=n, threshold=float(threshold), message=f"{outcome.replace('_', ' ').capitalize()}: {reason}.",
    )  # fmt: skip


def _verdict(**fields: Any) -> Verdict:
    """A Verdict whose numbers are all finite; anything else is bad data, never a NaN in a report."""
    numbers = [fields[k] for k in ("estimate", "ci_low", "ci_high", "p_value", "p_opposite")]
    if not all(math.isfinite(x) for x in numbers):
        raise _BadData("the test gave a non-finite result (values too large, or without usable spread)")
    return Verdict(**fields)


def _interval(data: tuple[np.ndarray, ...], statistic: Callable[..., Any], level: float) -> tuple[float, float, str]:
    """scipy bootstrap CI: BCa, or percentile where BCa is degenerate (few distinct values) or warns."""
    if len(data) == 1 and np.all(data[0] == data[0][0]):
        return float(data[0][0]), float(data[0][0]), "exact (every seed equal)"
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # recorded, never leaked: a warning here means "fall back"
            result = stats.bootstrap(
                data, statistic, n_resamples=N_RESAMPLES, confidence_level=level, method=method,
                vectorized=True, axis=-1, batch=_BATCH, **_seeded(),
            )  # fmt: skip
        low, high = result.confidence_interval
        if math.isfinite(low) and math.isfinite(high) and (not caught or method == "percentile"):
            return float(low), float(high), f"{method} bootstrap"
    raise _BadData("no finite bootstrap interval exists for these values")


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


def _spearman(block: np.ndarray, centred_sweep: np.ndarray) -> np.ndarray:
    """Spearman rho of each row of (..., K) against the sweep; a constant row gives 0, not NaN."""
    ranks = stats.rankdata(block, axis=-1)
    ranks -= ranks.mean(axis=-1, keepdims=True)
    numerator = ranks @ centred_sweep  # (...)
    denominator = np.sqrt((ranks**2).sum(axis=-1) * (centred_sweep**2).sum())
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _spread(x: np.ndarray, y: np.ndarray, paired: bool) -> float:
    """Standard deviation behind Cohen's d: of the differences, or pooled over the two arms."""
    return float(np.std(x - y, ddof=1) if paired else np.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2))


def _t_shortfall(effect: float, alpha: float, n: int, n_b: int | None = None, paired: bool = True) -> str:
    """How many seeds a t-test would need at the observed effect size (statsmodels solve_power)."""
    power, kwargs = (TTestPower(), {}) if paired else (TTestIndPower(), {"ratio": (n_b or n) / n})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # solver convergence chatter; a failure just omits the number
            needed = float(np.squeeze(power.solve_power(
                effect_size=abs(effect), alpha=alpha, power=TARGET_POWER, alternative="larger", **kwargs)))  # fmt: skip
    except (ValueError, ArithmeticError, RuntimeError):
        needed = math.inf
    if not math.isfinite(needed) or needed > 1e6 or effect == 0:
        return f"the observed effect (Cohen's d={effect:.2g}) is too small for any practical number of seeds"
    return (
        f"at the observed effect size (Cohen's d={effect:.2g}) about {math.ceil(needed)} "
        f"{'seeds' if paired else 'seeds per arm'} would give {TARGET_POWER:.0%} power to show "
        f"{'it' if effect > 0 else 'its opposite'}, against {n} now"
    )


def _sign_shortfall(n: int, alpha: float) -> str:
    """Sign and signed-rank tests cannot go below p = 0.5**n: say when n is too small to ever decide."""
    if 0.5**n >= alpha:
        return (
            f"with {n} seeds the smallest p this test can give is {0.5**n:.3g}, so it needs at least "
            f"{math.ceil(math.log2(1 / alpha) + 1e-9)} seeds"
        )
    return "the seeds disagree too often for this many of them to settle it; more seeds are needed"


def _proportion_shortfall(observed: float, p0: float, alpha: float, n: int) -> str:
    """Normal-approximation sample size for a one-sample binomial test at the observed fraction."""
    if observed == p0:
        return f"the observed fraction equals min_fraction {p0:g}, so no number of observations separates them"
    z_alpha, z_power = stats.norm.ppf(1 - alpha), stats.norm.ppf(TARGET_POWER)
    z = z_alpha * math.sqrt(p0 * (1 - p0)) + z_power * math.sqrt(observed * (1 - observed))
    needed = math.ceil((z / (observed - p0)) ** 2)
    return f"at the observed fraction {observed:.3g} about {needed} observations give {TARGET_POWER:.0%} power, not {n}"


def _primary_test(a: Any) -> str:
    """The call that would have decided, named on an error verdict."""
    if isinstance(a, (Greater, Less)):
        return {"t": "scipy.stats.ttest_1samp", "wilcoxon": "scipy.stats.wilcoxon"}.get(a.method, _SIGN)
    if isinstance(a, Difference) and a.method == "t":
        return "scipy.stats.ttest_rel" if a.paired else "scipy.stats.ttest_ind (Welch)"
    if isinstance(a, Equivalent):
        return "statsmodels.stats.weightstats." + ("ttost_paired" if a.paired else "ttost_ind (Welch)")
    return "scipy.stats.binomtest" if isinstance(a, Proportion) else "scipy.stats.permutation_test"


def _threshold(a: Any) -> float:
    for name in ("threshold", "margin", "min_fraction", "min_rho"):
        if hasattr(a, name):
            return float(getattr(a, name))
    raise TypeError(f"{type(a).__name__} has no threshold")

"""What a verdict is and how its outcome follows from two one-sided p-values (see :mod:`repro.stats`).

:class:`Verdict` and :class:`SequentialRecord` (plain, JSON-serialisable data), the decision rule
(reproduced / not_reproduced / inconclusive, and the seed floor of :func:`repro.claim.min_seeds`),
the one-sentence reasons, Holm's adjustment within a family (:func:`holm`, :func:`adjust`) and the
error verdict. Kept apart from the tests that produce the p-values (:mod:`repro.stats`,
:mod:`repro.stats_exact`): this is the one place an outcome is decided, for every kind alike, and
it reads on its own. :mod:`repro.stats` re-exports every name here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field

from repro.claim import Assertion, Difference, Equivalent, Greater, Less, Outcome, Proportion, Trend, min_seeds

__all__ = ["SequentialRecord", "Verdict", "adjust", "deciding_alpha", "error_verdict", "holm", "holm_levels"]

_SIGN = "scipy.stats.binomtest (sign test)"
_SIGNED_RANK = "signed-rank test (exact sign-flip distribution, zeros kept)"
#: Intervals whose ends follow the sign test's ties (a seed on the threshold counts against the claim):
#: the end on the claim's side is in the interval, the other is not.
_SIGN_INTERVALS = ("order statistics (sign test)", "exact (every seed equal)")
Bounds = Literal["[]", "[)", "(]", "()"]


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
    ci_bounds: Bounds = Field(
        "[]",
        description="Which ends the interval holds: '[' and ']' hold their end, '(' and ')' do not. A "
        "discrete test can reject at an end itself (a seed on the threshold counts against the claim), so a "
        "threshold on an excluded end is outside the interval: it excludes the threshold exactly when the test "
        "rejects there.",
    )
    ci_low_adjusted: float | None = Field(
        None, description="The interval at the Holm level that decides (ci_level_adjusted), within the family."
    )
    ci_high_adjusted: float | None = None
    ci_level_adjusted: float | None = Field(
        None,
        description="Two-sided level 1 - 2*alpha_j of the Holm step that decides the member (holm_levels); "
        "None when judged alone, for an error and for a sequential claim.",
    )
    ci_method_adjusted: str | None = Field(None, description="ci_method of the interval at the Holm level.")
    ci_bounds_adjusted: Bounds | None = Field(None, description="ci_bounds of the interval at the Holm level.")
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

    def interval(self, *, adjusted: bool = False, digits: int = 4) -> str | None:
        """The interval as text, its ends bracketed as it holds them: "[0.78, 0.883)"; None without one.

        ``adjusted``: the interval at the Holm level that decides, instead of the one at the raw level.
        """
        low, high, bounds = (
            (self.ci_low_adjusted, self.ci_high_adjusted, self.ci_bounds_adjusted)
            if adjusted
            else (self.ci_low, self.ci_high, self.ci_bounds)
        )
        if low is None or high is None or bounds is None:
            return None
        return f"{bounds[0]}{low:.{digits}g}, {high:.{digits}g}{bounds[1]}"

    def summary(self) -> str:
        """One line for a pytest failure or a table cell: outcome, estimate [ci], threshold, test, p."""
        if self.outcome == "error" or self.estimate is None:
            return f"{self.message} ({self.test})"
        raw = self.interval()
        ci = "" if raw is None else f" {raw} ({level_text(self.ci_level)} {self.ci_method})"
        held = self.interval(adjusted=True)
        if held is not None and self.ci_level_adjusted is not None:
            ci += f", {held} at the Holm level {level_text(self.ci_level_adjusted)}"
        p = "n/a" if self.p_value is None else f"{self.p_value:.3g}"
        if self.p_adjusted is not None:
            p += f", Holm p={self.p_adjusted:.3g} over {self.family_size} in {self.family}"
        return (
            f"{self.outcome}: estimate {self.estimate:.4g}{ci} vs {self.threshold:.4g}; "
            f"{self.test} p={p} (alpha {self.alpha:g}, n={self.n})"
        )


def level_text(level: float) -> str:
    """A two-sided level as a percentage with the digits it needs: 98%, 99.78%."""
    return f"{100 * level:.4g}%"


class _BadData(Exception):
    """Inputs no test can use (NaN, inf, too few seeds): reported as an 'error' verdict, never a pass."""


def error_verdict(assertion: Assertion, message: str) -> Verdict:
    """An 'error' verdict, never a pass: bad data here, or a crash or missing results in the runner."""
    return Verdict(
        outcome="error", test=_primary_test(assertion), estimate=None, ci_low=None, ci_high=None,
        ci_level=1 - 2 * assertion.alpha, ci_method="none", p_value=None, p_opposite=None,
        alpha=assertion.alpha, n=0, threshold=_threshold(assertion), message=f"Error: {message.rstrip('.')}.",
    )  # fmt: skip


@overload
def holm(p_values: Sequence[float]) -> list[float]: ...
@overload
def holm(p_values: Sequence[float | None]) -> list[float | None]: ...
def holm(p_values: Sequence[float | None]) -> list[float] | list[float | None]:
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
        ci_level=1 - 2 * a.alpha, ci_method=ci[2], ci_bounds=_bounds(a, ci), p_value=float(p),
        p_opposite=float(p_opp), alpha=a.alpha,
        n=n, units=units, threshold=float(threshold), tested=claim, shortfall=shortfall,
        message=_message(outcome, claim, p, p_opp, a.alpha, n, False, shortfall),
    )  # fmt: skip


def _bounds(a: Any, ci: tuple[float, float, str]) -> Bounds:
    """Which ends the interval holds (see Verdict.ci_bounds).

    Under the sign test (and for every seed equal, decided by it) a seed on the threshold counts
    against the claim: the claim's test rejects for a threshold strictly beyond the end on its side,
    the opposite test for one on or beyond the other end. An end of an exact Walsh-average interval
    carries its own (:class:`repro.stats_exact._End`); every other interval is closed.
    """
    if ci[2] in _SIGN_INTERVALS and not isinstance(a, Equivalent):
        return "[)" if _claim_sign(a) > 0 else "(]"
    low, high = (bool(getattr(end, "excluded", False)) for end in ci[:2])
    return f"{'(' if low else '['}{')' if high else ']'}"  # type: ignore[return-value]


def _claim_sign(a: Any) -> int:
    """+1 where the claim is that a location lies above its threshold, -1 below."""
    if isinstance(a, Less) or getattr(a, "direction", None) == "less":
        return -1
    return 1


def holm_levels(p_values: Sequence[float], alphas: Sequence[float]) -> list[float]:
    """The level at which Holm's step-down decides each of a family's tests (``alphas``: each test's own).

    A test Holm rejects (adjusted p < alpha) is rejected at the step of its rank j (1-based, in the
    order :func:`holm` sorts): alpha / (m - j + 1), and its raw p lies below that. A test it does not
    reject is decided where the step-down stopped, after r rejections: alpha / (m - r), and its raw p
    lies at or above that (Holm is monotone: every p after the first one kept is as large). So a test
    at its level rejects exactly when the adjusted p does, the step-down's monotonicity included; its
    interval at 1 - 2 * level excludes the threshold exactly when the adjusted verdict says so (the
    levels of simultaneous intervals compatible with Holm, Strassburger and Bretz 2008).
    """
    adjusted = holm(p_values)
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rank = {i: r for r, i in enumerate(order)}  # 0-based
    m = len(p_values)
    levels = []
    for i, alpha in enumerate(alphas):
        if adjusted[i] < alpha:
            levels.append(alpha / (m - rank[i]))
        else:
            rejected = sum(1 for q in adjusted if q < alpha)
            levels.append(alpha / (m - rejected))
    return levels


def deciding_alpha(outcome: str, alpha: float, alpha_opposite: float) -> float:
    """The one-sided level whose 1 - 2*alpha interval agrees with an adjusted outcome: the claim's Holm
    level when reproduced, the opposite's when not reproduced, the smaller of the two when neither
    rejects (so neither end excludes the threshold)."""
    if outcome == "reproduced":
        return alpha
    if outcome == "not_reproduced":
        return alpha_opposite
    return min(alpha, alpha_opposite)


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

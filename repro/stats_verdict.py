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
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field

from repro.claim import Assertion, Difference, Equivalent, Greater, Less, Outcome, Proportion, Trend, min_seeds

__all__ = ["SequentialRecord", "Verdict", "adjust", "error_verdict", "holm"]

_SIGN = "scipy.stats.binomtest (sign test)"
_SIGNED_RANK = "signed-rank test (exact sign-flip distribution, zeros kept)"


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

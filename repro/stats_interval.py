"""A claim's interval at another level than its own: the Holm level that decides a family member.

Within a family the Holm-adjusted p decides (:func:`repro.stats.adjust`), so the interval at the raw
level (1 - 2*alpha) can exclude the threshold while the verdict stays inconclusive. The interval that
agrees with the adjusted verdict is the one at the level of the Holm step that decides the member
(:func:`repro.stats_verdict.holm_levels`, :func:`repro.stats_verdict.deciding_alpha`). Each kind's
interval at a level is the one :func:`repro.stats.decide` builds for the claim at that alpha: the
same code, the same test inverted, so no kind's interval is written twice.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from repro import stats
from repro.claim import Assertion

__all__ = ["interval", "with_holm_interval"]


def interval(
    assertion: Assertion, values: Mapping[str, np.ndarray], sweep: np.ndarray | None, alpha: float
) -> stats.Verdict:
    """The claim judged at one-sided level ``alpha`` instead of its own: read its ci_* fields (its interval
    at 1 - 2*alpha, with ends, method and label), not its outcome."""
    return stats.decide(assertion.model_copy(update={"alpha": alpha}), values, sweep)


def with_holm_interval(
    verdict: stats.Verdict,
    assertion: Assertion,
    values: Mapping[str, np.ndarray],
    sweep: np.ndarray | None,
    alpha: float,
) -> stats.Verdict:
    """``verdict`` with its interval at the Holm level that decides (one-sided ``alpha``) beside the raw one."""
    at = interval(assertion, values, sweep, alpha)
    if at.ci_low is None or at.ci_high is None:
        return verdict
    return verdict.model_copy(
        update={
            "ci_low_adjusted": at.ci_low,
            "ci_high_adjusted": at.ci_high,
            "ci_level_adjusted": 1 - 2 * alpha,
            "ci_method_adjusted": at.ci_method,
            "ci_bounds_adjusted": at.ci_bounds,
        }
    )

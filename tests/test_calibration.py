"""Every assertion kind is calibrated at its boundary: a claim false by the smallest margin comes out
*reproduced* at most alpha of the time (within three binomial standard errors).

The scenarios (repro.calibrate) cover normal, skewed, tied-count and correlated-cell data at n in
{7, 8, 30} and alpha in {0.01, 0.05}, through the real :func:`repro.stats.decide`. CI runs a few
hundred draws per cell; ``REPRO_CALIBRATION_REPS=20000`` runs the full table of docs/statistics.md.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from repro.calibrate import ALPHAS, NS, SCENARIOS, bound, false_reproduction_rate, reps_for
from repro.claim import Greater, Less
from repro.stats import decide

REPS = int(os.environ.get("REPRO_CALIBRATION_REPS", "400"))


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.asserted], ids=lambda s: s.name)
def test_false_reproductions_at_most_alpha_at_the_boundary(scenario):
    for alpha in ALPHAS:
        for n in NS:
            reps = reps_for(scenario, REPS)
            rate = false_reproduction_rate(scenario, n, alpha, reps)
            assert rate <= bound(alpha, reps), f"{scenario.name}: n={n}, alpha={alpha}: {rate:.4f} over {reps} draws"


def test_the_contrast_row_is_miscalibrated_so_the_suite_can_fail():
    """The t-test on right-skewed data, claim 'mean below', at n = 8: the reason skewed metrics
    default to the sign test. If this ever passed the bound, the suite would have lost its power."""
    contrast = next(s for s in SCENARIOS if not s.asserted)
    rate = false_reproduction_rate(contrast, 8, 0.01, 2000)
    assert rate > bound(0.01, 2000), rate


@pytest.mark.parametrize("method", ["t", "wilcoxon", "sign"])
def test_seeds_far_beyond_the_threshold_are_reproduced_so_size_is_not_bought_with_power(method):
    """Three sd beyond the threshold at 8 seeds: every test's power is above 0.98 (the sign test needs
    all 8 seeds beyond: 0.99865**8 = 0.989)."""
    rng = np.random.default_rng(1)
    hits = sum(
        decide(Greater(test="greater", threshold=0.0, method=method), {"main": rng.normal(3.0, 1.0, 8)}).outcome
        == "reproduced"
        for _ in range(100)
    )
    assert hits >= 95


def test_the_old_sign_test_example_is_no_longer_reproduced():
    """30 seeds, 60 % on the threshold and 40 % above: the claim 'median above t' is false."""
    rng = np.random.default_rng(2)
    outcomes = {
        decide(Less(test="less", threshold=-5.0, method="sign"), {"main": -(5.0 + (rng.random(30) < 0.4))}).outcome
        for _ in range(200)
    }
    assert "reproduced" not in outcomes

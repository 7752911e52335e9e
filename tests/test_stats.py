"""repro.stats: each assertion kind reproduces, fails its negative control, and stays inconclusive on thin data.

Data are fixed arrays or come from fixed numpy seeds, so every expected outcome is deterministic.
"""

from __future__ import annotations

import json
import math
from unittest import mock

import numpy as np
import pydantic
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from statsmodels.stats.weightstats import ttost_paired

import repro.stats
from repro.claim import Difference, Equivalent, Greater, Less, Predicate, Proportion, Trend
from repro.stats import Verdict, decide, error_verdict, holm

OUTCOMES = {"reproduced", "not_reproduced", "inconclusive", "error"}
METHODS = ["t", "wilcoxon", "sign"]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def greater(threshold: float = 5.0, **kw) -> Greater:
    return Greater(test="greater", threshold=threshold, **kw)


def less(threshold: float = 5.0, **kw) -> Less:
    return Less(test="less", threshold=threshold, **kw)


def difference(**kw) -> Difference:
    return Difference(**{"test": "difference", "a": "new", "b": "old", "direction": "greater", **kw})


def equivalent(**kw) -> Equivalent:
    return Equivalent(**{"test": "equivalent", "a": "new", "b": "old", "margin": 0.5, **kw})


def trend(**kw) -> Trend:
    return Trend(**{"test": "trend", "direction": "increasing", **kw})


def proportion(op: str = ">", value: float = 0.0, min_fraction: float = 0.5, **kw) -> Proportion:
    return Proportion(test="proportion", predicate=Predicate(op=op, value=value, **kw), min_fraction=min_fraction)


def assert_well_formed(v: Verdict) -> None:
    assert v.outcome in OUTCOMES
    assert v.message and v.summary()
    json.dumps(v.model_dump(mode="json"))
    if v.outcome == "error":
        assert v.estimate is None and v.p_value is None
        return
    numbers = (v.estimate, v.ci_low, v.ci_high, v.p_value, v.p_opposite)
    assert all(x is not None and math.isfinite(x) for x in numbers), v
    assert 0.0 <= v.p_value <= 1.0 and 0.0 <= v.p_opposite <= 1.0
    assert v.ci_low <= v.ci_high
    assert v.ci_level == pytest.approx(1 - 2 * v.alpha)


# -- greater / less ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_greater_reproduces_fails_control_and_stays_inconclusive(method):
    positive = decide(greater(method=method), {"main": rng(1).normal(8.0, 1.0, 12)})
    control = decide(greater(method=method), {"main": rng(2).normal(2.0, 1.0, 12)})  # claim false by design
    thin = decide(greater(method=method), {"main": np.array([4.0, 6.0, 5.5, 4.5, 5.8, 5.1])})
    assert (positive.outcome, control.outcome, thin.outcome) == ("reproduced", "not_reproduced", "inconclusive")
    for v in (positive, control, thin):
        assert_well_formed(v)
    assert positive.test.startswith({"t": "scipy.stats.ttest_1samp", "wilcoxon": "scipy.stats.wilcoxon"}.get(
        method, "scipy.stats.binomtest"))  # fmt: skip
    assert positive.ci_low > 5.0 and control.ci_high < 5.0


@pytest.mark.parametrize("method", METHODS)
def test_less_mirrors_greater(method):
    assert decide(less(method=method), {"main": rng(3).normal(2.0, 1.0, 12)}).outcome == "reproduced"
    assert decide(less(method=method), {"main": rng(4).normal(8.0, 1.0, 12)}).outcome == "not_reproduced"


def test_t_method_is_scipy_ttest_1samp_one_sided():
    x = rng(5).normal(5.5, 1.0, 10)
    v = decide(greater(alpha=0.05), {"main": x})
    assert v.p_value == pytest.approx(scipy.stats.ttest_1samp(x, 5.0, alternative="greater").pvalue)
    assert v.p_opposite == pytest.approx(scipy.stats.ttest_1samp(x, 5.0, alternative="less").pvalue)
    assert v.estimate == pytest.approx(x.mean()) and v.ci_method == "BCa bootstrap" and v.n == 10


def test_inconclusive_message_says_how_many_seeds_a_t_test_would_need():
    v = decide(greater(), {"main": np.array([4.6, 6.0, 5.5, 4.9, 5.8, 5.4])})
    assert v.outcome == "inconclusive"
    assert "seeds would give 80% power" in v.message


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("value", "n", "outcome"),
    [(6.0, 8, "reproduced"), (4.0, 8, "not_reproduced"), (5.0, 8, "not_reproduced"), (6.0, 6, "inconclusive")],
)
def test_every_seed_equal_is_decided_by_the_exact_sign_test(method, value, n, outcome):
    v = decide(greater(method=method), {"main": np.full(n, value)})
    assert v.outcome == outcome
    assert v.test == "scipy.stats.binomtest (sign test; every seed equal)"
    assert (v.estimate, v.ci_low, v.ci_high, v.ci_method) == (value, value, value, "exact (every seed equal)")
    assert min(v.p_value, v.p_opposite) == pytest.approx(0.5**n)  # the sign test's exact p
    assert_well_formed(v)


def test_too_few_equal_seeds_says_how_many_are_needed():
    v = decide(greater(), {"main": np.full(6, 9.0)})
    assert "needs at least 7 seeds" in v.message  # 0.5**7 < 0.01 <= 0.5**6


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_an_error_never_a_pass(bad):
    v = decide(greater(threshold=0.0), {"main": np.array([10.0, 11.0, bad, 12.0])})
    assert v.outcome == "error" and "NaN or inf" in v.message
    assert_well_formed(v)


@pytest.mark.parametrize("x", [np.array([7.0]), np.array([])])
def test_fewer_than_two_seeds_is_an_error(x):
    v = decide(greater(), {"main": x})
    assert v.outcome == "error" and "at least 2 seeds" in v.message


def test_spread_below_floating_point_resolution_is_an_error_not_a_pass():
    v = decide(less(threshold=0.0), {"main": np.array([6e-173, 0.0])})  # the variance underflows to 0
    assert v.outcome == "error" and "t statistic is undefined" in v.message


def test_error_verdict_for_the_runner_names_the_test_and_never_passes():
    v = error_verdict(difference(paired=False), "not run: 3 of 12 results missing")
    assert (v.outcome, v.test, v.threshold) == ("error", "scipy.stats.ttest_ind (Welch)", 0.0)
    assert v.message == "Error: not run: 3 of 12 results missing." and v.summary().startswith("Error: not run")
    assert_well_formed(v)


def test_wrong_shape_or_missing_arm_is_a_clear_value_error():
    with pytest.raises(ValueError, match=r"shape \(n_seeds,\)"):
        decide(greater(), {"main": np.ones((3, 4))})
    with pytest.raises(ValueError, match="no arm 'main'"):
        decide(greater(), {"other": np.ones(3)})
    with pytest.raises(ValueError, match="same shape"):
        decide(difference(), {"new": np.ones(4), "old": np.ones(5)})


# -- proportion -------------------------------------------------------------------------------------
def test_proportion_reproduces_fails_control_and_stays_inconclusive():
    assert decide(proportion(), {"main": rng(6).normal(2.0, 1.0, (10, 5))}).outcome == "reproduced"
    assert decide(proportion(), {"main": rng(7).normal(-2.0, 1.0, (10, 5))}).outcome == "not_reproduced"
    thin = decide(proportion(), {"main": np.array([1.0, 1, 1, 1, 1, 1, -1, -1, -1, -1])})  # 6 of 10 vs 0.5
    assert thin.outcome == "inconclusive" and "observations give 80% power" in thin.message


def test_proportion_uses_binomtest_and_wilson_interval():
    x = np.array([[1.0, 2, 3], [0, 5, 6]])  # 5 of 6 cells > 0.5
    v = decide(proportion(value=0.5, min_fraction=0.3), {"main": x})
    expected = scipy.stats.binomtest(5, 6, p=0.3, alternative="greater")
    # The interval is two-sided at 1 - 2*alpha, like every other kind's: it bounds the fraction above too.
    ci = scipy.stats.binomtest(5, 6, p=0.3).proportion_ci(confidence_level=0.98, method="wilson")
    assert ci.high < 1
    assert (v.estimate, v.n, v.ci_method, v.threshold) == (5 / 6, 6, "Wilson", 0.3)
    assert v.p_value == pytest.approx(expected.pvalue)
    assert (v.ci_low, v.ci_high) == pytest.approx((ci.low, ci.high))


@pytest.mark.parametrize(
    ("op", "hits"), [(">", 3), (">=", 4), ("<", 2), ("<=", 3), ("==", 2), ("!=", 4)]
)  # fmt: skip
def test_predicate_ops_with_tolerance_for_equality_only(op, hits):
    x = np.array([1.0, 2.0, 2.0 + 1e-12, 3.0, 4.0, 0.0])  # 2 + 1e-12 equals 2 within tolerance, and exceeds it
    v = decide(proportion(op=op, value=2.0, min_fraction=0.1, tolerance=1e-9), {"main": x})
    assert v.estimate == pytest.approx(hits / 6)


# -- trend ------------------------------------------------------------------------------------------
SWEEP = np.linspace(0.0, 1.0, 6)


def test_trend_reproduces_fails_control_and_stays_inconclusive():
    rising = SWEEP + rng(8).normal(0.0, 0.2, (8, 6))  # (n_seeds, K)
    assert decide(trend(min_rho=0.3), {"main": rising}, SWEEP).outcome == "reproduced"
    assert decide(trend(min_rho=0.3), {"main": -rising}, SWEEP).outcome == "not_reproduced"
    thin = decide(trend(), {"main": rng(9).normal(0.0, 1.0, (3, 6))}, SWEEP)
    assert thin.outcome == "inconclusive"
    assert decide(trend(direction="decreasing"), {"main": -rising}, SWEEP).outcome == "reproduced"


def test_trend_below_min_rho_is_not_reproduced_even_when_significant():
    weak = 0.15 * SWEEP + rng(10).normal(0.0, 0.1, (30, 6))  # a real but weak rise
    v = decide(trend(min_rho=0.9), {"main": weak}, SWEEP)
    assert v.p_value < v.alpha and v.ci_high < 0.9
    assert v.outcome == "not_reproduced" and "upper bound" in v.message


def test_trend_estimate_is_mean_per_seed_spearman_and_constant_seeds_count_zero():
    y = rng(11).normal(0.0, 1.0, (5, 6))
    y[0] = 3.0  # a seed whose metric never moves: rho 0, not NaN
    v = decide(trend(), {"main": y}, SWEEP)
    rhos = [0.0] + [scipy.stats.spearmanr(SWEEP, row).statistic for row in y[1:]]
    assert v.estimate == pytest.approx(np.mean(rhos))
    assert_well_formed(v)


def test_trend_every_seed_equal_and_perfectly_monotone_gets_an_exact_interval():
    v = decide(trend(min_rho=0.5), {"main": np.tile(np.arange(6.0), (4, 1))}, SWEEP)
    assert v.outcome == "reproduced" and (v.ci_low, v.ci_high) == (1.0, 1.0)
    assert v.ci_method == "exact (every seed equal)"


def test_trend_input_errors():
    assert decide(trend(), {"main": np.ones((4, 3))}, np.ones(3)).outcome == "error"  # constant sweep
    assert decide(trend(), {"main": np.ones((1, 3))}, np.arange(3.0)).outcome == "error"  # one seed
    with pytest.raises(ValueError, match="sweep"):
        decide(trend(), {"main": np.ones((4, 3))})
    with pytest.raises(ValueError, match=r"\(n_seeds, K\)"):
        decide(trend(), {"main": np.ones(3)}, np.arange(3.0))


# -- difference -------------------------------------------------------------------------------------
@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("method", ["t", "permutation"])
def test_difference_reproduces_fails_control_and_stays_inconclusive(paired, method):
    a = difference(margin=0.5, paired=paired, method=method)
    base = rng(12).normal(0.0, 1.0, 12)
    noise = rng(13).normal(0.0, 0.3, 12)
    positive = decide(a, {"new": base + 2.0 + noise, "old": base})
    control = decide(a, {"new": base - 1.0 + noise, "old": base})  # new is worse: claim false
    thin = decide(a, {"new": np.array([1.0, 0.2, 0.9, 0.1]), "old": np.array([0.0, 0.1, 0.2, 0.0])})
    assert (positive.outcome, control.outcome, thin.outcome) == ("reproduced", "not_reproduced", "inconclusive")
    assert_well_formed(positive)


def test_difference_t_calls_match_scipy():
    x, y = rng(14).normal(1.0, 1.0, 10), rng(15).normal(0.0, 1.0, 10)
    paired = decide(difference(margin=0.2), {"new": x, "old": y})
    welch = decide(difference(margin=0.2, paired=False, direction="less"), {"new": x, "old": y})
    assert paired.test == "scipy.stats.ttest_rel" and welch.test == "scipy.stats.ttest_ind (Welch)"
    assert paired.p_value == pytest.approx(scipy.stats.ttest_rel(x - 0.2, y, alternative="greater").pvalue)
    assert welch.p_value == pytest.approx(scipy.stats.ttest_ind(x - 0.2, y, equal_var=False, alternative="less").pvalue)


def test_difference_degenerate_arms_get_exact_answers():
    same_gap = decide(difference(), {"new": np.arange(8.0) + 1.0, "old": np.arange(8.0)})
    assert same_gap.outcome == "reproduced" and same_gap.p_value == pytest.approx(0.5**8)
    assert same_gap.ci_method == "exact (every seed equal)"
    constant = decide(difference(paired=False), {"new": np.full(5, 3.0), "old": np.full(5, 1.0)})
    assert constant.outcome == "reproduced" and constant.test.startswith("scipy.stats.permutation_test (exact")
    assert constant.p_value == pytest.approx(1 / math.comb(10, 5))
    assert (constant.ci_low, constant.ci_high) == (2.0, 2.0)


# -- equivalent -------------------------------------------------------------------------------------
@pytest.mark.parametrize("paired", [True, False])
def test_equivalent_reproduces_fails_control_and_stays_inconclusive(paired):
    base = rng(16).normal(0.0, 0.1 if not paired else 1.0, 12)
    close = base + rng(17).normal(0.0, 0.1, 12)
    a = equivalent(paired=paired)
    assert decide(a, {"new": close, "old": base}).outcome == "reproduced"
    assert decide(a, {"new": close + 2.0, "old": base}).outcome == "not_reproduced"
    thin = decide(a, {"new": np.array([0.0, 0.8, -0.5, 0.4]), "old": np.zeros(4)})
    assert thin.outcome == "inconclusive"


def test_equivalent_is_statsmodels_ttost_paired():
    x, y = rng(18).normal(0.0, 1.0, 10), rng(19).normal(0.0, 1.0, 10)
    v = decide(equivalent(margin=1.0), {"new": x, "old": y})
    assert v.test == "statsmodels.stats.weightstats.ttost_paired"
    assert v.p_value == pytest.approx(ttost_paired(x, y, -1.0, 1.0)[0])
    upper = scipy.stats.ttest_1samp(x - y, 1.0, alternative="greater").pvalue
    lower = scipy.stats.ttest_1samp(x - y, -1.0, alternative="less").pvalue
    assert v.p_opposite == pytest.approx(min(upper, lower))


@pytest.mark.parametrize(
    ("offset", "n", "outcome"),
    [(0.0, 8, "reproduced"), (0.25, 8, "reproduced"), (0.5, 8, "not_reproduced"), (0.0, 6, "inconclusive")],
)
def test_equivalent_identical_arms_get_an_exact_answer(offset, n, outcome):
    base = np.arange(float(n))
    v = decide(equivalent(margin=0.5), {"new": base + offset, "old": base})
    assert v.outcome == outcome and v.ci_method == "exact (every seed equal)"
    assert_well_formed(v)


def test_equivalent_unpaired_constant_arms_use_an_exact_permutation_tost():
    v = decide(equivalent(paired=False), {"new": np.full(5, 1.0), "old": np.full(5, 1.0)})
    assert v.outcome == "reproduced" and v.test.startswith("scipy.stats.permutation_test")


# -- holm -------------------------------------------------------------------------------------------
def test_holm_against_hand_computed_values():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_holm_passes_none_through_and_does_not_count_it():
    adjusted = holm([0.01, None, 0.04, 0.03, 0.005, None])
    assert adjusted[1] is None and adjusted[5] is None
    assert [adjusted[i] for i in (0, 2, 3, 4)] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([None, None]) == [None, None] and holm([]) == []
    with pytest.raises(ValueError):
        holm([0.1, float("nan")])


# -- the Verdict itself -----------------------------------------------------------------------------
def test_verdict_is_frozen_strict_json_and_summarised_on_one_line():
    v = decide(greater(), {"main": rng(20).normal(8.0, 1.0, 10)})
    with pytest.raises(pydantic.ValidationError):
        v.outcome = "error"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        Verdict(**v.model_dump(), extra_field=1)
    assert Verdict.model_validate_json(v.model_dump_json()) == v
    line = v.summary()
    assert "\n" not in line and line.startswith("reproduced") and "scipy.stats.ttest_1samp" in line


def test_same_inputs_give_byte_identical_verdicts():
    y = SWEEP + rng(21).normal(0.0, 0.5, (5, 6))
    x = rng(22).normal(5.2, 1.0, 9)
    for assertion, values, sweep in [(trend(), {"main": y}, SWEEP), (greater(), {"main": x}, None)]:
        assert decide(assertion, values, sweep).model_dump_json() == decide(assertion, values, sweep).model_dump_json()


# -- calibration and properties ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [greater, less])
def test_t_test_rejects_true_null_at_most_alpha(make):
    """Normal data with mean exactly at the threshold: 'reproduced' at most alpha of the time."""
    generator, trials, alpha = rng(23), 400, 0.05
    claim = make(threshold=5.0, alpha=alpha)
    samples = [generator.normal(5.0, 1.0, generator.integers(5, 31)) for _ in range(trials)]
    hits = sum(decide(claim, {"main": x}).outcome == "reproduced" for x in samples)
    assert hits / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


# Metric-like magnitudes: below ~1e-150 a spread squares to zero and t is undefined (an error, tested above).
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False).filter(lambda v: v == 0 or abs(v) > 1e-100)
FEW = settings(max_examples=50, deadline=None)


@FEW
@given(x=arrays(np.float64, st.integers(0, 15), elements=finite), method=st.sampled_from(METHODS),
       threshold=st.sampled_from([0.0, 1.0, -3.5]), is_greater=st.booleans())  # fmt: skip
def test_location_never_returns_nan_or_crashes(x, method, threshold, is_greater):
    make = greater if is_greater else less
    v = decide(make(threshold=threshold, method=method), {"main": x})
    assert_well_formed(v)
    assert (v.outcome == "error") == (x.size < 2)


@FEW
@given(x=arrays(np.float64, st.tuples(st.integers(0, 6), st.integers(1, 4)), elements=finite),
       op=st.sampled_from([">", ">=", "<", "<=", "==", "!="]), fraction=st.floats(0.0, 0.99))  # fmt: skip
def test_proportion_never_returns_nan_or_crashes(x, op, fraction):
    v = decide(proportion(op=op, min_fraction=fraction), {"main": x})
    assert_well_formed(v)
    assert (v.outcome == "error") == (x.size < 2)


@FEW
@given(data=st.data(), paired=st.booleans(), kind=st.sampled_from(["t", "permutation", "equivalent"]))
def test_two_arm_claims_never_return_nan_or_crash(data, paired, kind):
    n = data.draw(st.integers(0, 10))
    small = st.integers(-3, 3).map(float) | finite  # small integers make ties and equal arms likely
    x = data.draw(arrays(np.float64, n, elements=small))
    y = data.draw(arrays(np.float64, n if paired else data.draw(st.integers(0, 10)), elements=small))
    a = equivalent(paired=paired) if kind == "equivalent" else difference(paired=paired, method=kind)
    v = decide(a, {"new": x, "old": y})
    assert_well_formed(v)
    assert (v.outcome == "error") == (min(x.size, y.size) < 2)


@settings(max_examples=25, deadline=None)
@given(y=arrays(np.float64, st.tuples(st.integers(2, 4), st.integers(2, 5)), elements=st.integers(-2, 2).map(float)),
       direction=st.sampled_from(["increasing", "decreasing"]))  # fmt: skip
def test_trend_never_returns_nan_or_crashes(y, direction):
    with mock.patch.object(repro.stats, "N_RESAMPLES", 499):  # speed only; exactness is not under test here
        v = decide(trend(direction=direction), {"main": y}, np.arange(float(y.shape[1])))
    assert_well_formed(v)
    assert v.outcome != "error" and -1.0 <= v.estimate <= 1.0

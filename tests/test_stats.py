"""repro.stats: each assertion kind reproduces, fails its negative control, and stays inconclusive on thin data.

Data are fixed arrays or come from fixed numpy seeds, so every expected outcome is deterministic. The
engine's contract under test: one named test per kind, decided on the two one-sided p-values; no kind
decides on fewer than :func:`repro.claim.min_seeds` seeds; each interval is the one its test inverts
(two-sided at 1 - 2*alpha); seeds on a threshold count against the claim.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pydantic
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

import repro.stats
import repro.stats_exact
from repro.claim import Difference, Equivalent, Greater, Less, Predicate, Proportion, Trend, min_seeds
from repro.stats import Verdict, adjust, decide, error_verdict, holm, sign_test, signed_rank_test

OUTCOMES = {"reproduced", "not_reproduced", "inconclusive", "error"}
METHODS = [None, "t", "wilcoxon", "sign"]
SIGN = "scipy.stats.binomtest (sign test)"
CONSTANT = "scipy.stats.binomtest (sign test; every seed equal)"
SIGNED_RANK = "signed-rank test (exact sign-flip distribution, zeros kept)"
TEST_NAME = {None: "scipy.stats.ttest_1samp", "t": "scipy.stats.ttest_1samp", "wilcoxon": SIGNED_RANK, "sign": SIGN}
CI_METHOD = {
    None: "t", "t": "t", "wilcoxon": "exact Walsh-average (Hodges-Lehmann)", "sign": "order statistics (sign test)",
}  # fmt: skip


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


def proportion(op: str = ">", value: float = 0.0, min_fraction: float = 0.5, alpha: float = 0.01, **kw) -> Proportion:
    return Proportion(
        test="proportion", predicate=Predicate(op=op, value=value, **kw), min_fraction=min_fraction, alpha=alpha
    )


def seeds_beyond_threshold(n_above: int, n_on: int, n_below: int = 0, threshold: float = 5.0) -> np.ndarray:
    """Distinct values above and below ``threshold``, and seeds exactly on it."""
    above = threshold + 1.0 + np.arange(n_above)
    below = threshold - 1.0 - np.arange(n_below)
    return np.concatenate([above, np.full(n_on, threshold), below])


def assert_well_formed(v: Verdict) -> None:
    assert v.outcome in OUTCOMES
    assert v.message and v.summary()
    json.dumps(v.model_dump(mode="json"))
    assert v.p_adjusted is None and v.p_opposite_adjusted is None and v.family is None and v.family_size == 1
    if v.outcome == "error":
        assert v.estimate is None and v.p_value is None and v.message.startswith("Error: ")
        return
    numbers = (v.estimate, v.ci_low, v.ci_high, v.p_value, v.p_opposite)
    assert all(x is not None and math.isfinite(x) for x in numbers), v
    assert 0.0 <= v.p_value <= 1.0 and 0.0 <= v.p_opposite <= 1.0
    assert v.ci_low <= v.ci_high
    assert v.ci_level == pytest.approx(1 - 2 * v.alpha)
    assert v.tested and v.shortfall
    # One claim is never shown both ways, and the outcome follows the two p-values.
    assert not (v.p_value < v.alpha and v.p_opposite < v.alpha), v
    if v.outcome == "reproduced":
        assert v.p_value < v.alpha
    elif v.outcome == "not_reproduced":
        assert v.p_opposite < v.alpha
    else:
        assert "cannot decide" in v.shortfall or (v.p_value >= v.alpha and v.p_opposite >= v.alpha), v
    assert "observed power" not in v.message and "seeds would give" not in v.message


# -- the seed floor ---------------------------------------------------------------------------------
def strong_cases(n: int):
    """(assertion factory taking alpha, values, sweep): each is a clear pass given enough seeds."""
    x = 10.0 + np.arange(n) * 0.1  # far above 5, spread > 0
    sweep = np.arange(5.0)
    return [
        (lambda alpha: greater(alpha=alpha), {"main": x}, None),
        (lambda alpha: greater(alpha=alpha, method="wilcoxon"), {"main": x}, None),
        (lambda alpha: greater(alpha=alpha, method="sign"), {"main": x}, None),
        (lambda alpha: less(threshold=20.0, alpha=alpha), {"main": x}, None),
        (lambda alpha: greater(alpha=alpha), {"main": np.full(n, 9.0)}, None),  # every seed equal
        (lambda alpha: proportion(alpha=alpha), {"main": np.ones(n)}, None),
        (lambda alpha: proportion(alpha=alpha), {"main": np.ones((n, 3))}, None),
        (lambda alpha: Trend(test="trend", direction="increasing", min_rho=0.5, alpha=alpha),
         {"main": np.tile(sweep, (n, 1)) + np.arange(n)[:, None]}, sweep),
        (lambda alpha: difference(alpha=alpha), {"new": x + 5.0 + np.arange(n) * 0.01, "old": x}, None),
        (lambda alpha: difference(alpha=alpha, paired=False), {"new": x + 5.0, "old": x}, None),
        (lambda alpha: difference(alpha=alpha, method="sign"), {"new": x + 5.0 + np.arange(n) * 0.01, "old": x}, None),
        (lambda alpha: difference(alpha=alpha, method="permutation"), {"new": x + 5.0 + np.arange(n) * 0.01, "old": x},
         None),
        (lambda alpha: equivalent(alpha=alpha), {"new": x + 0.001 * np.sin(np.arange(n)), "old": x}, None),
        (lambda alpha: equivalent(alpha=alpha), {"new": x + 0.1, "old": x}, None),  # constant offset
    ]  # fmt: skip


@pytest.mark.parametrize("alpha", [0.01, 0.05])
@pytest.mark.parametrize("case", range(len(strong_cases(7))))
def test_no_kind_decides_below_min_seeds_and_every_kind_decides_at_it(alpha, case):
    needed = min_seeds(alpha)
    assert needed == {0.01: 7, 0.05: 5}[alpha]
    make, values, sweep = strong_cases(needed - 1)[case]
    thin = decide(make(alpha), values, sweep)
    assert thin.outcome == "inconclusive", thin
    assert f"cannot decide at alpha {alpha:g}: every kind needs at least {needed}" in thin.message
    assert thin.shortfall.startswith(f"{needed - 1} seeds cannot decide")
    assert_well_formed(thin)
    make, values, sweep = strong_cases(needed)[case]
    enough = decide(make(alpha), values, sweep)
    assert enough.outcome == "reproduced", enough
    assert "repro plan" in enough.shortfall
    assert_well_formed(enough)


def test_two_seeds_far_above_the_threshold_are_inconclusive_not_reproduced():
    """The issue's example: [100, 100.5] vs 1 has a tiny t-test p, but two seeds decide nothing."""
    v = decide(greater(threshold=1.0), {"main": np.array([100.0, 100.5])})
    assert v.p_value < v.alpha  # the t-test alone would have passed it
    assert v.outcome == "inconclusive" and v.n == 2
    assert "2 seeds cannot decide at alpha 0.01: every kind needs at least 7" in v.message
    assert_well_formed(v)


def test_unpaired_arms_need_the_floor_in_each_arm():
    x = rng(30).normal(0.0, 1.0, 40)
    a = difference(paired=False)
    v = decide(a, {"new": np.array([10.0, 10.5, 11.0, 10.2, 10.8, 10.1]), "old": x})  # 6 + 40 seeds
    assert v.p_value < 1e-6 and v.n == 46
    assert v.outcome == "inconclusive" and "6 seeds cannot decide" in v.message
    both = decide(a, {"new": np.array([10.0, 10.5, 11.0, 10.2, 10.8, 10.1, 10.4]), "old": x})
    assert both.outcome == "reproduced"


def test_inconclusive_message_points_to_repro_plan_not_observed_power():
    v = decide(greater(), {"main": np.array([4.6, 6.0, 5.5, 4.9, 5.8, 5.4, 5.1, 4.7])})  # 8 seeds, mean ~5.25
    assert v.outcome == "inconclusive"
    assert "repro plan" in v.message and v.shortfall in v.message
    assert "power" not in v.message.replace("80% power at the claim's smallest_effect", "")
    assert_well_formed(v)


# -- greater / less ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_greater_reproduces_fails_control_and_stays_inconclusive(method):
    positive = decide(greater(method=method), {"main": rng(1).normal(8.0, 1.0, 12)})
    control = decide(greater(method=method), {"main": rng(2).normal(2.0, 1.0, 12)})  # claim false by design
    thin = decide(greater(method=method), {"main": np.array([4.0, 6.0, 5.5, 4.5, 5.8, 5.1, 4.9, 5.2])})
    assert (positive.outcome, control.outcome, thin.outcome) == ("reproduced", "not_reproduced", "inconclusive")
    for v in (positive, control, thin):
        assert_well_formed(v)
        assert v.test == TEST_NAME[method] and v.ci_method == CI_METHOD[method]
    assert positive.ci_low > 5.0 and control.ci_high < 5.0
    assert thin.ci_low < 5.0 < thin.ci_high


@pytest.mark.parametrize("method", METHODS)
def test_less_mirrors_greater(method):
    assert decide(less(method=method), {"main": rng(3).normal(2.0, 1.0, 12)}).outcome == "reproduced"
    assert decide(less(method=method), {"main": rng(4).normal(8.0, 1.0, 12)}).outcome == "not_reproduced"


@pytest.mark.parametrize("method", [None, "t"])
def test_t_method_is_scipy_ttest_1samp_one_sided_with_its_t_interval(method):
    x = rng(5).normal(5.5, 1.0, 10)
    v = decide(greater(alpha=0.05, method=method), {"main": x})
    assert v.p_value == pytest.approx(scipy.stats.ttest_1samp(x, 5.0, alternative="greater").pvalue)
    assert v.p_opposite == pytest.approx(scipy.stats.ttest_1samp(x, 5.0, alternative="less").pvalue)
    ci = scipy.stats.ttest_1samp(x, 5.0).confidence_interval(0.9)
    assert (v.ci_low, v.ci_high) == pytest.approx((ci.low, ci.high))
    assert (v.estimate, v.ci_method, v.ci_level, v.n) == (pytest.approx(x.mean()), "t", pytest.approx(0.9), 10)
    assert v.test == "scipy.stats.ttest_1samp" and "mean above 5" in v.tested


@pytest.mark.parametrize("method", ["t", "wilcoxon"])
@pytest.mark.parametrize(
    ("value", "n", "outcome"),
    [(6.0, 8, "reproduced"), (4.0, 8, "not_reproduced"), (5.0, 8, "not_reproduced"), (6.0, 6, "inconclusive")],
)
def test_every_seed_equal_is_decided_by_the_exact_sign_test(method, value, n, outcome):
    v = decide(greater(method=method), {"main": np.full(n, value)})
    assert v.outcome == outcome
    assert v.test == CONSTANT
    assert (v.estimate, v.ci_low, v.ci_high, v.ci_method) == (value, value, value, "exact (every seed equal)")
    assert min(v.p_value, v.p_opposite) == pytest.approx(0.5**n)  # the sign test's exact p
    assert_well_formed(v)


@pytest.mark.parametrize(("value", "outcome"), [(6.0, "reproduced"), (4.0, "not_reproduced"), (5.0, "not_reproduced")])
def test_every_seed_equal_under_the_sign_method_is_the_plain_sign_test(value, outcome):
    v = decide(greater(method="sign"), {"main": np.full(8, value)})
    assert (v.outcome, v.test) == (outcome, SIGN)
    assert (v.estimate, v.ci_low, v.ci_high) == (value, value, value)
    assert min(v.p_value, v.p_opposite) == pytest.approx(0.5**8)


def test_too_few_equal_seeds_says_how_many_are_needed():
    v = decide(greater(), {"main": np.full(6, 9.0)})
    assert v.outcome == "inconclusive"
    assert "needs at least 7" in v.message and "cannot decide" in v.message  # 0.5**7 < 0.01 <= 0.5**6


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", METHODS)
def test_nan_or_inf_is_an_error_never_a_pass(bad, method):
    v = decide(greater(threshold=0.0, method=method), {"main": np.array([10.0, 11.0, bad, 12.0, 13, 14, 15, 16])})
    assert v.outcome == "error" and "NaN or inf" in v.message
    assert_well_formed(v)


@pytest.mark.parametrize("x", [np.array([7.0]), np.array([])])
@pytest.mark.parametrize("method", METHODS)
def test_fewer_than_two_seeds_is_an_error(x, method):
    v = decide(greater(method=method), {"main": x})
    assert v.outcome == "error" and "at least 2 seeds" in v.message
    assert v.test == TEST_NAME[method]


def test_spread_below_floating_point_resolution_is_an_error_not_a_pass():
    v = decide(less(threshold=0.0), {"main": np.array([6e-173, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])})
    assert v.outcome == "error" and "t statistic is undefined" in v.message


def test_error_verdict_for_the_runner_names_the_test_and_never_passes():
    v = error_verdict(difference(paired=False), "not run: 3 of 12 results missing")
    assert (v.outcome, v.test, v.threshold) == ("error", "scipy.stats.ttest_ind (Welch)", 0.0)
    assert v.message == "Error: not run: 3 of 12 results missing." and v.summary().startswith("Error: not run")
    assert_well_formed(v)
    names = {
        error_verdict(difference(method="sign"), "x").test, error_verdict(difference(method="permutation"), "x").test,
        error_verdict(trend(), "x").test, error_verdict(proportion(), "x").test, error_verdict(equivalent(), "x").test,
    }  # fmt: skip
    assert names == {
        SIGN, "scipy.stats.permutation_test", SIGN + " on per-seed Spearman rho", "scipy.stats.binomtest",
        "statsmodels.stats.weightstats.ttost_paired",
    }  # fmt: skip


def test_wrong_shape_or_missing_arm_is_a_clear_value_error():
    with pytest.raises(ValueError, match=r"shape \(n_seeds,\)"):
        decide(greater(), {"main": np.ones((3, 4))})
    with pytest.raises(ValueError, match="no arm 'main'"):
        decide(greater(), {"other": np.ones(3)})
    with pytest.raises(ValueError, match="same shape"):
        decide(difference(), {"new": np.ones(4), "old": np.ones(5)})
    with pytest.raises(TypeError, match="not an assertion model"):
        decide(object(), {"main": np.ones(3)})  # type: ignore[arg-type]


# -- ties on the threshold: the sign test ---------------------------------------------------------
def test_sign_test_is_the_exact_binomial_with_ties_in_n():
    assert sign_test(9, 30) == pytest.approx((scipy.stats.binom.sf(8, 30, 0.5), scipy.stats.binom.cdf(9, 30, 0.5)))
    assert sign_test(9, 30)[0] == pytest.approx(scipy.stats.binomtest(9, 30, 0.5, alternative="greater").pvalue)
    assert sign_test(7, 7) == pytest.approx((0.5**7, 1.0))
    assert sign_test(0, 7) == pytest.approx((1.0, 0.5**7))
    assert sign_test(0, 0) == (1.0, 1.0)


def test_seeds_on_the_threshold_count_against_the_claim():
    """The issue's example: 21 seeds on the threshold and 9 above are not 'above the threshold'."""
    x = seeds_beyond_threshold(n_above=9, n_on=21)
    v = decide(greater(method="sign"), {"main": x})
    assert v.outcome != "reproduced"
    assert (v.p_value, v.p_opposite) == pytest.approx(sign_test(9, 30))
    assert v.p_value > 0.99 and v.n == 30 and "9 of 30 seeds strictly beyond" in v.tested
    assert v.estimate == 5.0  # the median sits on the threshold
    assert v.outcome == "inconclusive"  # p_opposite = P(Bin(30, 1/2) <= 9) = 0.021 > 0.01
    assert decide(greater(method="sign", alpha=0.05), {"main": x}).outcome == "not_reproduced"


@pytest.mark.parametrize(("n_on", "n_below"), [(30, 0), (29, 1), (15, 15), (0, 30)])
def test_seeds_on_or_below_the_threshold_are_not_reproduced_and_monotone(n_on, n_below):
    v = decide(greater(method="sign"), {"main": seeds_beyond_threshold(0, n_on, n_below)})
    assert v.outcome == "not_reproduced" and v.p_opposite == pytest.approx(0.5**30)
    mirrored = decide(less(method="sign"), {"main": seeds_beyond_threshold(n_below, n_on, 0)})
    assert mirrored.outcome == "not_reproduced"


@pytest.mark.parametrize("method", ["t", "wilcoxon"])
def test_all_seeds_on_the_threshold_are_not_reproduced_by_any_method(method):
    assert decide(greater(method=method), {"main": np.full(30, 5.0)}).outcome == "not_reproduced"
    assert decide(less(method=method), {"main": np.full(30, 5.0)}).outcome == "not_reproduced"


@settings(max_examples=60, deadline=None)
@given(x=arrays(np.float64, st.integers(7, 30), elements=st.integers(-3, 3).map(float)), i=st.integers(0, 29),
       drop=st.integers(1, 4), is_greater=st.booleans())  # fmt: skip
def test_sign_verdicts_are_monotone_in_the_seeds(x, i, drop, is_greater):
    """Moving one seed against the claim never makes the claim's p smaller nor the opposite's larger."""
    i %= x.size
    sign = 1 if is_greater else -1
    a = greater(threshold=0.0, method="sign") if is_greater else less(threshold=0.0, method="sign")
    worse = x.copy()
    worse[i] -= sign * drop
    before, after = decide(a, {"main": x}), decide(a, {"main": worse})
    assert after.p_value >= before.p_value and after.p_opposite <= before.p_opposite
    rank = {"not_reproduced": 0, "inconclusive": 1, "reproduced": 2}
    assert rank[after.outcome] <= rank[before.outcome]


def j_for(n: int, alpha: float) -> int:
    """The largest j with P(Bin(n, 1/2) <= j - 1) < alpha, by counting up."""
    j = 0
    while j < n and scipy.stats.binom.cdf(j, n, 0.5) < alpha:
        j += 1
    return j


@settings(max_examples=150, deadline=None)
@given(data=st.data(), alpha=st.sampled_from([0.01, 0.05, 0.1, 0.2]), is_greater=st.booleans(),
       threshold=st.sampled_from([0.0, 0.5, 1.0]))  # fmt: skip
def test_median_interval_excludes_the_threshold_exactly_when_the_sign_test_rejects(data, alpha, is_greater, threshold):
    n = data.draw(st.integers(min_seeds(alpha), 40))
    x = data.draw(arrays(np.float64, n, elements=st.integers(-3, 4).map(float)))  # many ties with the threshold
    a = (greater if is_greater else less)(threshold=threshold, method="sign", alpha=alpha)
    v = decide(a, {"main": x})
    j = j_for(n, alpha)
    xs = np.sort(x)
    assert j >= 1 and v.ci_method == "order statistics (sign test)"
    assert (v.ci_low, v.ci_high) == (xs[j - 1], xs[n - j])  # [x_(j), x_(n+1-j)]
    assert v.estimate == np.median(x)
    if is_greater:
        assert (v.p_value < alpha) == (v.ci_low > threshold)
        assert (v.p_opposite < alpha) == (v.ci_high <= threshold)  # a seed on the threshold counts against
    else:
        assert (v.p_value < alpha) == (v.ci_high < threshold)
        assert (v.p_opposite < alpha) == (v.ci_low >= threshold)
    assert v.outcome == ("reproduced" if v.p_value < alpha else "not_reproduced" if v.p_opposite < alpha else
                         "inconclusive")  # fmt: skip


def test_median_interval_below_the_seed_floor_is_the_range():
    v = decide(greater(method="sign"), {"main": np.array([6.0, 7.0, 8.0, 9.0, 10.0, 11.0])})
    assert v.outcome == "inconclusive" and v.p_value == pytest.approx(0.5**6)
    assert (v.ci_low, v.ci_high) == (6.0, 11.0) and v.ci_method.startswith("range")


# -- the signed-rank test -----------------------------------------------------------------------------
def test_signed_rank_zeros_keep_their_ranks_and_never_beat_the_exact_floor():
    """The issue's example: 10 seeds on the threshold and 6 above give exactly 1/64, not a normal-approximation p."""
    d = np.concatenate([np.zeros(10), np.arange(1.0, 7.0)])
    assert signed_rank_test(d) == pytest.approx((1 / 64, 1.0))
    v = decide(greater(threshold=5.0, method="wilcoxon"), {"main": d + 5.0})
    assert v.p_value == pytest.approx(1 / 64) and v.outcome == "inconclusive" and v.n == 16
    assert v.ci_low <= 5.0  # the interval does not exclude the threshold either
    assert decide(less(threshold=5.0, method="wilcoxon"), {"main": 5.0 - d}).p_value == pytest.approx(1 / 64)


def test_signed_rank_edge_cases():
    assert signed_rank_test(np.zeros(5)) == (1.0, 1.0)
    assert signed_rank_test(np.array([1.0, 2.0, 3.0])) == pytest.approx((1 / 8, 1.0))
    assert signed_rank_test(np.array([-1.0, -2.0, -3.0])) == pytest.approx((1.0, 1 / 8))
    # Tied |d| take mid-ranks: ranks 1.5, 1.5, 3 -> T+ = 1.5 + 3 = 4.5 of the 8 sign patterns' sums.
    p, q = signed_rank_test(np.array([1.0, -1.0, 2.0]))
    sums = [sum(r for r, s in zip((1.5, 1.5, 3.0), signs, strict=True) if s) for signs in
            itertools.product([0, 1], repeat=3)]  # fmt: skip
    assert (p, q) == pytest.approx((np.mean([s >= 4.5 for s in sums]), np.mean([s <= 4.5 for s in sums])))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 25), seed=st.integers(0, 2**32 - 1), shift=st.floats(-1.0, 1.0))
def test_signed_rank_equals_scipy_wilcoxon_exact_without_ties_or_zeros(n, seed, shift):
    d = rng(seed).normal(shift, 1.0, n)
    assert len(set(np.abs(d))) == n and np.all(d != 0)
    p, q = signed_rank_test(d)
    assert p == pytest.approx(
        scipy.stats.wilcoxon(d, alternative="greater", method="exact").pvalue, rel=1e-7, abs=1e-14
    )
    assert q == pytest.approx(scipy.stats.wilcoxon(d, alternative="less", method="exact").pvalue, rel=1e-7, abs=1e-14)
    v = decide(greater(threshold=0.0, method="wilcoxon"), {"main": d})
    assert (v.p_value, v.p_opposite) == pytest.approx((p, q))
    i, j = np.triu_indices(n)
    assert v.estimate == pytest.approx(np.median((d[i] + d[j]) / 2))  # Hodges-Lehmann


def test_signed_rank_above_400_seeds_is_the_normal_approximation():
    d = rng(31).normal(0.05, 1.0, 450)
    p, q = signed_rank_test(d)
    assert p == pytest.approx(scipy.stats.wilcoxon(d, alternative="greater", method="approx", correction=False).pvalue)
    assert p + q == pytest.approx(1.0)
    assert_well_formed(decide(greater(threshold=0.0, method="wilcoxon"), {"main": d}))


def test_walsh_interval_is_the_inversion_of_the_signed_rank_test():
    x = 5.0 + np.array([-1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])  # one Walsh average below 5: T+ = 27 of 28
    v = decide(greater(threshold=5.0, method="wilcoxon"), {"main": x})
    assert v.p_value == pytest.approx(2 / 128) and v.p_value >= v.alpha  # the test does not reject
    # theta is in the interval iff neither one-sided test rejects at alpha: here every theta in [4, 12].
    grid = np.linspace(3.0, 13.0, 2001)
    kept = [t for t in grid if min(signed_rank_test(x - t)) >= v.alpha]
    assert (min(kept), max(kept)) == pytest.approx((4.0, 12.0))
    assert (v.ci_low, v.ci_high) == pytest.approx((4.0, 12.0))


def test_signed_rank_p_is_never_exactly_zero():
    p, _ = signed_rank_test(np.arange(1.0, 61.0))
    assert p == pytest.approx(0.5**60, rel=1e-6, abs=0.0)


# -- proportion -------------------------------------------------------------------------------------
def test_proportion_over_seeds_reproduces_fails_control_and_stays_inconclusive():
    assert decide(proportion(), {"main": rng(6).normal(3.0, 1.0, 12)}).outcome == "reproduced"
    assert decide(proportion(), {"main": rng(7).normal(-3.0, 1.0, 12)}).outcome == "not_reproduced"
    thin = decide(proportion(), {"main": np.array([1.0, 1, 1, 1, 1, 1, -1, -1, -1, -1])})  # 6 of 10 vs 0.5
    assert thin.outcome == "inconclusive" and "repro plan" in thin.message
    assert_well_formed(thin)


def test_proportion_over_seeds_is_binomtest_with_a_clopper_pearson_interval():
    x = np.array([1.0, 2, 3, 0, 5, 6, 7, 8, 0.2, 9])  # 8 of 10 seeds > 0.5
    v = decide(proportion(value=0.5, min_fraction=0.3), {"main": x})
    assert (v.estimate, v.n, v.ci_method, v.threshold, v.test) == (0.8, 10, "Clopper-Pearson", 0.3,
                                                                   "scipy.stats.binomtest")  # fmt: skip
    assert v.p_value == pytest.approx(scipy.stats.binomtest(8, 10, p=0.3, alternative="greater").pvalue)
    assert v.p_opposite == pytest.approx(scipy.stats.binomtest(8, 10, p=0.3, alternative="less").pvalue)
    # The interval is two-sided at 1 - 2*alpha, like every other kind's: it bounds the fraction above too.
    ci = scipy.stats.binomtest(8, 10).proportion_ci(confidence_level=0.98, method="exact")
    assert (v.ci_low, v.ci_high) == pytest.approx((ci.low, ci.high)) and v.ci_high < 1


@pytest.mark.parametrize("alpha", [0.01, 0.05])
@pytest.mark.parametrize("p0", [0.0, 0.1, 0.25, 0.5, 0.7])
def test_clopper_pearson_excludes_min_fraction_exactly_when_binomtest_rejects(alpha, p0):
    for n, k in ((size, hits) for size in range(2, 26) for hits in range(size + 1)):
        v = decide(proportion(min_fraction=p0, alpha=alpha), {"main": np.r_[np.ones(k), -np.ones(n - k)]})
        assert v.estimate == k / n
        assert (v.p_value < alpha) == (v.ci_low > p0), (n, k)
        assert (v.p_opposite < alpha) == (v.ci_high < p0), (n, k)


@pytest.mark.parametrize(
    ("op", "hits"), [(">", 3), (">=", 4), ("<", 2), ("<=", 3), ("==", 2), ("!=", 4)]
)  # fmt: skip
def test_predicate_ops_with_tolerance_for_equality_only(op, hits):
    x = np.array([1.0, 2.0, 2.0 + 1e-12, 3.0, 4.0, 0.0])  # 2 + 1e-12 equals 2 within tolerance, and exceeds it
    v = decide(proportion(op=op, value=2.0, min_fraction=0.1, tolerance=1e-9), {"main": x})
    assert v.estimate == pytest.approx(hits / 6)
    cells = decide(proportion(op=op, value=2.0, min_fraction=0.1, tolerance=1e-9), {"main": np.tile(x, (8, 1))})
    assert cells.estimate == pytest.approx(hits / 6)  # the same fraction in every seed


def test_proportion_with_cells_is_the_sign_test_on_per_seed_fractions():
    x = rng(8).normal(1.0, 1.0, (10, 5))
    v = decide(proportion(min_fraction=0.5), {"main": x})
    fractions = (x > 0).mean(axis=1)
    k = int(np.sum(fractions > 0.5))
    assert v.test == SIGN + " on per-seed fractions of cells" and "per-seed fractions" in v.test
    assert (v.n, v.estimate, v.threshold) == (10, np.median(fractions), 0.5)
    assert (v.p_value, v.p_opposite) == pytest.approx(sign_test(k, 10))
    j = j_for(10, 0.01)
    assert (v.ci_low, v.ci_high) == (np.sort(fractions)[j - 1], np.sort(fractions)[10 - j])


def test_proportion_with_cells_no_longer_pools_cells_across_seeds():
    """The issue's example: 4 seeds hit every cell and 6 seeds only 4 in 10; 64 of 100 pooled cells pass."""
    x = np.vstack([np.ones((4, 10)), np.tile(np.r_[np.ones(4), -np.ones(6)], (6, 1))])  # (10 seeds, 10 cells)
    pooled = scipy.stats.binomtest(64, 100, p=0.5, alternative="greater").pvalue
    assert pooled < 0.01  # what pooling the cells would have reproduced
    v = decide(proportion(min_fraction=0.5), {"main": x})
    assert v.outcome != "reproduced" and v.n == 10 and v.estimate == pytest.approx(0.4)
    assert (v.p_value, v.p_opposite) == pytest.approx(sign_test(4, 10))


def test_a_seed_fraction_equal_to_min_fraction_counts_against_the_claim():
    x = np.tile(np.r_[np.ones(5), -np.ones(5)], (10, 1))  # every seed: exactly half its cells
    v = decide(proportion(min_fraction=0.5), {"main": x})
    assert v.outcome == "not_reproduced" and v.p_opposite == pytest.approx(0.5**10)
    assert (v.estimate, v.ci_low, v.ci_high) == (0.5, 0.5, 0.5)


def test_proportion_with_cells_reproduces_and_fails_its_control():
    assert decide(proportion(), {"main": rng(9).normal(2.0, 1.0, (10, 5))}).outcome == "reproduced"
    assert decide(proportion(), {"main": rng(10).normal(-2.0, 1.0, (10, 5))}).outcome == "not_reproduced"
    assert decide(proportion(), {"main": rng(9).normal(2.0, 1.0, (6, 5))}).outcome == "inconclusive"


def test_a_tiny_min_fraction_gives_a_verdict_not_a_crash():
    v = decide(proportion(min_fraction=1e-307), {"main": np.r_[np.ones(3), -np.ones(7)]})
    assert v.outcome == "reproduced" and v.p_value < 1e-100


def test_proportion_input_errors():
    with pytest.raises(ValueError, match=r"\(n_seeds,\) or \(n_seeds, K\)"):
        decide(proportion(), {"main": np.ones((8, 2, 2))})
    with pytest.raises(ValueError, match=r"\(n_seeds,\) or \(n_seeds, K\)"):
        decide(proportion(), {"main": np.float64(1.0)})
    assert decide(proportion(), {"main": np.ones((1, 5))}).outcome == "error"  # one seed, however many cells
    assert decide(proportion(), {"main": np.array([1.0, np.nan, 2.0])}).outcome == "error"


# -- trend ------------------------------------------------------------------------------------------
SWEEP = np.linspace(0.0, 1.0, 6)


def test_trend_reproduces_fails_control_and_stays_inconclusive():
    rising = SWEEP + rng(8).normal(0.0, 0.2, (8, 6))  # (n_seeds, K)
    assert decide(trend(min_rho=0.3), {"main": rising}, SWEEP).outcome == "reproduced"
    assert decide(trend(min_rho=0.3), {"main": -rising}, SWEEP).outcome == "not_reproduced"
    thin = decide(trend(), {"main": rng(9).normal(0.0, 1.0, (8, 6))}, SWEEP)
    assert thin.outcome == "inconclusive"
    few = decide(trend(), {"main": rising[:3]}, SWEEP)
    assert few.outcome == "inconclusive" and "3 seeds cannot decide" in few.message
    assert decide(trend(direction="decreasing"), {"main": -rising}, SWEEP).outcome == "reproduced"
    assert decide(trend(direction="decreasing"), {"main": rising}, SWEEP).outcome == "not_reproduced"


def test_trend_below_min_rho_is_not_reproduced_even_when_the_trend_is_real():
    weak = 0.15 * SWEEP + rng(10).normal(0.0, 0.1, (30, 6))  # a real but weak rise
    assert decide(trend(), {"main": weak}, SWEEP).outcome == "reproduced"  # rho above 0 in most seeds
    v = decide(trend(min_rho=0.9), {"main": weak}, SWEEP)
    assert v.outcome == "not_reproduced" and v.ci_high < 0.9 and v.p_opposite < v.alpha
    assert "opposite" in v.message


def test_trend_is_the_sign_test_on_per_seed_spearman_and_constant_seeds_count_zero():
    y = rng(11).normal(0.0, 1.0, (9, 6))
    y[0] = 3.0  # a seed whose metric never moves: rho 0, not NaN
    v = decide(trend(), {"main": y}, SWEEP)
    rhos = np.array([0.0] + [scipy.stats.spearmanr(SWEEP, row).statistic for row in y[1:]])
    assert v.estimate == pytest.approx(np.median(rhos))
    assert (v.p_value, v.p_opposite) == pytest.approx(sign_test(int(np.sum(rhos > 0)), 9))
    assert v.test == SIGN + " on per-seed Spearman rho" and v.n == 9
    down = decide(trend(direction="decreasing"), {"main": y}, SWEEP)
    assert down.estimate == pytest.approx(np.median(-rhos))  # signed by the claimed direction
    assert_well_formed(v)


def test_two_seeds_with_rho_0964_do_not_reproduce_rho_above_09():
    """The issue's example: two seeds with rho 0.964 against min_rho 0.9 decide nothing; seven do."""
    sweep = np.arange(10.0)
    y = sweep.copy()
    for i in (0, 3, 6):  # three adjacent swaps: sum d^2 = 6, rho = 1 - 36/990
        y[[i, i + 1]] = y[[i + 1, i]]
    assert scipy.stats.spearmanr(sweep, y).statistic == pytest.approx(0.9636, abs=1e-4)
    two = decide(trend(min_rho=0.9), {"main": np.tile(y, (2, 1))}, sweep)
    assert two.outcome == "inconclusive" and two.estimate == pytest.approx(0.9636, abs=1e-4)
    assert "2 seeds cannot decide" in two.message
    seven = decide(trend(min_rho=0.9), {"main": np.tile(y, (7, 1))}, sweep)
    assert seven.outcome == "reproduced" and seven.p_value == pytest.approx(0.5**7)


def test_a_rho_equal_to_min_rho_counts_against_the_claim():
    sweep = np.arange(5.0)
    y = np.array([3.0, 2.0, 1.0, 5.0, 4.0])  # sum d^2 = 10: rho = 1 - 60/120 = 0.5 exactly
    assert scipy.stats.spearmanr(sweep, y).statistic == pytest.approx(0.5)
    v = decide(trend(min_rho=0.5), {"main": np.tile(y, (10, 1))}, sweep)
    assert v.outcome == "not_reproduced" and "0 of 10 seeds strictly beyond" in v.tested
    assert v.p_opposite == pytest.approx(0.5**10)


def test_trend_every_seed_perfectly_monotone_gets_a_degenerate_interval():
    v = decide(trend(min_rho=0.5), {"main": np.tile(np.arange(6.0), (7, 1))}, SWEEP)
    assert v.outcome == "reproduced" and (v.estimate, v.ci_low, v.ci_high) == (1.0, 1.0, 1.0)
    assert v.ci_method == "order statistics (sign test)"
    thin = decide(trend(min_rho=0.5), {"main": np.tile(np.arange(6.0), (4, 1))}, SWEEP)
    assert thin.outcome == "inconclusive"


def test_trend_input_errors():
    assert decide(trend(), {"main": np.ones((8, 3))}, np.ones(3)).outcome == "error"  # constant sweep
    assert decide(trend(), {"main": np.ones((8, 3))}, np.array([0.0, np.nan, 1.0])).outcome == "error"
    assert decide(trend(), {"main": np.ones((1, 3))}, np.arange(3.0)).outcome == "error"  # one seed
    assert decide(trend(), {"main": np.ones((8, 1))}, np.arange(1.0)).outcome == "error"  # one sweep point
    with pytest.raises(ValueError, match="sweep"):
        decide(trend(), {"main": np.ones((4, 3))})
    with pytest.raises(ValueError, match="sweep"):
        decide(trend(), {"main": np.ones((4, 3))}, np.arange(4.0))
    with pytest.raises(ValueError, match=r"\(n_seeds, K\)"):
        decide(trend(), {"main": np.ones(3)}, np.arange(3.0))


# -- difference -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("paired", "method"), [(True, None), (True, "t"), (False, "t"), (True, "permutation"), (False, "permutation"),
                           (True, "sign")],
)  # fmt: skip
def test_difference_reproduces_fails_control_and_stays_inconclusive(paired, method):
    a = difference(margin=0.5, paired=paired, method=method)
    base = rng(12).normal(0.0, 1.0, 12)
    noise = rng(13).normal(0.0, 0.3, 12)
    positive = decide(a, {"new": base + 2.0 + noise, "old": base})
    control = decide(a, {"new": base - 1.0 + noise, "old": base})  # new is worse: claim false
    thin = decide(a, {"new": np.array([1.0, 0.2, 0.9, 0.1]), "old": np.array([0.0, 0.1, 0.2, 0.0])})
    assert (positive.outcome, control.outcome, thin.outcome) == ("reproduced", "not_reproduced", "inconclusive")
    assert "needs at least 7" in thin.message
    for v in (positive, control, thin):
        assert_well_formed(v)
    assert positive.ci_low > 0.5 and control.ci_high < 0.5
    less_claim = difference(margin=-0.5, paired=paired, method=method, direction="less")
    assert decide(less_claim, {"new": base - 2.0 + noise, "old": base}).outcome == "reproduced"
    assert decide(less_claim, {"new": base + 1.0 + noise, "old": base}).outcome == "not_reproduced"


def test_difference_t_calls_and_intervals_match_scipy():
    x, y = rng(14).normal(1.0, 1.0, 10), rng(15).normal(0.0, 1.5, 10)
    paired = decide(difference(margin=0.2), {"new": x, "old": y})
    welch = decide(difference(margin=0.2, paired=False, direction="less"), {"new": x, "old": y})
    assert paired.test == "scipy.stats.ttest_rel" and welch.test == "scipy.stats.ttest_ind (Welch)"
    assert paired.p_value == pytest.approx(scipy.stats.ttest_rel(x - 0.2, y, alternative="greater").pvalue)
    assert paired.p_opposite == pytest.approx(scipy.stats.ttest_rel(x - 0.2, y, alternative="less").pvalue)
    assert welch.p_value == pytest.approx(scipy.stats.ttest_ind(x - 0.2, y, equal_var=False, alternative="less").pvalue)
    ci = scipy.stats.ttest_1samp(x - y, 0.0).confidence_interval(0.98)
    assert (paired.ci_low, paired.ci_high, paired.ci_method) == (pytest.approx(ci.low), pytest.approx(ci.high), "t")
    ci = scipy.stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.98)
    assert (welch.ci_low, welch.ci_high) == pytest.approx((ci.low, ci.high)) and welch.ci_method == "Welch t"
    assert (paired.estimate, welch.estimate) == pytest.approx((np.mean(x - y), x.mean() - y.mean()))
    assert (paired.n, welch.n) == (10, 20)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(7, 20), paired=st.booleans(), shift=st.floats(-1.0, 2.0),
       margin=st.sampled_from([-0.5, 0.0, 0.5]), alpha=st.sampled_from([0.01, 0.05]))  # fmt: skip
def test_difference_t_interval_excludes_the_margin_exactly_when_the_t_test_rejects(seed, n, paired, shift, margin,
                                                                                   alpha):  # fmt: skip
    g = rng(seed)
    x, y = g.normal(shift, 1.0, n), g.normal(0.0, 2.0, n if paired else n + 3)
    v = decide(difference(margin=margin, paired=paired, alpha=alpha), {"new": x, "old": y})
    assert (v.p_value < alpha) == (v.ci_low > margin)
    assert (v.p_opposite < alpha) == (v.ci_high < margin)


def test_difference_sign_method_is_the_sign_test_on_paired_differences_against_the_margin():
    x = rng(16).normal(1.0, 1.0, 15)
    y = rng(17).normal(0.0, 1.0, 15)
    v = decide(difference(margin=0.3, method="sign"), {"new": x, "old": y})
    k = int(np.sum(x - y - 0.3 > 0))
    assert v.test == SIGN and (v.p_value, v.p_opposite) == pytest.approx(sign_test(k, 15))
    assert v.estimate == pytest.approx(np.median(x - y)) and v.ci_method == "order statistics (sign test)"
    on_margin = decide(difference(margin=1.0, method="sign"), {"new": np.arange(10.0) + 1.0, "old": np.arange(10.0)})
    assert on_margin.outcome == "not_reproduced"  # every difference equals the margin: counts against
    below = decide(difference(margin=1.0, method="sign", direction="less"),
                   {"new": np.arange(10.0) + 1.0, "old": np.arange(10.0)})  # fmt: skip
    assert below.outcome == "not_reproduced"
    with pytest.raises(ValueError, match="needs paired arms"):
        decide(difference(method="sign", paired=False), {"new": x, "old": y})


def test_difference_permutation_matches_an_exhaustive_sign_flip_count():
    d = rng(18).normal(0.8, 1.0, 9)
    y = rng(19).normal(0.0, 1.0, 9)
    v = decide(difference(margin=0.2, method="permutation"), {"new": y + d, "old": y})
    flips = np.array(list(itertools.product([-1.0, 1.0], repeat=9)))  # (512, 9)
    means = (flips * (d - 0.2)).mean(axis=1)
    observed = np.mean(d - 0.2)
    assert v.p_value == pytest.approx(np.mean(means >= observed - 1e-12))
    assert v.p_opposite == pytest.approx(np.mean(means <= observed + 1e-12))
    assert v.test == "scipy.stats.permutation_test" and "not computed" in v.ci_method


def test_difference_degenerate_arms_get_exact_answers():
    same_gap = decide(difference(), {"new": np.arange(8.0) + 1.0, "old": np.arange(8.0)})
    assert same_gap.outcome == "reproduced" and same_gap.p_value == pytest.approx(0.5**8)
    assert same_gap.ci_method == "exact (every seed equal)" and same_gap.test == CONSTANT
    gap_on_margin = decide(difference(margin=1.0), {"new": np.arange(8.0) + 1.0, "old": np.arange(8.0)})
    assert gap_on_margin.outcome == "not_reproduced"
    for method in ("t", "permutation"):
        constant = decide(difference(paired=False, method=method), {"new": np.full(7, 3.0), "old": np.full(7, 1.0)})
        assert constant.outcome == "reproduced"
        assert constant.test == "scipy.stats.permutation_test (exact; each arm constant)"
        assert constant.p_value == pytest.approx(1 / math.comb(14, 7))
        assert (constant.ci_low, constant.ci_high, constant.ci_method) == (2.0, 2.0, "exact (each arm constant)")
    thin = decide(difference(paired=False), {"new": np.full(5, 3.0), "old": np.full(5, 1.0)})
    assert thin.outcome == "inconclusive" and thin.p_value == pytest.approx(1 / math.comb(10, 5))


# -- equivalent -------------------------------------------------------------------------------------
@pytest.mark.parametrize("paired", [True, False])
def test_equivalent_reproduces_fails_control_and_stays_inconclusive(paired):
    base = rng(16).normal(0.0, 0.1 if not paired else 1.0, 12)
    close = base + rng(17).normal(0.0, 0.1, 12)
    a = equivalent(paired=paired)
    assert decide(a, {"new": close, "old": base}).outcome == "reproduced"
    assert decide(a, {"new": close + 2.0, "old": base}).outcome == "not_reproduced"
    assert decide(a, {"new": close - 2.0, "old": base}).outcome == "not_reproduced"
    thin = decide(a, {"new": np.array([0.0, 0.8, -0.5, 0.4]), "old": np.zeros(4)})
    assert thin.outcome == "inconclusive"
    few = decide(a, {"new": close[:6], "old": base[:6]})  # six close seeds: too few to decide
    assert few.outcome == "inconclusive" and "6 seeds cannot decide" in few.message


def test_equivalent_paired_is_statsmodels_ttost_paired_with_a_bonferroni_opposite():
    x, y = rng(18).normal(0.0, 1.0, 10), rng(19).normal(1.5, 1.0, 10)
    v = decide(equivalent(margin=1.0), {"new": x, "old": y})
    assert v.test == "statsmodels.stats.weightstats.ttost_paired"
    assert v.p_value == pytest.approx(ttost_paired(x, y, -1.0, 1.0)[0])
    upper = scipy.stats.ttest_1samp(x - y, 1.0, alternative="greater").pvalue
    lower = scipy.stats.ttest_1samp(x - y, -1.0, alternative="less").pvalue
    assert v.p_opposite == pytest.approx(min(1.0, 2 * min(upper, lower)))
    assert v.p_opposite < 1.0  # the cap is not what this case tests
    ci = scipy.stats.ttest_1samp(x - y, 0.0).confidence_interval(0.98)
    assert (v.ci_low, v.ci_high) == pytest.approx((ci.low, ci.high)) and v.ci_method == "t (the TOST interval)"
    centred = decide(equivalent(margin=1.0), {"new": y + rng(20).normal(0.0, 2.0, 10), "old": y})
    assert centred.p_opposite == 1.0  # both one-sided "beyond" p-values are large: capped at 1


def test_equivalent_unpaired_is_welch_ttost_ind():
    x, y = rng(21).normal(0.0, 0.3, 9), rng(22).normal(0.1, 0.8, 12)
    v = decide(equivalent(margin=0.6, paired=False), {"new": x, "old": y})
    assert v.test == "statsmodels.stats.weightstats.ttost_ind (Welch)"
    p, (_, p1, _), (_, p2, _) = ttost_ind(x, y, -0.6, 0.6, usevar="unequal")
    assert v.p_value == pytest.approx(p) and v.p_opposite == pytest.approx(min(1.0, 2 * min(1 - p1, 1 - p2)))
    ci = scipy.stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.98)
    assert (v.ci_low, v.ci_high) == pytest.approx((ci.low, ci.high)) and v.ci_method == "Welch t (the TOST interval)"
    assert v.n == 21 and v.estimate == pytest.approx(x.mean() - y.mean())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(7, 20), paired=st.booleans(), shift=st.floats(-1.0, 1.0),
       margin=st.floats(0.1, 2.0), alpha=st.sampled_from([0.01, 0.05, 0.1]))  # fmt: skip
def test_tost_interval_lies_inside_the_margins_exactly_when_tost_rejects(seed, n, paired, shift, margin, alpha):
    g = rng(seed)
    x, y = g.normal(shift, 1.0, n), g.normal(0.0, 1.0, n if paired else n + 2)
    v = decide(equivalent(margin=margin, paired=paired, alpha=alpha), {"new": x, "old": y})
    assert (v.p_value < alpha) == (-margin < v.ci_low and v.ci_high < margin)


@pytest.mark.parametrize(
    ("offset", "n", "outcome"),
    [(0.0, 8, "reproduced"), (0.25, 8, "reproduced"), (-0.25, 8, "reproduced"), (0.5, 8, "not_reproduced"),
     (-0.5, 8, "not_reproduced"), (0.0, 6, "inconclusive")],
)  # fmt: skip
def test_equivalent_identical_arms_get_an_exact_answer(offset, n, outcome):
    base = np.arange(float(n))
    v = decide(equivalent(margin=0.5), {"new": base + offset, "old": base})
    assert v.outcome == outcome and v.ci_method == "exact (every seed equal)" and v.test == CONSTANT
    assert_well_formed(v)


def test_equivalent_unpaired_constant_arms_use_an_exact_permutation_tost():
    v = decide(equivalent(paired=False), {"new": np.full(7, 1.0), "old": np.full(7, 1.0)})
    assert v.outcome == "reproduced" and v.test.startswith("scipy.stats.permutation_test (exact TOST")
    assert v.p_value == pytest.approx(1 / math.comb(14, 7))  # 3432 splits: enumerated exactly
    assert (v.estimate, v.ci_low, v.ci_high) == (0.0, 0.0, 0.0)
    apart = decide(equivalent(paired=False), {"new": np.full(7, 2.0), "old": np.full(7, 1.0)})
    assert apart.outcome == "not_reproduced" and apart.p_opposite == pytest.approx(2 / math.comb(14, 7))
    larger = decide(equivalent(paired=False), {"new": np.full(8, 1.0), "old": np.full(8, 1.0)})
    assert larger.outcome == "reproduced" and larger.p_value <= 1 / (repro.stats.N_RESAMPLES + 1)
    thin = decide(equivalent(paired=False), {"new": np.full(5, 1.0), "old": np.full(5, 1.0)})
    assert thin.outcome == "inconclusive"


# -- holm and adjust ----------------------------------------------------------------------------------
def test_holm_against_hand_computed_values():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_holm_equals_statsmodels_multipletests_including_ties_and_caps():
    from statsmodels.stats.multitest import multipletests

    generator = np.random.default_rng(5)
    cases = [generator.uniform(0, 1, size) ** 3 for size in (1, 2, 5, 13, 40)]
    cases += [np.array([0.01, 0.01, 0.01, 0.5]), np.array([1.0, 1.0]), np.array([0.0, 0.2, 0.2])]
    for p in cases:
        assert holm(list(p)) == pytest.approx(list(multipletests(p, method="holm")[1]), abs=1e-15)


def test_holm_passes_none_through_and_does_not_count_it():
    adjusted = holm([0.01, None, 0.04, 0.03, 0.005, None])
    assert adjusted[1] is None and adjusted[5] is None
    assert [adjusted[i] for i in (0, 2, 3, 4)] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([None, None]) == [None, None] and holm([]) == []
    with pytest.raises(ValueError):
        holm([0.1, float("nan")])
    with pytest.raises(ValueError):
        holm([0.1, 1.5])


def test_a_lone_verdict_has_no_family():
    v = decide(greater(), {"main": rng(23).normal(8.0, 1.0, 10)})
    assert (v.p_adjusted, v.p_opposite_adjusted, v.family, v.family_size) == (None, None, None, 1)
    assert v.tested == "mean above 5" and "Holm" not in v.message and "Holm" not in v.summary()


def test_adjust_re_decides_from_the_adjusted_p_and_keeps_the_raw_p():
    v = decide(greater(), {"main": rng(24).normal(6.5, 1.0, 10)})
    assert v.outcome == "reproduced" and v.p_value < 0.005
    kept = adjust(v, p_adjusted=2 * v.p_value, p_opposite_adjusted=1.0, family="tms", family_size=2)
    assert kept.outcome == "reproduced" and kept.p_value == v.p_value and kept.p_opposite == v.p_opposite
    assert (kept.p_adjusted, kept.p_opposite_adjusted, kept.family, kept.family_size) == (
        pytest.approx(2 * v.p_value), 1.0, "tms", 2)  # fmt: skip
    assert "Holm-adjusted" in kept.message and "Holm over the 2 claims of 'tms'" in kept.message
    assert "Holm p=" in kept.summary() and "over 2 in tms" in kept.summary()
    lost = adjust(v, p_adjusted=0.03, p_opposite_adjusted=1.0, family="tms", family_size=5)
    assert lost.outcome == "inconclusive" and lost.p_value == v.p_value and "repro plan" in lost.message
    assert (lost.estimate, lost.ci_low, lost.ci_high, lost.test) == (v.estimate, v.ci_low, v.ci_high, v.test)
    Verdict.model_validate_json(lost.model_dump_json())


def test_adjust_applies_to_the_opposite_p_too():
    v = decide(greater(), {"main": rng(25).normal(3.5, 1.0, 10)})
    assert v.outcome == "not_reproduced"
    assert adjust(v, p_adjusted=1.0, p_opposite_adjusted=0.5, family="f", family_size=3).outcome == "inconclusive"
    assert adjust(v, p_adjusted=1.0, p_opposite_adjusted=0.001, family="f", family_size=3).outcome == "not_reproduced"


def test_adjust_never_decides_a_too_few_seeds_verdict_and_leaves_errors_alone():
    thin = decide(greater(threshold=1.0), {"main": np.array([100.0, 100.5])})
    assert thin.outcome == "inconclusive" and thin.p_value < thin.alpha
    still = adjust(thin, p_adjusted=thin.p_value, p_opposite_adjusted=1.0, family="f", family_size=1)
    assert still.outcome == "inconclusive" and "cannot decide" in still.message
    flat = decide(greater(), {"main": np.array([4.0, 6.0, 5.0, 5.5, 4.5, 5.2])})  # 6 seeds, p large
    assert adjust(flat, p_adjusted=1e-9, p_opposite_adjusted=1.0, family="f", family_size=1).outcome == "inconclusive"
    bad = decide(greater(), {"main": np.array([1.0, np.nan])})
    assert adjust(bad, p_adjusted=0.0, p_opposite_adjusted=1.0, family="f", family_size=3) == bad


def test_adjust_never_decides_an_unpaired_verdict_with_too_few_seeds_in_one_arm():
    a = difference(paired=False)
    v = decide(a, {"new": rng(26).normal(0.3, 1.0, 4), "old": rng(27).normal(0.0, 1.0, 20)})
    assert v.outcome == "inconclusive" and "4 seeds cannot decide" in v.message and v.p_value >= v.alpha
    assert adjust(v, p_adjusted=1e-4, p_opposite_adjusted=1.0, family="f", family_size=2).outcome == "inconclusive"


# -- the Verdict itself -----------------------------------------------------------------------------
def test_verdict_is_frozen_strict_json_and_summarised_on_one_line():
    v = decide(greater(), {"main": rng(20).normal(8.0, 1.0, 10)})
    with pytest.raises(pydantic.ValidationError):
        v.outcome = "error"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        Verdict(**v.model_dump(), extra_field=1)
    with pytest.raises(pydantic.ValidationError):
        Verdict(**{**v.model_dump(), "p_value": float("nan")})
    assert Verdict.model_validate_json(v.model_dump_json()) == v
    line = v.summary()
    assert "\n" not in line and line.startswith("reproduced") and "scipy.stats.ttest_1samp" in line


def test_same_inputs_give_byte_identical_verdicts():
    y = SWEEP + rng(21).normal(0.0, 0.5, (8, 6))
    x = rng(22).normal(5.2, 1.0, 9)
    arms = {"new": rng(28).normal(0.5, 1.0, 12), "old": rng(29).normal(0.0, 1.0, 12)}  # Monte Carlo permutations
    cases = [(trend(), {"main": y}, SWEEP), (greater(), {"main": x}, None),
             (greater(method="wilcoxon"), {"main": x}, None),
             (difference(paired=False, method="permutation"), arms, None)]  # fmt: skip
    for assertion, values, sweep in cases:
        assert decide(assertion, values, sweep).model_dump_json() == decide(assertion, values, sweep).model_dump_json()


# -- calibration and properties ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [greater, less])
@pytest.mark.parametrize("method", ["t", "wilcoxon", "sign"])
def test_true_null_is_reproduced_at_most_alpha_of_the_time(make, method):
    """Symmetric data centred exactly on the threshold: 'reproduced' at most alpha of the time."""
    generator, trials, alpha = rng(23), 300, 0.05
    claim = make(threshold=5.0, alpha=alpha, method=method)
    samples = [generator.normal(5.0, 1.0, generator.integers(2, 31)) for _ in range(trials)]
    hits = sum(decide(claim, {"main": x}).outcome == "reproduced" for x in samples)
    assert hits / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


# Metric-like magnitudes: below ~1e-150 a spread squares to zero and t is undefined (an error, tested above).
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False).filter(lambda v: v == 0 or abs(v) > 1e-100)
small = st.integers(-3, 3).map(float) | finite  # small integers make ties and equal seeds likely
FEW = settings(max_examples=50, deadline=None)


def assert_floor(v: Verdict, n_units: int) -> None:
    """Below the seed floor nothing is decided."""
    if n_units < min_seeds(v.alpha) and v.outcome != "error":
        assert v.outcome == "inconclusive"


@FEW
@given(x=arrays(np.float64, st.integers(0, 15), elements=small), method=st.sampled_from(METHODS),
       threshold=st.sampled_from([0.0, 1.0, -3.5]), is_greater=st.booleans(),
       alpha=st.sampled_from([0.01, 0.05]))  # fmt: skip
def test_location_never_returns_nan_or_crashes(x, method, threshold, is_greater, alpha):
    make = greater if is_greater else less
    v = decide(make(threshold=threshold, method=method, alpha=alpha), {"main": x})
    assert_well_formed(v)
    assert (v.outcome == "error") == (x.size < 2)
    assert_floor(v, x.size)


@FEW
@given(x=arrays(np.float64, st.integers(0, 15), elements=small), method=st.sampled_from(METHODS),
       threshold=st.sampled_from([0.0, 1.0, -3.5]))  # fmt: skip
def test_greater_and_less_are_mirror_images(x, method, threshold):
    """greater(t) on x is less(-t) on -x: the same outcome and p-values, the estimate and interval negated."""
    up = decide(greater(threshold=threshold, method=method), {"main": x})
    down = decide(less(threshold=-threshold, method=method), {"main": -x})
    assert up.outcome == down.outcome and up.test == down.test and up.n == down.n
    if up.outcome != "error":
        assert (up.p_value, up.p_opposite) == pytest.approx((down.p_value, down.p_opposite), abs=1e-12)
        assert (up.estimate, up.ci_low, up.ci_high) == pytest.approx((-down.estimate, -down.ci_high, -down.ci_low))


# A min_fraction below ~1e-306 crashes scipy's binomtest: test_a_tiny_min_fraction_gives_a_verdict_not_a_crash.
@FEW
@given(x=arrays(np.float64, st.one_of(st.integers(0, 12), st.tuples(st.integers(0, 12), st.integers(1, 4))),
                elements=small),
       op=st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
       fraction=st.floats(0.0, 0.99).filter(lambda f: f == 0 or f > 1e-300))  # fmt: skip
def test_proportion_never_returns_nan_or_crashes(x, op, fraction):
    v = decide(proportion(op=op, min_fraction=fraction), {"main": x})
    assert_well_formed(v)
    assert (v.outcome == "error") == (x.shape[0] < 2)
    assert v.outcome == "error" or v.n == x.shape[0]  # seeds, never cells
    assert_floor(v, x.shape[0])


@FEW
@given(data=st.data(), paired=st.booleans(), kind=st.sampled_from(["t", "permutation", "sign", "equivalent"]))
def test_two_arm_claims_never_return_nan_or_crash(data, paired, kind):
    if kind == "sign":
        paired = True
    n = data.draw(st.integers(0, 10))
    x = data.draw(arrays(np.float64, n, elements=small))
    y = data.draw(arrays(np.float64, n if paired else data.draw(st.integers(0, 10)), elements=small))
    a = equivalent(paired=paired) if kind == "equivalent" else difference(paired=paired, method=kind)
    v = decide(a, {"new": x, "old": y})
    assert_well_formed(v)
    assert (v.outcome == "error") == (min(x.size, y.size) < 2)
    assert_floor(v, min(x.size, y.size))


@settings(max_examples=40, deadline=None)
@given(y=arrays(np.float64, st.tuples(st.integers(2, 10), st.integers(2, 5)), elements=st.integers(-2, 2).map(float)),
       direction=st.sampled_from(["increasing", "decreasing"]), min_rho=st.sampled_from([0.0, 0.5, 0.9]))  # fmt: skip
def test_trend_never_returns_nan_or_crashes(y, direction, min_rho):
    v = decide(trend(direction=direction, min_rho=min_rho), {"main": y}, np.arange(float(y.shape[1])))
    assert_well_formed(v)
    assert v.outcome != "error" and -1.0 <= v.ci_low <= v.estimate <= v.ci_high <= 1.0
    assert_floor(v, y.shape[0])


def test_the_unpaired_permutation_test_permutes_welchs_t():
    x, y = rng(30).normal(1.0, 0.2, 9), rng(31).normal(0.0, 1.0, 9)
    v = decide(difference(paired=False, method="permutation", margin=0.2), {"new": x, "old": y})
    assert v.test == "scipy.stats.permutation_test (Welch t statistic)"

    def welch(a, b, axis):
        return scipy.stats.ttest_ind(a, b, axis=axis, equal_var=False).statistic

    expected = scipy.stats.permutation_test(
        (x - 0.2, y), welch, vectorized=True, n_resamples=9999, alternative="greater",
        rng=np.random.default_rng(repro.stats.RANDOM_SEED),
    ).pvalue  # fmt: skip
    assert v.p_value == pytest.approx(expected)


def test_every_seed_exactly_on_the_margin_in_decimal_is_on_it_not_beyond():
    """0.93 - 0.91 = 0.020000000000000018 > 0.02 in floating point; the seeds lie on the margin."""
    x, y = np.full(8, 0.93), np.full(8, 0.91)
    for method in ("sign", "t", None):
        v = decide(difference(a="x", b="y", margin=0.02, method=method), {"x": x, "y": y})
        assert v.outcome == "not_reproduced", (method, v.message)
    less_claim = difference(a="y", b="x", direction="less", margin=-0.02, method="sign")
    assert decide(less_claim, {"x": x, "y": y}).outcome == "not_reproduced"
    assert decide(difference(a="x", b="y", margin=0.02, paired=False), {"x": x, "y": y}).outcome != "reproduced"
    assert decide(equivalent(a="x", b="y", margin=0.02), {"x": x, "y": y}).outcome == "not_reproduced"
    # A value computed onto a threshold: 0.1 + 0.2 is 0.30000000000000004.
    on = np.full(8, 0.1 + 0.2)
    assert decide(greater(threshold=0.3), {"main": on}).outcome == "not_reproduced"
    assert decide(proportion(">", 0.3), {"main": on}).outcome == "not_reproduced"
    assert decide(proportion(">=", 0.3), {"main": on - 1e-16}).outcome == "reproduced"
    assert decide(proportion("==", 0.3, tolerance=0.0), {"main": on}).outcome == "reproduced"


@pytest.mark.parametrize("margin_units", [1, 100, 200, 500, 1000])
def test_no_exact_margin_pair_of_accuracies_in_k_over_10000_counts_as_beyond(margin_units):
    k = np.arange(margin_units, 10_001)
    x, y, m = k / 10_000, (k - margin_units) / 10_000, margin_units / 10_000
    naive = x - y > m  # the comparison before: a large share of exact pairs came out beyond
    assert naive.mean() > 0.1 or margin_units == 1  # the sweep does exercise the rounding
    for i in [*np.flatnonzero(naive)[::101], *range(0, k.size, 211)]:  # decide, through the sign test
        v = decide(difference(a="x", b="y", margin=m, method="sign"), {"x": np.full(8, x[i]), "y": np.full(8, y[i])})
        assert v.outcome == "not_reproduced", (x[i], y[i], m)
    operands = np.maximum(np.abs(x), np.abs(y))
    assert not repro.stats_exact.beyond(x - y, m, 1, operands).any()
    assert not repro.stats_exact.beyond(y - x, -m, -1, operands).any()


@settings(max_examples=200, deadline=None)
@given(threshold=st.floats(-1e6, 1e6), ulps=st.floats(16.0, 1e6), sign=st.sampled_from([1, -1]))
def test_a_value_beyond_the_threshold_by_more_than_rounding_still_counts(threshold, ulps, sign):
    value = threshold + sign * ulps * np.finfo(float).eps * max(abs(threshold), 1.0)
    assert repro.stats_exact.beyond(value, threshold, sign)
    assert not repro.stats_exact.beyond(value, threshold, -sign)


def test_seeds_one_unit_beyond_the_margin_in_k_over_10000_still_reproduce():
    k = np.arange(201, 10_001, 97)
    for xi, yi in zip(k / 10_000, (k - 201) / 10_000, strict=True):  # 0.0201 apart, margin 0.02
        v = decide(difference(a="x", b="y", margin=0.02, method="sign"), {"x": np.full(8, xi), "y": np.full(8, yi)})
        assert v.outcome == "reproduced", (xi, yi)


# -- the sign TOST: equivalence of a skewed metric ----------------------------------------------------------------


def _sign_tost(margin: float = 0.5, alpha: float = 0.01) -> Equivalent:
    return Equivalent(test="equivalent", a="x", b="y", margin=margin, method="sign", alpha=alpha)


def test_sign_tost_reproduces_a_median_well_inside_and_names_its_counts():
    rng = np.random.default_rng(3)
    y = rng.normal(0, 2, 20)
    v = decide(_sign_tost(), {"x": y + 0.1 * (rng.exponential(size=20) - math.log(2)), "y": y})
    assert v.outcome == "reproduced" and v.test.startswith("scipy.stats.binomtest (sign TOST")
    assert "20 of 20 seeds above -0.5, 20 below 0.5" in (v.tested or "") + v.message
    assert v.ci_low > -0.5 and v.ci_high < 0.5  # the interval agrees with the verdict


def test_sign_tost_every_difference_on_a_margin_is_against_the_claim():
    x = np.full(12, 0.93)
    v = decide(_sign_tost(margin=0.02), {"x": x, "y": np.full(12, 0.91)})  # 0.93 - 0.91 is on the margin
    assert v.outcome == "not_reproduced"


def test_sign_tost_is_exact_p_is_the_larger_half():
    d = np.array([0.1] * 9 + [0.7])  # 10 of 10 above -0.5, 9 of 10 below 0.5
    v = decide(_sign_tost(), {"x": d, "y": np.zeros(10)})
    assert v.p_value == pytest.approx(scipy.stats.binomtest(9, 10, 0.5, alternative="greater").pvalue)


def test_sign_tost_is_paired_only():
    with pytest.raises(pydantic.ValidationError, match="paired"):
        Equivalent(test="equivalent", a="x", b="y", margin=0.5, method="sign", paired=False)


def test_sign_tost_holds_its_size_on_a_skewed_difference_where_the_t_tost_does_not():
    """At the boundary (the differences' median, or mean, exactly on the margin), n = 8, alpha 0.01."""
    rng, reps, n = np.random.default_rng(11), 3000, 8
    hits = {"sign": 0, "t": 0}
    for _ in range(reps):
        y, e = rng.normal(0, 2, n), rng.exponential(size=n)
        hits["sign"] += decide(_sign_tost(), {"x": y + 0.5 + e - math.log(2), "y": y}).outcome == "reproduced"
        t_tost = Equivalent(test="equivalent", a="x", b="y", margin=0.5, method="t", alpha=0.01)
        hits["t"] += decide(t_tost, {"x": y + 0.5 + e - 1.0, "y": y}).outcome == "reproduced"
    bound = 0.01 + 3 * math.sqrt(0.01 * 0.99 / reps)
    assert hits["sign"] / reps <= bound
    assert hits["t"] / reps > bound  # the contrast: why skewed metrics default to the sign TOST

"""Every kind's interval is the inversion of its test, ties included; and within a family the interval
at the Holm level that decides agrees with the Holm-adjusted verdict."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from repro import stats
from repro.claim import Difference, Equivalent, Greater, Less, Predicate, Proportion, Trend, min_seeds
from repro.judge import ClaimRun, correct
from repro.load import load_claims
from repro.stats_exact import signed_rank_test
from repro.stats_interval import interval
from repro.stats_verdict import deciding_alpha, holm, holm_levels

from .helpers import write_claims

ALPHAS = st.sampled_from([0.01, 0.05, 0.1])
GRID = st.integers(-4, 4).map(lambda k: k / 2)  # values and thresholds on one coarse grid: ties everywhere
PROPERTY = settings(max_examples=120, deadline=None)


def excludes(v: stats.Verdict, threshold: float, side: int, *, adjusted: bool = False) -> bool:
    """The interval lies wholly above ``threshold`` (side +1) or wholly below it (side -1), an end the
    interval does not hold ('(' or ')') excluding a threshold on it."""
    low, high, bounds = (
        (v.ci_low_adjusted, v.ci_high_adjusted, v.ci_bounds_adjusted)
        if adjusted
        else (v.ci_low, v.ci_high, v.ci_bounds)
    )
    assert low is not None and high is not None and bounds is not None
    if side > 0:
        return threshold < low or (threshold == low and bounds[0] == "(")
    return threshold > high or (threshold == high and bounds[1] == ")")


def withheld(v: stats.Verdict) -> tuple[bool, bool]:
    """(claim's side, opposite side) whose t-test p a visible skew withholds (sets to 1): there the p
    is no longer the t-test's, which the t interval inverts, so that side is not compared."""
    if "is not trusted" not in v.shortfall:
        return False, False
    both = "both sides" in v.shortfall
    return both or "the claim's side" in v.shortfall, both or "the opposite side" in v.shortfall


def assert_inverts(v: stats.Verdict, threshold: float, side: int, *, adjusted: bool = False) -> None:
    """The claim's test rejects iff the interval excludes the threshold on the claim's side; the
    opposite test iff it excludes it on the other side (``adjusted``: the Holm p and interval)."""
    assert v.outcome != "error", v
    p, q = (v.p_adjusted, v.p_opposite_adjusted) if adjusted else (v.p_value, v.p_opposite)
    assert p is not None and q is not None
    claim_withheld, opposite_withheld = withheld(v)
    if not claim_withheld:
        assert (p < v.alpha) == excludes(v, threshold, side, adjusted=adjusted), v
    if not opposite_withheld:
        assert (q < v.alpha) == excludes(v, threshold, -side, adjusted=adjusted), v


def seeds(alpha: float, most: int = 16) -> st.SearchStrategy[int]:
    """At least the seed floor: below it the sign and signed-rank intervals fall back to the range."""
    return st.integers(min_seeds(alpha), most)


# -- the signed-rank (Walsh-average) interval -------------------------------------------------------------
def test_walsh_interval_agrees_with_the_signed_rank_test_on_tied_data():
    """Ties and a seed on the threshold: the test of x - 0.5 rejects at 0.05 (p = 3/64), so the interval
    starts just above 0.5, an end it does not hold; the untied Walsh-average count held 0.5."""
    x = np.array([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 2.0, 2.5])
    v = stats.decide(Greater(test="greater", threshold=0.5, method="wilcoxon", alpha=0.05), {"main": x})
    assert v.p_value == pytest.approx(3 / 64) and v.outcome == "reproduced"
    assert (v.ci_low, v.ci_bounds[0]) == (0.5, "(")  # the threshold is on an end the interval does not hold
    assert excludes(v, 0.5, +1)
    assert signed_rank_test(x - 0.75)[0] >= 0.05  # just above the end: not rejected, inside


@PROPERTY
@given(data=st.data(), alpha=ALPHAS, is_greater=st.booleans(), threshold=GRID)
def test_walsh_interval_is_the_exact_inversion_of_the_signed_rank_test(data, alpha, is_greater, threshold):
    x = data.draw(arrays(np.float64, seeds(alpha), elements=GRID))
    a = (Greater if is_greater else Less)(test="greater" if is_greater else "less", threshold=threshold,
                                          method="wilcoxon", alpha=alpha)  # fmt: skip
    v = stats.decide(a, {"main": x})
    if v.ci_method == "exact (every seed equal)":
        assert v.ci_bounds == ("[)" if is_greater else "(]")
    else:
        assert v.ci_method == "exact Walsh-average (Hodges-Lehmann)"
    assert_inverts(v, threshold, 1 if is_greater else -1)
    # Every grid point, not only the claim's threshold: the interval is the set the test does not reject.
    for t in np.arange(-2.5, 2.75, 0.25):
        p, q = signed_rank_test(x - t) if v.ci_method.startswith("exact Walsh") else (None, None)
        if p is not None:
            assert (p < alpha) == excludes(v, t, +1) and (q < alpha) == excludes(v, t, -1), t


# -- every kind, ties included ---------------------------------------------------------------------------
@PROPERTY
@given(data=st.data(), alpha=ALPHAS, is_greater=st.booleans(), threshold=GRID,
       method=st.sampled_from(["t", "sign"]))  # fmt: skip
def test_location_intervals_invert_their_tests(data, alpha, is_greater, threshold, method):
    x = data.draw(arrays(np.float64, seeds(alpha), elements=GRID))
    a = (Greater if is_greater else Less)(test="greater" if is_greater else "less", threshold=threshold,
                                          method=method, alpha=alpha)  # fmt: skip
    assert_inverts(stats.decide(a, {"main": x}), threshold, 1 if is_greater else -1)


@PROPERTY
# Not 0.1 or 0.9: 0.1**2 is alpha 0.01 itself, a p on alpha that rounding puts on either side.
@given(data=st.data(), alpha=ALPHAS, p0=st.sampled_from([0.0, 0.15, 0.3, 0.5, 0.7, 0.85]))
def test_clopper_pearson_inverts_the_binomial_test(data, alpha, p0):
    n = data.draw(st.integers(2, 30))
    x = data.draw(arrays(np.float64, n, elements=st.sampled_from([-1.0, 1.0])))
    v = stats.decide(Proportion(test="proportion", predicate=Predicate(op=">", value=0.0), min_fraction=p0,
                                alpha=alpha), {"main": x})  # fmt: skip
    assert v.ci_method == "Clopper-Pearson" and v.ci_bounds == "[]"
    assert_inverts(v, p0, +1)


@PROPERTY
@given(data=st.data(), alpha=ALPHAS, p0=st.sampled_from([0.0, 0.25, 0.5, 0.75]))
def test_per_seed_fraction_intervals_invert_the_sign_test(data, alpha, p0):
    cells = data.draw(arrays(np.float64, st.tuples(seeds(alpha), st.just(4)), elements=st.sampled_from([-1.0, 1.0])))
    v = stats.decide(Proportion(test="proportion", predicate=Predicate(op=">", value=0.0), min_fraction=p0,
                                alpha=alpha), {"main": cells})  # fmt: skip
    assert v.ci_bounds == "[)"
    assert_inverts(v, p0, +1)


@PROPERTY
@given(data=st.data(), alpha=ALPHAS, min_rho=st.sampled_from([0.0, 0.4, 0.5, 0.8]),
       direction=st.sampled_from(["increasing", "decreasing"]))  # fmt: skip
def test_trend_intervals_invert_the_sign_test_on_per_seed_rho(data, alpha, min_rho, direction):
    y = data.draw(arrays(np.float64, st.tuples(seeds(alpha), st.just(4)), elements=st.integers(-2, 2).map(float)))
    v = stats.decide(Trend(test="trend", direction=direction, min_rho=min_rho, alpha=alpha), {"main": y},
                     np.arange(4.0))  # fmt: skip
    assert_inverts(v, min_rho, +1)


@PROPERTY
@given(data=st.data(), alpha=ALPHAS, margin=GRID, direction=st.sampled_from(["greater", "less"]),
       method=st.sampled_from(["t", "sign", "welch"]))  # fmt: skip
def test_difference_intervals_invert_their_tests(data, alpha, margin, direction, method):
    paired = method != "welch"
    n = data.draw(seeds(alpha, 12))
    x = data.draw(arrays(np.float64, n, elements=GRID))
    y = data.draw(arrays(np.float64, n if paired else data.draw(seeds(alpha, 12)), elements=GRID))
    a = Difference(test="difference", a="new", b="old", direction=direction, margin=margin, paired=paired,
                   method="t" if method == "welch" else method, alpha=alpha)  # fmt: skip
    v = stats.decide(a, {"new": x, "old": y})
    if v.ci_method == "exact (each arm constant)":  # Welch is 0/0: the permutation test decides, no interval inverts it
        return
    assert_inverts(v, margin, 1 if direction == "greater" else -1)


@PROPERTY
@given(data=st.data(), alpha=ALPHAS, margin=st.sampled_from([0.25, 0.5, 1.0]), paired=st.booleans())
def test_tost_interval_inverts_tost_and_the_opposite_inverts_the_one_minus_alpha_interval(data, alpha, margin, paired):
    """Equivalence: TOST rejects iff its 1 - 2*alpha interval lies inside (-margin, margin). The opposite,
    "beyond a margin", is Bonferroni over two one-sided tests at alpha/2 each: it inverts the interval at
    1 - alpha, not the one shown (which lies beyond a margin whenever the opposite rejects)."""
    n = data.draw(seeds(alpha, 12))
    x = data.draw(arrays(np.float64, n, elements=GRID))
    y = data.draw(arrays(np.float64, n if paired else data.draw(seeds(alpha, 12)), elements=GRID))
    a = Equivalent(test="equivalent", a="new", b="old", margin=margin, paired=paired, alpha=alpha)
    v = stats.decide(a, {"new": x, "old": y})
    if v.ci_method == "exact (each arm constant)" or any(withheld(v)):  # the permutation TOST, or a withheld
        return  # t-test, decides: no interval inverts it
    inside = (-margin < v.ci_low or (-margin == v.ci_low and v.ci_bounds[0] == "(")) and (
        v.ci_high < margin or (v.ci_high == margin and v.ci_bounds[1] == ")")
    )
    assert (v.p_value < alpha) == inside, v
    if v.ci_method == "exact (every seed equal)":
        assert (v.p_opposite < alpha) == (abs(v.estimate) >= margin)  # the sign test: on a margin is beyond it
        return
    wide = interval(a, {"new": x, "old": y}, None, alpha / 2)
    assert (v.p_opposite < alpha) == (excludes(wide, margin, +1) or excludes(wide, -margin, -1)), v
    if v.p_opposite < alpha:
        assert excludes(v, margin, +1) or excludes(v, -margin, -1)


def test_the_permutation_tests_interval_says_it_is_not_the_tests_own():
    """Excluded from the inversion properties: the permutation test's own interval is not computed; the
    t interval shown beside it is labelled so."""
    generator = np.random.default_rng(3)
    for paired in (True, False):
        a = Difference(test="difference", a="new", b="old", direction="greater", paired=paired, method="permutation")
        v = stats.decide(a, {"new": generator.normal(1, 1, 9), "old": generator.normal(0, 1, 9)})
        assert v.ci_method.endswith("(the permutation test's own interval is not computed)")


# -- Holm's levels --------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(p=st.lists(st.floats(0.0, 1.0) | st.sampled_from([0.001, 0.002, 0.004, 0.01]), min_size=1, max_size=12),
       alpha=ALPHAS)  # fmt: skip
def test_holm_levels_reject_exactly_what_the_adjusted_p_rejects(p, alpha):
    levels = holm_levels(p, [alpha] * len(p))
    for raw, adjusted, level in zip(p, holm(p), levels, strict=True):
        assert alpha / len(p) <= level <= alpha
        assert (raw < level) == (adjusted < alpha), (p, raw, level)


def test_holm_levels_by_hand():
    # sorted 0.001 (x4 = 0.004), 0.003 (x3 = 0.009), 0.02 (x2 = 0.04), 0.5: two rejected at 0.01, at 0.01/4
    # and 0.01/3; the step-down stops at the third, so the rest are decided at 0.01/2.
    assert holm_levels([0.5, 0.003, 0.001, 0.02], [0.01] * 4) == pytest.approx([0.005, 0.01 / 3, 0.0025, 0.005])
    # The step-down's monotonicity: 0.0049 alone would pass its step (2 x 0.0049 < 0.01), but Holm stopped
    # at 0.004 (3 x 0.004 = 0.012) before it; it is decided at 0.01/3, where it is not rejected either.
    assert holm([0.3, 0.004, 0.0049]) == pytest.approx([0.3, 0.012, 0.012])
    assert holm_levels([0.3, 0.004, 0.0049], [0.01] * 3) == pytest.approx([0.01 / 3] * 3)
    assert deciding_alpha("reproduced", 0.001, 0.01) == 0.001
    assert deciding_alpha("not_reproduced", 0.001, 0.01) == 0.01
    assert deciding_alpha("inconclusive", 0.004, 0.002) == 0.002


# -- correct(): the interval at the Holm level that decides ----------------------------------------------
FAMILY = """
[[claim]]
id = "fam.c{i}"
source = "test"
statement = "A location beside its threshold"
evidence = "By construction"
experiment = "calibration.normal"
metric = "value"
seeds = {n}
assertion = {assertion}
params = {{ mean = 3.0, sd = 0.5, stream = {i} }}

[claim.scales.ci]
seeds = {n}
"""


def _family(tmp_path, assertions: list[str], n: int):
    body = "".join(FAMILY.format(i=i, n=n, assertion=a) for i, a in enumerate(assertions))
    return load_claims(write_claims(tmp_path / "c", body, name="fam.toml"))


def _run(claim, x: np.ndarray) -> ClaimRun:
    """A judged claim with stored-looking results (what correct() recomputes the interval from)."""
    results = [SimpleNamespace(metrics={"value": float(v)}, sweep={}, seed=i) for i, v in enumerate(x)]
    return ClaimRun(claim, "ci", stats.decide(claim.assertion, {"main": x}), list(range(x.size)),
                    results={"main": results})  # type: ignore[dict-item]  # fmt: skip


def test_an_interval_at_the_raw_level_can_exclude_what_holm_does_not_reject(tmp_path):
    """10 of 11 seeds above 0: the sign test's raw p = 0.0059 < 0.01 and its 98% interval starts at 3;
    beside two members that show nothing Holm's first step multiplies the p by 3 (0.018), so the claim is
    inconclusive and its interval at the Holm level (0.01 / 3) starts at -1: it holds the threshold."""
    claim_set = _family(tmp_path, ['{ test = "greater", threshold = 0.0, method = "sign" }'] * 3, 11)
    data = [np.r_[np.full(10, 3.0), -1.0], np.full(11, -1.0), np.full(11, -1.0)]
    runs = correct([_run(c, x) for c, x in zip(claim_set, data, strict=True)], claim_set, "ci")
    v = runs[0].verdict
    assert v.outcome == "inconclusive" and excludes(v, 0.0, +1)  # the raw interval excludes 0
    assert (v.ci_low_adjusted, v.ci_high_adjusted, v.ci_bounds_adjusted) == (-1.0, 3.0, "[)")
    assert v.ci_level_adjusted == pytest.approx(1 - 2 * 0.01 / 3)
    assert not excludes(v, 0.0, +1, adjusted=True) and not excludes(v, 0.0, -1, adjusted=True)
    for other in runs[1:]:  # every seed at -1: not reproduced at Holm's steps 0.01/3 and 0.01/2
        assert other.verdict.outcome == "not_reproduced" and excludes(other.verdict, 0.0, -1, adjusted=True)
    assert "at the Holm level 99.33%" in v.summary()


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_the_holm_interval_excludes_the_threshold_exactly_when_the_adjusted_p_rejects(tmp_path_factory, data):
    assertions = [
        '{ test = "greater", threshold = 0.0, method = "t" }',
        '{ test = "less", threshold = 0.5, method = "wilcoxon" }',
        '{ test = "greater", threshold = 0.0, method = "sign" }',
        '{ test = "less", threshold = 1.0, method = "sign" }',
    ]
    claim_set = _family(tmp_path_factory.mktemp("fam"), assertions, 12)
    values = [data.draw(arrays(np.float64, 12, elements=GRID)) for _ in assertions]
    runs = correct([_run(c, x) for c, x in zip(claim_set, values, strict=True)], claim_set, "ci")
    for run in runs:
        v, a = run.verdict, run.claim.assertion
        side = 1 if isinstance(a, Greater) else -1
        assert v.ci_level_adjusted is not None and v.ci_level_adjusted >= v.ci_level
        assert_inverts(v, a.threshold, side, adjusted=True)

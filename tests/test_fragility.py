"""repro.fragility: how many seeds decide a verdict, with known answers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from repro import fragility, stats
from repro.judge import ClaimRun
from repro.load import load_claims

from .helpers import write_claims

CLAIM = """
[[claim]]
id = "demo.{name}"
source = "test"
statement = "Values above 0"
evidence = "By construction"
experiment = "calibration.normal"
metric = "value"
seeds = {seeds}
assertion = {{ test = "greater", threshold = 0.0, alpha = 0.01, method = "{method}" }}
{extra}
[claim.scales.ci]
seeds = {seeds}
"""


@dataclass
class _Result:
    seed: int
    metrics: dict
    sweep: dict = field(default_factory=dict)


def _run(tmp_path, values, method="sign", extra="", name="c"):
    path = write_claims(tmp_path / name, CLAIM.format(name=name, seeds=len(values), method=method, extra=extra))
    claim = load_claims(path).get(f"demo.{name}")
    results = {"main": [_Result(i, {"value": float(v)}) for i, v in enumerate(values)]}
    verdict = stats.decide(claim.assertion, {"main": np.asarray(values, dtype=float)})
    return ClaimRun(claim, "ci", verdict, list(range(len(values))), results)


def test_a_sign_test_at_its_fewest_seeds_is_fragile_every_seed_decides(tmp_path):
    run = _run(tmp_path, [1.0] * 7)  # 7 of 7 above: p = 0.0078 < 0.01; any 6 of 6 cannot decide at 0.01
    assert run.verdict.outcome == "reproduced"
    margin = fragility.margin(run)
    assert margin is not None and margin.fragile and margin.leave_one_out == 7 and margin.decides == 1
    assert margin.label == "fragile: any of 7 seeds alone decides"


def test_one_seed_on_the_edge_decides_and_only_that_one(tmp_path):
    # 9 of 10 above: p = 0.0107, inconclusive; without the one seed below, 9 of 9 reproduce.
    run = _run(tmp_path, [1.0] * 9 + [-1.0])
    assert run.verdict.outcome == "inconclusive"
    margin = fragility.margin(run)
    assert margin is not None and margin.fragile and margin.leave_one_out == 1
    assert margin.label == "fragile: one seed alone decides"


def test_two_seeds_decide_where_leaving_one_out_keeps_the_verdict(tmp_path):
    run = _run(tmp_path, [1.0] * 8)  # 8/8: p = 0.0039; 7/7 still reproduce; 6/6 cannot decide
    margin = fragility.margin(run)
    assert margin is not None and not margin.fragile and margin.leave_one_out == 0 and margin.decides == 2
    assert margin.label == "robust: 2 seeds decide"


def test_a_clear_effect_over_many_seeds_is_robust_beyond_the_search(tmp_path):
    values = np.random.default_rng(0).normal(1.0, 0.5, 30)
    run = _run(tmp_path, values, method="t", extra="smallest_effect = 0.2")
    assert run.verdict.outcome == "reproduced"
    margin = fragility.margin(run)
    assert margin is not None and margin.decides is None and margin.leave_one_out == 0
    assert margin.near == int(np.sum(np.abs(values) <= 0.2))  # seeds within the smallest effect of 0
    assert margin.to_json()["fragile"] is False


def test_holm_within_the_family_counts(tmp_path):
    """8 of 8 (p = 0.0039) beside a member with p = 0.006: Holm's first step tests 0.0039 at alpha / 2,
    and it holds (adjusted 0.0078). Without any one seed (p = 0.0078) the first step tests the member's
    0.006 at alpha / 2 and stops: the claim's adjusted p is 0.012, and its verdict moves."""
    run = _run(tmp_path, [1.0] * 8)
    assert fragility.margin(run).decides == 2  # alone
    verdict = stats.adjust(run.verdict, p_adjusted=0.0078, p_opposite_adjusted=1.0, family="demo.f", family_size=2)
    other_verdict = run.verdict.model_copy(update={"p_value": 0.006, "family": "demo.f", "family_size": 2})
    member = ClaimRun(run.claim, "ci", verdict, run.seeds, run.results)
    other = ClaimRun(run.claim.model_copy(update={"id": "demo.other"}), "ci", other_verdict, run.seeds, run.results)
    assert verdict.outcome == "reproduced"
    margin = fragility.margins([member, other])["demo.c"]
    assert margin is not None and margin.fragile and margin.leave_one_out == 8


def test_no_margin_for_errors_or_missing_results(tmp_path):
    run = _run(tmp_path, [1.0] * 8)
    assert fragility.margin(ClaimRun(run.claim, "ci", stats.error_verdict(run.claim.assertion, "boom"), run.seeds,
                                     run.results)) is None  # fmt: skip
    assert (
        fragility.margin(ClaimRun(run.claim, "ci", run.verdict, run.seeds, {"main": run.results["main"][:3]})) is None
    )

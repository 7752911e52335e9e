"""Sequential claims end to end: seeds computed a batch at a time, the stop, the verdict, the store."""

from __future__ import annotations

import re

import pytest

from repro import registry
from repro.errors import ClaimFileError
from repro.executors import LocalExecutor, run_claims
from repro.judge import evaluate, judge_all, replicate_seeds, seeds_wanted, sequential_state
from repro.load import load_claims
from repro.runner import compute, run_claim
from repro.store import Store

from .helpers import write_claims

CLAIM = """
[[claim]]
id = "demo.{name}"
source = "test"
statement = "Draws with mean {mean} have a median above 0"
evidence = "By construction"
experiment = "calibration.normal"
metric = "value"
seeds = 60
assertion = {{ test = "greater", threshold = 0.0, alpha = 0.01 }}
params = {{ mean = {mean}, sd = 0.5 }}
sequential = {{ batch = 4 {extra} }}
expect = "{expect}"
finding = "a control"
control = {control}
[claim.scales.ci]
seeds = 40
"""


def _claims(tmp_path, *specs: tuple[str, float, str], extra: str = "", control: str = "true"):
    body = "".join(CLAIM.format(name=n, mean=m, expect=e, extra=extra, control=control) for n, m, e in specs)
    return load_claims(write_claims(tmp_path / "claims", body))


def _stored(store: Store, claim, scale: str = "ci") -> int:
    return sequential_state(claim, scale, store).stored


def test_far_from_the_threshold_it_stops_early_and_says_why(tmp_path):
    claim = _claims(tmp_path, ("pos", 1.0, "reproduced")).get("demo.pos")
    store = Store(tmp_path / "s")
    run = run_claim(claim, "ci", store=store, device="cpu")
    record = run.verdict.sequential
    assert run.verdict.outcome == "reproduced", run.verdict.message
    assert record is not None and record.seeds_used < 40 and record.max_seeds == 40
    assert record.e_value > record.bar == 100.0
    stored = _stored(store, claim)
    assert stored % 4 == 0 and record.seeds_used <= stored < 40  # whole batches, not one seed further
    assert run.verdict.n == record.seeds_used == len(run.seeds)
    assert run.verdict.p_value == pytest.approx(min(1.0, 1 / record.e_value))
    assert run.verdict.ci_low <= 1.0 <= run.verdict.ci_high  # the true median is in the confidence sequence
    assert "anytime-valid" in run.verdict.test and "after" in record.stopped
    assert run_claim(claim, "ci", store=store, device="cpu").computed == 0  # decided: nothing more to run


def test_negative_control_is_not_reproduced_and_the_boundary_spends_every_seed(tmp_path):
    claims = _claims(tmp_path, ("neg", -1.0, "not_reproduced"), ("edge", 0.0, "inconclusive"))
    store = Store(tmp_path / "s")
    neg = run_claim(claims.get("demo.neg"), "ci", store=store, device="cpu")
    assert neg.verdict.outcome == "not_reproduced" and neg.verdict.sequential.seeds_used < 40
    edge = run_claim(claims.get("demo.edge"), "ci", store=store, device="cpu")
    assert edge.verdict.outcome == "inconclusive", edge.verdict.message
    assert edge.verdict.sequential.seeds_used == 40 == _stored(store, claims.get("demo.edge"))
    assert "every seed spent" in edge.verdict.sequential.stopped


def test_an_unfinished_run_is_not_run_and_resumes_where_it_stopped(tmp_path):
    claim = _claims(tmp_path, ("edge", 0.0, "inconclusive")).get("demo.edge")
    store = Store(tmp_path / "s")
    seeds = replicate_seeds(claim.seed, 40)
    compute(claim, "ci", store=store, device="cpu", seeds=seeds[:8])  # as if killed after two batches
    judged = evaluate(claim, "ci", store)
    assert judged.verdict.outcome == "error" and judged.verdict.message.startswith("Error: not run")
    assert seeds_wanted(claim, "ci", store) == 12
    resumed = run_claim(claim, "ci", store=store, device="cpu")
    assert resumed.computed == 32 and resumed.verdict.outcome == "inconclusive"


def test_the_verdict_does_not_depend_on_seeds_stored_beyond_the_stop(tmp_path):
    claim = _claims(tmp_path, ("pos", 1.0, "reproduced")).get("demo.pos")
    one, every = Store(tmp_path / "one"), Store(tmp_path / "every")
    stopped = run_claim(claim, "ci", store=one, device="cpu").verdict
    compute(claim, "ci", store=every, device="cpu", seeds=replicate_seeds(claim.seed, 40))  # another claim's run
    assert evaluate(claim, "ci", every).verdict == stopped


def test_executors_and_the_runner_spend_the_same_seeds(tmp_path):
    claims = _claims(tmp_path, ("pos", 1.0, "reproduced"), ("edge", 0.0, "inconclusive"))
    here, pool = Store(tmp_path / "here"), Store(tmp_path / "pool")
    direct = [run_claim(c, "ci", store=here, device="cpu") for c in claims]
    runs = run_claims(list(claims), "ci", store=pool, executor=LocalExecutor("cpu", workers=1))
    assert [r.verdict for r in runs] == [r.verdict for r in direct]
    assert [_stored(pool, c) for c in claims] == [_stored(here, c) for c in claims]


def test_within_a_family_the_bar_is_the_family_size_over_alpha(tmp_path):
    claims = _claims(tmp_path, ("a", 1.0, "reproduced"), ("b", 1.0, "reproduced"), control="false")
    store = Store(tmp_path / "s")
    runs = run_claims(list(claims), "ci", store=store, executor=LocalExecutor("cpu", workers=1),
                      family_sizes={c.id: claims.family_size(c, "ci") for c in claims})  # fmt: skip
    assert all(r.verdict.sequential.bar == 200.0 for r in runs)
    judged = judge_all(list(claims), "ci", store, claims)
    assert [r.verdict.outcome for r in judged] == ["reproduced", "reproduced"]
    assert all(r.verdict.p_adjusted < 0.01 and r.verdict.family_size == 2 for r in judged)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (', method = "betting"', "bounds"),
        (', method = "subgaussian"', "sigma"),
        (', method = "sign", sigma = 1.0', "sigma"),
        (', method = "betting", bounds = [1.0, 0.0]', "bounds"),
    ],
)
def test_a_method_without_its_stated_assumption_is_refused(tmp_path, extra, field):
    with pytest.raises(ClaimFileError) as info:
        _claims(tmp_path, ("pos", 1.0, "reproduced"), extra=extra)
    assert "demo.pos" in str(info.value) and "sequential" in str(info.value) and field in str(info.value)


def test_betting_decides_a_bounded_metric(tmp_path):
    # N(1, 0.5) draws lie in [-2, 4] (6 sd either side) with probability 1 - 2e-9
    claim = _claims(tmp_path, ("pos", 1.0, "reproduced"), extra=', method = "betting", bounds = [-2.0, 4.0]')
    run = run_claim(claim.get("demo.pos"), "ci", store=Store(tmp_path / "s"), device="cpu")
    assert run.verdict.outcome == "reproduced" and run.verdict.sequential.method == "betting"


def test_the_sequential_design_is_part_of_the_code_free_declaration(tmp_path):
    from repro.baseline import declared

    claim = _claims(tmp_path, ("pos", 1.0, "reproduced")).get("demo.pos")
    assert declared(claim)["sequential"]["batch"] == 4
    assert registry.get(claim.experiment).name == "calibration.normal"


# -- data that contradict the method's assumption: 'error' for that claim, never a pass --------------
def test_values_outside_the_betting_bounds_are_an_error_for_that_claim_and_the_others_run_on(tmp_path):
    # N(1, 0.5) draws: about 2 in 100 lie above 2, so a 40-seed run meets one; the other claim is sign
    bad = _claims(tmp_path / "bad", ("pos", 1.0, "reproduced"), extra=', method = "betting", bounds = [-1.0, 2.0]')
    good = _claims(tmp_path / "good", ("neg", -1.0, "not_reproduced")).get("demo.neg")
    claims, store = [bad.get("demo.pos"), good], Store(tmp_path / "s")
    runs = run_claims(claims, "ci", store=store, executor=LocalExecutor("cpu", workers=1))
    verdict = runs[0].verdict
    assert verdict.outcome == "error", verdict.message
    assert "outside the claim's bounds [-1, 2]" in verdict.message and "(arm 'main', seed " in verdict.message
    assert runs[1].verdict.outcome == "not_reproduced", runs[1].verdict.message
    stored = _stored(store, claims[0])
    assert stored < 40 and seeds_wanted(claims[0], "ci", store) == stored  # the run stopped at the bad batch
    judged = judge_all([claims[0]], "ci", store, bad)  # judging alone, from the store, does not raise either
    assert judged[0].verdict.outcome == "error" and "bounds [-1, 2]" in judged[0].verdict.message


def test_a_spread_above_the_declared_sigma_is_an_error_not_reproduced(tmp_path):
    # sd 0.5 declared as sigma 0.1: the mixture crosses at once, the chi-square test of sd <= sigma rejects
    claim = _claims(tmp_path, ("pos", 1.0, "reproduced"), extra=', method = "subgaussian", sigma = 0.1').get("demo.pos")
    run = run_claim(claim, "ci", store=Store(tmp_path / "s"), device="cpu")
    v = run.verdict
    assert v.outcome == "error" and v.p_value is None, v.message
    assert re.search(r"sigma = 0\.1: their sd is 0\.\d+ over \d+ seeds", v.message), v.message
    assert "e-process" in v.test
    assert v.sequential is not None and v.sequential.seeds_used == v.n < 40  # where it stopped, kept


def test_both_e_processes_crossing_is_an_error_never_reproduced(tmp_path):
    # mean 0, sd 0.5 declared as sigma 0.01: the walk crosses both mixtures' boundaries within seven seeds
    claim = _claims(tmp_path, ("edge", 0.0, "inconclusive"), extra=', method = "subgaussian", sigma = 0.01')
    run = run_claim(claim.get("demo.edge"), "ci", store=Store(tmp_path / "s"), device="cpu")
    v = run.verdict
    assert v.outcome == "error", v.message
    assert "both the claim's and the opposite e-process crossed 1/alpha: the data contradict the method's " \
           "assumption" in v.message  # fmt: skip
    assert v.sequential.e_value >= 100 and v.sequential.e_opposite >= 100

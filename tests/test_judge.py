"""repro.judge: Holm within each family decides, controls stand alone, a missing member counts as p = 1;
and repro.plan: the seeds a claim needs at its smallest_effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestPower

from repro import stats
from repro.claim import Claim
from repro.errors import ClaimFileError
from repro.judge import family_members, judge, judge_all
from repro.load import load_claims
from repro.plan import plan_claim
from repro.runner import compute
from repro.store import Store

from .helpers import write_claims

# Three sign-test claims whose 9 seeds (the fewest that can decide at 0.01 / 3) all lie beyond the
# threshold: raw p = 0.5**9 = 0.00195 each, Holm-adjusted 3 x 0.00195 = 0.0059.
CLAIM = """
[[claim]]
id = "fam.c{i}"
source = "test"
statement = "Draws with mean 3 have a median above 0"
evidence = "By construction"
experiment = "calibration.normal"
metric = "value"
seeds = 9
assertion = {{ test = "greater", threshold = 0.0, method = "sign" }}
params = {{ mean = 3.0, sd = 0.5, stream = {i} }}
{extra}
[claim.scales.ci]
seeds = 9
"""


def _claims(tmp_path, extras: dict[int, str] | None = None):
    extras = extras or {}
    body = "".join(CLAIM.format(i=i, extra=extras.get(i, "")) for i in range(3))
    return load_claims(write_claims(tmp_path / "c", body, name="fam.toml"))


def _fill(claim_set, store, ids=None):
    for claim in claim_set:
        if ids is None or claim.id in ids:
            assert compute(claim, "ci", store=store, device="cpu").error is None


def test_default_family_is_one_source_in_one_file_and_controls_stand_alone(tmp_path):
    claim_set = _claims(tmp_path, {1: "control = true", 2: 'family = "other"'})
    c0, c1, c2 = claim_set
    assert claim_set.family(c0) == "fam.test"
    assert claim_set.family(c1) is None and family_members(c1, claim_set, "ci") == [c1]
    assert claim_set.family(c2) == "other"
    assert family_members(c0, claim_set, "ci") == [c0]


def test_holm_decides_and_raw_p_stays_beside_it(tmp_path):
    claim_set, store = _claims(tmp_path), Store(tmp_path / "s")
    _fill(claim_set, store)
    runs = judge_all(list(claim_set), "ci", store, claim_set)
    for run in runs:
        v = run.verdict
        assert v.p_value == pytest.approx(0.5**9) and v.p_adjusted == pytest.approx(3 * 0.5**9)
        assert (v.family, v.family_size, v.outcome) == ("fam.test", 3, "reproduced")
        assert "Holm" in v.message and "raw p=0.00195" in v.message


def test_holm_can_leave_a_raw_reproduction_inconclusive(tmp_path):
    """10 of 11 seeds beyond: raw p = 12/2048 = 0.0059 reproduces alone; beside two members that show
    nothing it is the family's smallest p, and Holm's first step multiplies it by 3 (0.0176)."""
    from repro.judge import ClaimRun, correct

    body = "".join(CLAIM.format(i=i, extra="").replace("seeds = 9", "seeds = 11") for i in range(3))
    claim_set = load_claims(write_claims(tmp_path / "c", body, name="fam.toml"))
    data = [np.r_[np.full(10, 3.0), -1.0], np.full(11, -1.0), np.full(11, -1.0)]
    runs = [
        ClaimRun(c, "ci", stats.decide(c.assertion, {"main": x}), list(range(11)))
        for c, x in zip(claim_set, data, strict=True)
    ]
    assert runs[0].verdict.outcome == "reproduced" and runs[0].verdict.p_value == pytest.approx(12 / 2048)
    corrected = correct(runs, claim_set, "ci")[0].verdict
    assert corrected.outcome == "inconclusive" and corrected.p_adjusted == pytest.approx(3 * 12 / 2048)


def test_the_opposite_p_is_corrected_too(tmp_path):
    body = "".join(CLAIM.format(i=i, extra="").replace("mean = 3.0", "mean = -3.0") for i in range(3))
    claim_set, store = load_claims(write_claims(tmp_path / "c", body, name="fam.toml")), Store(tmp_path / "s")
    _fill(claim_set, store)
    v = judge(claim_set.claims[0], "ci", store, claim_set).verdict
    assert v.p_opposite_adjusted == pytest.approx(3 * 0.5**9) and v.outcome == "not_reproduced"


def test_a_member_without_results_counts_as_p_one_never_helping_the_others(tmp_path):
    claim_set, store = _claims(tmp_path), Store(tmp_path / "s")
    _fill(claim_set, store, ids={"fam.c0"})
    v = judge(claim_set.get("fam.c0"), "ci", store, claim_set).verdict
    assert v.family_size == 3 and v.p_adjusted == pytest.approx(3 * 0.5**9)  # Holm with 1, 1: the first step
    unrun = judge(claim_set.get("fam.c1"), "ci", store, claim_set).verdict
    assert unrun.outcome == "error" and unrun.p_adjusted is None


def test_a_control_is_decided_by_its_raw_p(tmp_path):
    claim_set, store = _claims(tmp_path, {0: "control = true"}), Store(tmp_path / "s")
    _fill(claim_set, store)
    v = judge(claim_set.get("fam.c0"), "ci", store, claim_set).verdict
    assert (v.outcome, v.family, v.p_adjusted) == ("reproduced", None, None)
    assert judge(claim_set.get("fam.c1"), "ci", store, claim_set).verdict.family_size == 2  # the other two


def test_pytest_item_computes_the_family_before_judging(tmp_path, monkeypatch):
    pytester_claims = _claims(tmp_path)
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "home"))
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(pytester_claims.files["fam.c0"]), "-k", "c0 and ci", "-q",
         "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=tmp_path, env={**__import__("os").environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert len(list((tmp_path / "home").rglob("*.json"))) >= 3 * 9  # the whole family's results


# -- plan -------------------------------------------------------------------------------------------
def _claim(assertion: dict, smallest_effect: float | None = 0.5, **extra) -> Claim:
    return Claim.model_validate({
        "id": "p.x", "source": "s", "statement": "a statement here", "evidence": "e",
        "experiment": "calibration.normal", "metric": "value", "seeds": 10, "assertion": assertion,
        "scales": {"ci": {}}, "smallest_effect": smallest_effect, **extra,
    })  # fmt: skip


def test_t_plan_is_statsmodels_closed_form_at_the_holm_first_step():
    claim = _claim({"test": "greater", "threshold": 0.0, "method": "t"})
    values = {"main": np.random.default_rng(0).normal(0.0, 1.0, 40)}
    plan = plan_claim(claim, values, None, family_size=4)
    sd = float(np.std(values["main"], ddof=1))
    expected = TTestPower().solve_power(effect_size=0.5 / sd, alpha=0.01 / 4, power=0.8, alternative="larger")
    assert plan.planning_alpha == 0.0025 and plan.seeds[0.8] == math.ceil(expected)
    assert plan.seeds[0.95] > plan.seeds[0.8]


def test_sign_plan_is_exact_binomial_power_at_q_one_half_plus_the_effect():
    claim = _claim({"test": "greater", "threshold": 0.0, "method": "sign"}, smallest_effect=0.4)
    plan = plan_claim(claim, {"main": np.random.default_rng(0).normal(0.0, 1.0, 50)}, None, family_size=12)
    # q = 0.9 whatever the spread: the sign test's power depends on q alone.
    assert "q = 1/2 + smallest_effect = 0.9" in plan.how
    # By hand at alpha 0.01 / 12: 21 seeds reject from 18 beyond, P(Bin(21, 0.9) >= 18) = 0.866; and 14,
    # which reaches 0.8 alone, loses it again at 16 (the saw-tooth), so the plan is the first n that stays.
    assert plan.seeds[0.8] == 21
    assert sps.binom.sf(17, 21, 0.9) >= 0.8 > sps.binom.sf(sps.binom.isf(0.01 / 12, 16, 0.5), 16, 0.9)
    assert plan.seeds[0.95] == 30


def test_a_sign_tests_smallest_effect_of_half_or_more_is_refused_at_load(tmp_path):
    with pytest.raises(ClaimFileError) as err:
        load_claims(write_claims(tmp_path / "c", CLAIM.format(i=0, extra="smallest_effect = 0.5"), name="f.toml"))
    text = str(err.value)
    assert "fam.c0" in text and "f.toml" in text and "field 'smallest_effect'" in text and "below 0.5" in text
    t_claim = CLAIM.replace('method = "sign"', 'method = "t"').format(i=0, extra="smallest_effect = 1.0")
    assert load_claims(write_claims(tmp_path / "t", t_claim, name="f.toml")).claims[0].smallest_effect == 1.0


def test_binomial_plan_over_seeds():
    claim = _claim({"test": "proportion", "predicate": {"op": ">", "value": 0}, "min_fraction": 0.5},
                   smallest_effect=0.4)  # fmt: skip
    plan = plan_claim(claim, {"main": np.ones(10)}, None)
    assert plan.how == "exact binomial power" and 7 <= plan.seeds[0.8] <= plan.seeds[0.95] < 30


def test_no_plan_without_a_smallest_effect_or_a_spread():
    assert plan_claim(_claim({"test": "greater", "threshold": 0.0}, None), None, None).seeds[0.8] is None
    plan = plan_claim(_claim({"test": "greater", "threshold": 0.0, "method": "t"}), None, None)
    assert plan.seeds[0.8] is None and "run the claim once" in plan.note


def test_an_inconclusive_verdict_reports_the_planning_figure_not_observed_power(tmp_path):
    body = "".join(
        CLAIM.format(i=i, extra="smallest_effect = 0.4").replace("mean = 3.0", "mean = 0.0") for i in range(3)
    )
    claim_set = load_claims(write_claims(tmp_path / "c", body, name="fam.toml"))
    store = Store(tmp_path / "s")
    _fill(claim_set, store)
    v = judge(claim_set.claims[0], "ci", store, claim_set).verdict
    assert v.outcome == "inconclusive"
    assert "the plan gives" in v.message and "seeds for 80% power at smallest_effect 0.4" in v.message
    assert "observed" not in v.message


def test_plan_command_prints_seeds_per_claim_from_the_store(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from repro.cli import app

    # Two t-test claims, whose plan needs the spread from the store, and a sign-test one, whose does not.
    body = "".join(
        CLAIM.replace('method = "sign"', 'method = "t"').format(i=i, extra="smallest_effect = 1.0") for i in range(2)
    ) + CLAIM.format(i=2, extra="smallest_effect = 0.4")
    claim_set = load_claims(write_claims(tmp_path / "c", body, name="fam.toml"))
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    path = str(claim_set.files["fam.c0"])
    before = CliRunner().invoke(app, ["plan", "--claims", path])
    assert before.exit_code == 0 and before.output.count("run the claim once") == 2  # no spread stored yet
    assert before.output.count("exact sign-test power at q = 1/2 + smallest_effect = 0.9") == 1
    _fill(claim_set, Store.default())
    after = CliRunner().invoke(app, ["plan", "--claims", path])
    assert after.exit_code == 0, after.output
    assert after.output.count("fam.c") == 3 and "0.01 / 3" in after.output and "run the claim once" not in after.output
    assert after.output.count("t-test power (statsmodels)") == 2


def test_a_family_whose_seeds_cannot_reach_holms_first_step_is_refused_at_load(tmp_path):
    """Three sign-test claims at 7 seeds: 0.5**7 = 0.0078 is not below 0.01 / 3, so none could ever decide."""
    from repro.errors import ClaimFileError

    body = "".join(CLAIM.format(i=i, extra="").replace("seeds = 9", "seeds = 7") for i in range(3))
    with pytest.raises(
        ClaimFileError, match=r"7 seeds at scale ci cannot decide within family 'fam.test' \(3 claims\)"
    ):
        load_claims(write_claims(tmp_path / "a", body, name="fam.toml"))
    raised = body.replace("seeds = 7", "seeds = 9")  # 0.5**9 = 0.002 < 0.0033
    assert len(load_claims(write_claims(tmp_path / "b", raised, name="fam.toml"))) == 3
    controls = (
        body.replace("stream = 0 }", "stream = 0 }\ncontrol = true")
        .replace("stream = 1 }", "stream = 1 }\ncontrol = true")
        .replace("stream = 2 }", "stream = 2 }\ncontrol = true")
    )
    assert len(load_claims(write_claims(tmp_path / "c", controls, name="fam.toml"))) == 3

"""Sources' settings as data: a claim runs in its source's setting or declares each departure (repro.settings)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from repro.errors import ClaimFileError
from repro.load import load_claims

ROOT = Path(__file__).resolve().parents[1]

SOURCES = """
[source.paper]
title = "A paper"
authors = "Someone"
year = 2022
url = "https://example.org"

[source.repro]
title = "Ours"
authors = "repro"
year = 2026
url = "claims"
"""

SETTING = """
[setting.paper-phase]
source = "paper"
experiment = "phase.one_neuron"
title = "The paper's phase diagram"
[setting.paper-phase.fields]
density_min = { value = 0.01, trace = "paper text" }
steps = { value = 10000, trace = "SOURCES.md 6.2" }
batch = { value = 1024, trace = "SOURCES.md 6.2" }
lr = { value = 0.001, trace = "SOURCES.md 6.2" }
optimizer = { value = "adamw", trace = "SOURCES.md 6.2" }
model = { value = "relu_tied", trace = "paper", substitute = true }
"""


def _claim(extra_top: str = "", params: str = "", ci: str = "", source: str = "paper", cid: str = "p.c") -> str:
    return (
        textwrap.dedent(
            f"""
        [[claim]]
        id = "{cid}"
        source = "{source}"
        statement = "One-neuron models agree with the theory"
        evidence = "paper figure"
        experiment = "phase.one_neuron"
        metric = "agreement_far_from_boundary"
        seeds = 9
        assertion = {{ test = "greater", threshold = 0.8 }}
        """
        )
        + extra_top
        + "\n[claim.params]\n"
        + params
        + "\n[claim.scales.ci]\n"
        + ci
        + "\n"
    )


IN_SETTING = 'density_min = 0.01\nsteps = 10000\nbatch = 1024\nlr = 0.001\noptimizer = "adamw"\n'


def _load(tmp_path: Path, *parts: str):
    path = tmp_path / "c.toml"
    path.write_text(SOURCES + "".join(parts))
    return load_claims(path)


def _problems(tmp_path: Path, *parts: str) -> str:
    with pytest.raises(ClaimFileError) as exc:
        _load(tmp_path, *parts)
    return "\n".join(exc.value.problems)


def test_a_claim_that_inherits_another_sources_training_is_refused_naming_claim_field_and_both_values(tmp_path):
    # The phase claim as it stood: filed under the paper, overriding no training setting, so it ran the
    # experiment's defaults (zroe1's Adam lr 1e-2, batch 64, 6,000 steps) on a grid down to 0.001.
    text = _problems(tmp_path, SETTING, _claim(params='model = "relu_tied"\nrestarts = 10\n'))
    assert "c.toml: claim 'p.c': field 'params.lr'" in text
    assert "the source ran lr = 0.001 (SOURCES.md 6.2), the claim runs 0.01" in text
    for field in ("density_min", "steps", "batch", "optimizer"):
        assert f"field 'params.{field}'" in text
    assert "at every scale" in text and "departures = { lr = " in text


def test_the_committed_phase_claim_before_its_fix_is_refused():
    """The case the check was written for: claims/phase.toml as committed before the sources' settings."""
    import subprocess

    old = subprocess.run(
        ["git", "show", "eaccc97:claims/phase.toml"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if old.returncode != 0:
        pytest.skip("the history is not available (a shallow clone)")
    current = (ROOT / "claims" / "phase.toml").read_text()
    settings = current[current.index("[setting.elhage2022-phase]") : current.index("# -- Elhage et al.")]
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "phase.toml"
        path.write_text(settings + old.stdout)
        (Path(folder) / "sources.toml").write_text((ROOT / "claims" / "sources.toml").read_text())
        with pytest.raises(ClaimFileError) as exc:
            load_claims(path)
    text = "\n".join(exc.value.problems)
    assert "claim 'phase.relu.theory-agreement': field 'params.lr': departs from elhage2022's setting" in text
    assert "the source ran lr = 0.001" in text and "the claim runs 0.01" in text


def test_the_sources_setting_loads_and_a_declared_downsizing_is_reported_as_departures(tmp_path):
    ci = (
        "steps = 2000\nbatch = 128\n"
        'departures = { steps = "ci: fewer steps, measured settled", batch = "ci: a smaller batch" }\n'
    )
    claims = _load(tmp_path, SETTING, _claim(params=IN_SETTING, ci=ci))
    claim = claims.get("p.c")
    assert claims.setting_of(claim)[0] == "paper-phase"
    found = {(d.scale, d.field): d for d in claims.departures(claim)}
    assert set(found) == {("ci", "steps"), ("ci", "batch")}
    assert found["ci", "steps"].source_value == 10000 and found["ci", "steps"].claim_value == 2000
    assert found["ci", "batch"].why == "ci: a smaller batch"


def test_an_undeclared_ci_cut_is_refused(tmp_path):
    text = _problems(tmp_path, SETTING, _claim(params=IN_SETTING, ci="steps = 2000\n"))
    assert "field 'params.steps': departs from paper's setting 'paper-phase' at scale ci" in text
    assert "scales.ci.departures = { steps = " in text


def test_a_claim_level_departure_covers_every_scale(tmp_path):
    top = 'departures = { lr = "a variant of the paper\'s learning rate, our own" }\n'
    claims = _load(tmp_path, SETTING, _claim(top, params=IN_SETTING.replace("lr = 0.001", "lr = 0.01")))
    assert {(d.scale, d.field) for d in claims.departures(claims.get("p.c"))} == {("full", "lr"), ("ci", "lr")}


def test_stale_and_unknown_departures_are_refused(tmp_path):
    top = 'departures = { lr = "declared but the claim runs the source lr", init_std = "not in the setting at all" }\n'
    text = _problems(
        tmp_path, SETTING, _claim(top, params=IN_SETTING, ci='departures = { steps = "ci cut that is not made" }\n')
    )
    assert "field 'departures.lr': the claim runs the source's own lr" in text
    assert "field 'departures.init_std': not a field of setting 'paper-phase'" in text
    assert "field 'scales.ci.departures.steps': the claim runs the source's own steps" in text


def test_a_departure_without_a_setting_to_depart_from_is_refused(tmp_path):
    top = 'departures = { lr = "there is no setting of this source" }\n'
    text = _problems(tmp_path, _claim(top, params="lr = 0.1\n"))
    assert "declares a departure, but source 'paper' declares no setting of phase.one_neuron" in text


def test_a_sources_own_claim_has_no_setting_to_check(tmp_path):
    claims = _load(tmp_path, SETTING, _claim(source="repro"))
    assert claims.setting_of(claims.get("p.c")) is None


def test_settings_are_checked_against_the_experiment(tmp_path):
    bad = SETTING.replace("lr = { value = 0.001", "learning_rate = { value = 0.001").replace(
        "steps = { value = 10000", "steps = { value = -3"
    )
    text = _problems(tmp_path, bad, _claim(params=IN_SETTING))
    assert "setting 'paper-phase': field 'fields.learning_rate': not a param of phase.one_neuron" in text
    assert "setting 'paper-phase': field 'fields.steps.value'" in text


def test_several_settings_need_the_claim_to_name_one(tmp_path):
    second = SETTING.replace("paper-phase", "paper-phase-2")
    text = _problems(tmp_path, SETTING, second, _claim(params=IN_SETTING))
    assert "source 'paper' has 2 settings of phase.one_neuron (paper-phase, paper-phase-2): name the one" in text
    claims = _load(tmp_path, SETTING, second, _claim('setting = "paper-phase-2"\n', params=IN_SETTING))
    assert claims.setting_of(claims.get("p.c"))[0] == "paper-phase-2"
    assert "no setting 'nope'" in _problems(tmp_path, SETTING, _claim('setting = "nope"\n', params=IN_SETTING))


def test_every_shipped_claim_of_a_source_with_a_setting_runs_in_it_or_declares_why():
    claims = load_claims(ROOT / "claims")  # the loader refuses any undeclared departure
    with_setting = [c for c in claims if claims.setting_of(c) is not None]
    sources_with_settings = {s.source for s in claims.settings.values()}
    assert with_setting and sources_with_settings <= {c.source for c in with_setting}
    for claim in with_setting:
        for departure in claims.departures(claim):
            assert departure.why, (claim.id, departure.field)


def _full_row(claims, claim, **change):
    from repro import baseline, registry

    fields = dict(
        id=claim.id, scale="full", verdict="reproduced", expect="reproduced", estimate=0.9, ci_low=0.85, ci_high=0.95,
        ci_level=0.98, p_value=0.001, p_adjusted=None, p_opposite=1.0, p_opposite_adjusted=None, alpha=0.01,
        family=None, family_size=1, test="scipy.stats.binomtest", n=9, seeds=9,
        code_version=registry.get(claim.experiment).code_version, declared=baseline.declared(claim),
        params_digest=baseline.params_digest(claim, "full"),
    )  # fmt: skip
    fields.update(change)
    return baseline.Baseline("full", {claim.id: baseline.Row(**fields)})


def test_a_full_scale_expectation_is_measured_only_by_a_full_run_of_the_claim_as_declared_now(tmp_path):
    from repro import baseline

    claims = _load(tmp_path, SETTING, _claim(params=IN_SETTING))
    claim = claims.get("p.c")
    assert baseline.full_status(claim, None) == "predicted"
    assert baseline.full_status(claim, _full_row(claims, claim)) == "measured"
    assert baseline.full_status(claim, _full_row(claims, claim, verdict="not_run")) == "predicted"
    # a run of the claim as declared that gave another verdict contradicts the expectation; it does not measure it
    assert baseline.full_status(claim, _full_row(claims, claim, verdict="inconclusive")) == "contradicted"
    assert baseline.full_status(claim, _full_row(claims, claim, params_digest="0" * 16)) == "predicted"
    assert baseline.full_status(claim, _full_row(claims, claim, code_version="0" * 16)) == "predicted"
    other = _load(tmp_path, SETTING, _claim(params=IN_SETTING.replace("steps = 10000", "steps = 10000\nn_r = 50")))
    # the same id run with other params: the old full-scale run does not measure the new declaration
    assert baseline.full_status(other.get("p.c"), _full_row(claims, claim)) == "predicted"


def test_repro_list_marks_unmeasured_full_scale_expectations_predicted(tmp_path, monkeypatch):
    from rich.console import Console

    from repro.cli_tables import claims_table

    claims = _load(tmp_path, SETTING, _claim(params=IN_SETTING))
    console = Console(width=400, record=True)
    console.print(claims_table(claims, None))
    assert "reproduced (ci) / reproduced (full, predicted)" in console.export_text()
    console = Console(width=400, record=True)
    console.print(claims_table(claims, _full_row(claims, claims.get("p.c"))))
    assert "reproduced (ci) / reproduced (full, measured)" in console.export_text()


def test_every_shipped_finding_is_adjudicated():
    """A claim that is not a control and expects not reproduced or inconclusive at either scale says why the
    finding is about its source: the setting, the source's own code side by side, the readings tried."""
    claims = load_claims(ROOT / "claims")
    missing = []
    for claim in claims:
        expects = {claim.expected(scale) for scale in ("ci", "full") if not claim.skipped(scale)}
        if not claim.control and expects & {"not_reproduced", "inconclusive"} and claim.adjudication is None:
            missing.append(claim.id)
    assert missing == []


def test_the_committed_ci_baseline_says_which_full_scale_expectations_are_predicted():
    from repro import baseline

    committed = baseline.read(ROOT / "reports" / "ci" / "verdicts.json")
    claims = load_claims(ROOT / "claims")
    full = baseline.read_full(ROOT / "reports" / "full" / "verdicts.json")
    for claim in claims:
        row = committed.rows[claim.id]
        if claim.skipped("full"):
            assert row.full_expect is None, claim.id
        else:
            assert row.full_expect == baseline.full_status(claim, full), claim.id


def test_a_misspelt_setting_field_gets_a_did_you_mean(tmp_path):
    bad = SETTING.replace("steps = { value = 10000", "stepz = { value = 10000")
    text = _problems(tmp_path, bad, _claim(params=IN_SETTING))
    assert "field 'fields.stepz': not a param of phase.one_neuron; did you mean 'steps'?" in text

"""Bad input that would cost a run is refused at load, naming file, claim and field; mistyped names get a hint.

The sweep checks (``at``, a trend, one value per seed) against :mod:`repro.experiments.sweeps`, the
"did you mean" of claim ids, params and metrics, the ``--claims`` hint outside a checkout, and the
metrics and default tests ``repro schema`` lists.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repro import registry
from repro.cli import app
from repro.errors import ClaimFileError, UnknownClaimError
from repro.experiments.sweeps import AXES
from repro.load import load_claims

from .helpers import claim_text, write_claims

runner = CliRunner()
REPO_CLAIMS = Path(__file__).resolve().parents[1] / "claims"

CLAIM = """
[[claim]]
id = "{id}"
source = "test"
statement = "A statement long enough to validate"
evidence = "By construction"
experiment = "{experiment}"
metric = "{metric}"
seeds = 12
{at}
assertion = {assertion}
params = {params}
{arms}
[claim.scales.ci]
seeds = 10
{ci}
"""
GREATER = '{ test = "greater", threshold = 0.0 }'
TREND = '{ test = "trend", direction = "increasing" }'


def claim(
    *,
    id: str = "demo.sweep",
    experiment: str = "calibration.normal",
    metric: str = "value",
    at: float | None = None,
    assertion: str = GREATER,
    params: str = "{ mean = 1.0, sd = 0.5 }",
    arms: str = "",
    ci: str = "",
) -> str:
    at_line = "" if at is None else f"at = {at!r}"
    return CLAIM.format(
        id=id, experiment=experiment, metric=metric, at=at_line, assertion=assertion, params=params, arms=arms, ci=ci
    )


def problems(tmp_path: Path, body: str) -> list[str]:
    path = write_claims(tmp_path / "claims", body)
    with pytest.raises(ClaimFileError) as excinfo:
        load_claims(path)
    return excinfo.value.problems


def only_problem(tmp_path: Path, body: str, claim_id: str = "demo.sweep", field: str = "at") -> str:
    """The one problem of a one-claim file, checked to name the file, the claim and the field."""
    found = problems(tmp_path, body)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'claims' / 'demo.toml'}: claim '{claim_id}': field '{field}': ")
    return found[0]


# -- at: the axis's param left to its default, a value that is not a point ---------------------------------------


def test_at_on_a_sweep_the_params_leave_at_its_default(tmp_path):
    message = only_problem(tmp_path, claim(at=0.5))
    assert "0.5 is not a point of the sweep axis 'x' (the values of param 'sweep'; nearest: 0)" in message
    assert "at scales ci and full" in message
    assert "the claim sets no 'sweep'" in message and "calibration.normal's default [0] is used" in message


def test_at_the_users_case_tms_feature_probability_unset(tmp_path):
    """The report that started this: at = 0.1 on tms.train without feature_probability, default [1.0]."""
    body = claim(experiment="tms.train", metric="n_represented", at=0.1, params="{ steps = 10 }")
    message = only_problem(tmp_path, body)
    assert "0.1 is not a point of the sweep axis 'feature_probability'" in message
    assert "the claim sets no 'feature_probability'" in message and "tms.train's default [1] is used" in message


def test_at_not_a_point_at_ci_only(tmp_path):
    body = claim(at=2.0, params="{ mean = 1.0, sweep = [0.0, 2.0] }", ci="sweep = [0.0, 1.0]")
    message = only_problem(tmp_path, body)
    assert "2 is not a point of the sweep axis 'x'" in message and "nearest: 1" in message
    assert "at scale ci: scales.ci.sweep gives [0, 1]" in message
    assert "full" not in message


def test_at_not_a_point_at_full_only(tmp_path):
    body = claim(at=2.0, params="{ mean = 1.0, sweep = [0.0, 1.0] }", ci="sweep = [0.0, 2.0]")
    message = only_problem(tmp_path, body)
    assert "at scale full: params.sweep gives [0, 1]" in message
    assert "scale ci" not in message


def test_at_in_an_arm(tmp_path):
    arms = "[claim.arms]\na = { stream = 1 }\nb = { stream = 2, sweep = [0.0, 3.0] }"
    body = claim(
        at=1.0,
        assertion='{ test = "difference", a = "a", b = "b", direction = "greater" }',
        params="{ sweep = [0.0, 1.0] }",
        arms=arms,
    )
    message = only_problem(tmp_path, body)
    assert "at scales ci (arm 'b') and full (arm 'b'): arms.b.sweep gives [0, 3]" in message


def test_at_matching_a_point_loads_with_the_judges_tolerance(tmp_path):
    body = claim(at=0.1 + 0.2, params="{ mean = 1.0, sweep = [0.0, 0.3] }")
    claim_set = load_claims(write_claims(tmp_path / "claims", body))
    assert math.isclose(claim_set.get("demo.sweep").at or 0.0, 0.3)


def test_at_matching_two_points(tmp_path):
    message = only_problem(tmp_path, claim(at=1.0, params="{ sweep = [1.0, 1.0] }"))
    assert "1 is 2 points of the sweep axis 'x'" in message


def test_at_on_a_metric_with_one_value_per_seed_would_be_ignored(tmp_path):
    body = claim(experiment="phase.one_neuron", metric="agreement", at=0.0, params="{ n_r = 2, n_density = 2 }")
    message = only_problem(tmp_path, body)
    assert "metric 'agreement' of phase.one_neuron holds one value per seed" in message
    assert "'at' would be ignored" in message and "model_class" in message


def test_at_on_a_derived_axis_sae_dictionary_index(tmp_path):
    body = claim(experiment="sae.mnist", metric="l0", at=3.0, params="{ dictionaries = [{ latents = 32 }] }")
    message = only_problem(tmp_path, body)
    assert "3 is not a point of the sweep axis 'dictionary' (the index into param 'dictionaries'" in message
    assert "params.dictionaries gives [0]" in message


# -- trends and one value per seed ------------------------------------------------------------------------------


def test_trend_over_a_one_point_sweep(tmp_path):
    message = only_problem(tmp_path, claim(assertion=TREND, params="{ slope = 1.0 }"), field="assertion")
    assert "a trend needs at least two distinct points on the sweep axis 'x'" in message
    assert "the claim sets no 'sweep'" in message


def test_trend_with_at(tmp_path):
    message = only_problem(tmp_path, claim(assertion=TREND, at=1.0, params="{ sweep = [0.0, 1.0] }"))
    assert "a trend reads 'value' along the whole sweep axis 'x'" in message and "remove 'at'" in message


def test_trend_on_a_metric_with_one_value_per_seed(tmp_path):
    body = claim(experiment="phase.one_neuron", metric="agreement", assertion=TREND, params="{ n_r = 2 }")
    message = only_problem(tmp_path, body, field="metric")
    assert "a trend reads the metric along phase.one_neuron's sweep axis 'cell'" in message


def test_greater_over_several_points_needs_at(tmp_path):
    message = only_problem(tmp_path, claim(params="{ sweep = [0.0, 1.0, 2.0] }"))
    assert "a greater test reads one value per seed" in message and "pick one with 'at'" in message
    assert "params.sweep gives [0, 1, 2]" in message


def test_the_repository_claims_pass_the_sweep_checks():
    assert len(load_claims(REPO_CLAIMS)) > 10


# -- the table against the registry and the runs --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(AXES))
def test_sweep_table_names_real_params_and_metrics(name):
    experiment = registry.get(name)
    axis = AXES[name]
    assert set(axis.fields) <= set(experiment.params.model_fields)
    assert axis.per_point <= set(experiment.metrics)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("calibration.normal", {"sweep": [0.0, 0.5, 2.0]}),
        ("tms.train", {"n_features": 3, "n_hidden": 2, "steps": 2, "batch": 4, "feature_probability": [1.0, 0.5]}),
        ("phase.one_neuron", {"n_r": 2, "n_density": 3, "steps": 2, "batch": 4}),
    ],
)
def test_sweep_table_matches_what_the_run_returns(name, params):
    experiment = registry.get(name)
    axis = AXES[name]
    validated = experiment.params.model_validate(params)
    (result,) = experiment.run(validated, [0], "cpu")
    assert axis.points is not None
    assert result.sweep == {axis.name: axis.points(validated)}
    assert {m for m, v in result.metrics.items() if isinstance(v, list)} == axis.per_point


# -- did you mean ---------------------------------------------------------------------------------------------


def test_unknown_param_suggests_the_nearest_field(tmp_path):
    message = only_problem(tmp_path, claim(params="{ mean = 1.0, slop = 2.0 }"), field="params.slop")
    assert "did you mean 'slope'?" in message and "calibration.normal takes: " in message


def test_unknown_param_in_a_scale_suggests_the_nearest_field(tmp_path):
    message = only_problem(tmp_path, claim(ci="sdd = 2.0"), field="scales.ci.sdd")
    assert "did you mean 'sd'?" in message


def test_the_axis_name_given_as_a_param_names_the_param_that_sets_it(tmp_path):
    message = only_problem(tmp_path, claim(params="{ x = [0.0, 1.0] }"), field="params.x")
    assert "'x' names calibration.normal's sweep axis" in message and "set its points with 'sweep'" in message


def test_unknown_metric_suggests_the_nearest(tmp_path):
    message = only_problem(tmp_path, claim(metric="valeu"), field="metric")
    assert "'valeu' is not a metric of calibration.normal; did you mean 'value'?" in message


def test_unknown_claim_id_suggests_the_nearest(tmp_path):
    claim_set = load_claims(write_claims(tmp_path / "claims", claim_text()))
    with pytest.raises(UnknownClaimError, match="did you mean 'demo.mean-positive'") as excinfo:
        claim_set.get("demo.mean-postive")
    assert "demo.toml" in str(excinfo.value)
    with pytest.raises(UnknownClaimError, match="did you mean 'demo'"):
        claim_set.select(["dmeo"])
    with pytest.raises(UnknownClaimError) as excinfo:
        claim_set.select(["nothing.like.this"])
    assert "did you mean" not in str(excinfo.value)


def test_cli_unknown_claim_id_exits_2_with_a_suggestion():
    result = runner.invoke(app, ["show", "calibration.greater.postive", "--claims", str(REPO_CLAIMS)])
    assert result.exit_code == 2
    assert "did you mean 'calibration.greater.positive'" in result.output
    result = runner.invoke(app, ["run", "calibraton", "--claims", str(REPO_CLAIMS)])
    assert result.exit_code == 2
    assert "did you mean 'calibration'" in result.output


# -- the CLI: exit 2 before anything runs; the --claims hint; the schema -------------------------------------------


def test_cli_run_refuses_a_bad_at_before_running(tmp_path):
    path = write_claims(tmp_path / "claims", claim(at=0.5))
    result = runner.invoke(app, ["run", "--claims", str(path), "--device", "cpu"])
    assert result.exit_code == 2
    assert "demo.toml: claim 'demo.sweep': field 'at': 0.5 is not a point" in result.output
    assert not (tmp_path / "store").exists()  # nothing ran


def test_cli_outside_a_checkout_says_where_it_looked_and_how_to_name_the_claims(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 2
    assert f"claims: no such claims file or folder (looked for {tmp_path / 'claims'})" in result.output
    assert "--claims PATH" in result.output and "[tool.repro]" in result.output


def test_schema_lists_metrics_kinds_and_default_tests():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    experiments = json.loads(result.output)["x-experiments"]
    tms = experiments["tms.train"]
    assert tms["metrics"]["n_represented"] == {
        "kind": "count", "default_method": "sign", "default_method_unpaired": None, "per": "sweep point",
    }  # fmt: skip
    assert tms["params"] == {"$ref": "#/$defs/params:tms.train"}
    assert tms["sweep"]["axis"] == "feature_probability"
    value = experiments["calibration.normal"]["metrics"]["value"]
    assert (value["kind"], value["default_method"]) == ("continuous", "t")
    assert experiments["phase.one_neuron"]["metrics"]["agreement"]["per"] == "seed"


# -- unpaired comparisons of a count, fraction or skewed metric: no test holds its size there -----------------


@pytest.mark.parametrize("kind", ["skewed", "count", "fraction"])
@pytest.mark.parametrize("test", ["difference", "equivalent"])
def test_an_unpaired_comparison_of_a_non_continuous_metric_is_refused(tmp_path, monkeypatch, test, kind):
    import dataclasses

    from repro import registry

    calibration = registry.get("calibration.normal")
    monkeypatch.setitem(
        registry._REGISTRY, calibration.name, dataclasses.replace(calibration, metric_kinds={"value": kind})
    )
    extra = 'direction = "greater", ' if test == "difference" else "margin = 0.5, "
    assertion = f'{{ test = "{test}", a = "a", b = "b", {extra}paired = false }}'
    arms = "[claim.arms.a]\nstream = 1\n[claim.arms.b]\nstream = 2\n"
    found = only_problem(tmp_path, claim(assertion=assertion, arms=arms), field="assertion.paired")
    assert f"'value' is a {kind} metric" in found and "paired = true" in found
    # paired, the same claim loads, and resolves to the sign test (TOST for equivalence)
    paired = claim(assertion=assertion.replace("paired = false", "paired = true"), arms=arms)
    (loaded,) = load_claims(write_claims(tmp_path / "paired", paired))
    assert loaded.assertion.method == "sign"


def test_an_unpaired_comparison_of_a_continuous_metric_loads_with_welch(tmp_path):
    arms = "[claim.arms.a]\nstream = 1\n[claim.arms.b]\nstream = 2\n"
    for test, extra in (("difference", 'direction = "greater", '), ("equivalent", "margin = 0.5, ")):
        assertion = f'{{ test = "{test}", a = "a", b = "b", {extra}paired = false }}'
        (loaded,) = load_claims(write_claims(tmp_path / test, claim(assertion=assertion, arms=arms)))
        assert loaded.assertion.method == "t"

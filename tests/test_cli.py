from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from repro.cli import app

from .helpers import claim_text, write_claims

runner = CliRunner()
REPO_CLAIMS = Path(__file__).resolve().parents[1] / "claims"


def test_list_shows_every_claim():
    result = runner.invoke(app, ["list", "--claims", str(REPO_CLAIMS / "calibration.toml")])
    assert result.exit_code == 0, result.output
    assert "calibration.greater.positive" in result.output


def test_show_resolves_params_and_seeds():
    result = runner.invoke(app, ["show", "calibration.trend.positive", "--claims", str(REPO_CLAIMS)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["scales"]["ci"]["params"]["main"]["slope"] == 1.0
    assert len(shown["scales"]["ci"]["seeds"]) == 8 and len(shown["scales"]["full"]["seeds"]) == 10
    assert (shown["family"], shown["control"], shown["scales"]["ci"]["family_size"]) == (None, True, 1)
    tms = json.loads(runner.invoke(app, ["show", "tms.relu.sparse-all-superposed"]).output)
    assert tms["family"] == "tms.zroe1" and tms["scales"]["ci"]["family_size"] == 5
    assert any("zroe1's" in change["what"] for change in tms["changed"])


def test_schema_is_json_with_every_experiment():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "params:tms.train" in schema["$defs"] and "params:calibration.normal" in schema["$defs"]


def test_run_exit_codes(tmp_path):
    good = write_claims(tmp_path / "good", claim_text())
    assert runner.invoke(app, ["run", "--claims", str(good), "--device", "cpu"]).exit_code == 0
    wrong = write_claims(tmp_path / "wrong", claim_text(mean=-1.0))
    result = runner.invoke(app, ["run", "--claims", str(wrong), "--device", "cpu"])
    assert result.exit_code == 1
    assert "expected reproduced, got not_reproduced" in result.output


def test_bad_input_exits_2_naming_file_claim_field(tmp_path):
    bad = write_claims(tmp_path / "bad", claim_text().replace("seeds = 12", 'seeds = "x"'))
    result = runner.invoke(app, ["run", "--claims", str(bad)])
    assert result.exit_code == 2
    assert "demo.toml" in result.output and "demo.mean-positive" in result.output and "'seeds'" in result.output
    assert runner.invoke(app, ["run", "no.such.claim", "--claims", str(REPO_CLAIMS)]).exit_code == 2
    assert runner.invoke(app, ["run", "--scale", "huge", "--claims", str(REPO_CLAIMS)]).exit_code == 2


def test_run_writes_json(tmp_path):
    good = write_claims(tmp_path / "good", claim_text())
    out = tmp_path / "verdicts.json"
    assert runner.invoke(app, ["run", "--claims", str(good), "--device", "cpu", "--json", str(out)]).exit_code == 0
    (entry,) = json.loads(out.read_text())
    assert entry["id"] == "demo.mean-positive" and entry["outcome"] == "reproduced"


def test_run_table_shows_the_interval_at_the_raw_and_at_the_holm_level(tmp_path):
    from rich.console import Console

    from repro import stats
    from repro.cli_tables import verdict_table
    from repro.judge import ClaimRun
    from repro.load import load_claims

    claim = load_claims(write_claims(tmp_path / "c", claim_text())).claims[0]
    v = stats.decide(claim.assertion, {"main": np.array([0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5])})
    held = v.model_copy(update={"p_adjusted": 0.02, "p_opposite_adjusted": 1.0, "family": "demo.test",
                                "family_size": 3, "ci_low_adjusted": -0.25, "ci_high_adjusted": 4.25,
                                "ci_level_adjusted": 1 - 2 * 0.01 / 3, "ci_bounds_adjusted": "[]"})  # fmt: skip
    console = Console(width=400, record=True)
    console.print(verdict_table([ClaimRun(claim, "ci", held, list(range(10)))], "t"))
    text = console.export_text()
    assert f"{v.interval(digits=3)} raw 98%; [-0.25, 4.25] at the Holm level 99.33%" in text
    console = Console(width=400, record=True)
    console.print(verdict_table([ClaimRun(claim, "ci", v, list(range(10)))], "t"))
    assert "Holm level" not in console.export_text()  # judged alone: one interval

from __future__ import annotations

import json
from pathlib import Path

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

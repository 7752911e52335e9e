from __future__ import annotations

from pathlib import Path

import pytest

from repro.errors import ClaimFileError, UnknownClaimError
from repro.load import load_claims, resolve_params

from .helpers import claim_text, write_claims

REPO_CLAIMS = Path(__file__).resolve().parents[1] / "claims"


def problems_for(tmp_path: Path, body: str) -> str:
    path = write_claims(tmp_path / "claims", body)
    with pytest.raises(ClaimFileError) as excinfo:
        load_claims(path)
    return str(excinfo.value)


def test_repository_claims_load():
    claim_set = load_claims(REPO_CLAIMS)
    assert len(claim_set) > 10
    assert all(claim.source in claim_set.sources for claim in claim_set)


def test_single_file_reads_sources_beside_it(tmp_path):
    path = write_claims(tmp_path / "mine", claim_text())
    claim_set = load_claims(path)
    assert [c.id for c in claim_set] == ["demo.mean-positive"]
    assert claim_set.files["demo.mean-positive"] == path


@pytest.mark.parametrize(
    ("replace", "by", "field"),
    [
        ("seeds = 12", 'seeds = "twelve"', "seeds"),  # a wrong type
        ("seeds = 12", "seeds = -3", "seeds"),  # negative seeds
        ('metric = "value"', 'metric = "value"\ncolour = "red"', "colour"),  # an unknown field
        ('experiment = "calibration.normal"', 'experiment = "no.such"', "experiment"),  # unknown experiment
        ('metric = "value"', 'metric = "valeu"', "metric"),  # unknown metric
        ("threshold = 0.0", 'threshold = "zero"', "assertion.greater.threshold"),
        ('test = "greater"', 'test = "bigger"', "assertion"),
        ("sd = 0.5", "sd = -0.5", "params.sd"),  # out of the param's bounds
        ("sd = 0.5", "sd = 0.5, stepz = 3", "params.stepz"),  # unknown param
        ("seeds = 10", "seeds = 10\nstepz = 3", "scales.ci.stepz"),  # unknown param in a scale
        ('source = "test"', 'source = "nobody"', "source"),
    ],
)
def test_bad_claims_name_file_claim_and_field(tmp_path, replace, by, field):
    body = claim_text()
    assert replace in body
    message = problems_for(tmp_path, body.replace(replace, by, 1))
    assert "demo.toml" in message
    assert "claim 'demo.mean-positive'" in message
    assert f"field '{field}" in message


def test_expect_other_than_reproduced_needs_a_finding(tmp_path):
    message = problems_for(tmp_path, claim_text().replace('expect = "reproduced"', 'expect = "not_reproduced"'))
    assert "finding" in message


def test_duplicate_ids_are_refused(tmp_path):
    message = problems_for(tmp_path, claim_text() + claim_text())
    assert "duplicate" in message


def test_arms_must_match_the_assertion(tmp_path):
    body = claim_text().replace(
        'assertion = { test = "greater", threshold = 0.0, alpha = 0.01 }',
        'assertion = { test = "difference", a = "x", b = "y", direction = "greater" }',
    )
    assert "declare [claim.arms]" in problems_for(tmp_path, body)


def test_invalid_toml_names_the_file(tmp_path):
    message = problems_for(tmp_path, "[[claim]\nid=")
    assert "demo.toml" in message and "not valid TOML" in message


def test_unknown_top_level_key(tmp_path):
    assert "unknown top-level key 'claims'" in problems_for(tmp_path, "[[claims]]\nid = 'x'\n")


def test_missing_path(tmp_path):
    with pytest.raises(ClaimFileError, match="no such claims file"):
        load_claims(tmp_path / "absent")


def test_scales_override_params_and_seeds(tmp_path):
    body = claim_text().replace("seeds = 10", "seeds = 7\nmean = 2.0")
    claim = load_claims(write_claims(tmp_path / "c", body)).get("demo.mean-positive")
    assert claim.n_seeds("ci") == 7 and claim.n_seeds("full") == 12
    assert resolve_params(claim, "ci").mean == 2.0
    assert resolve_params(claim, "full").mean == 1.0


def test_select_by_id_and_prefix(tmp_path):
    claim_set = load_claims(REPO_CLAIMS)
    assert {c.id for c in claim_set.select(["calibration"])} == {
        c.id for c in claim_set if c.id.startswith("calibration.")
    }
    with pytest.raises(UnknownClaimError):
        claim_set.select(["nothing.like.this"])

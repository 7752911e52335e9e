"""Pre-registration the tool enforces, on the real claims and the committed baseline.

Each of these edits to ``claims/`` used to pass the baseline check with no note: deleting a change
note, raising the seeds again on the same root seed, switching a test's method, giving one claim a
family of its own, making a claim a control. Each is applied to a copy of ``claims/`` and must be
refused against the committed ``reports/ci/verdicts.json``; the same edit with a note that gives the
field's before and after (and, for raised seeds, a fresh root seed) passes. `repro report` refuses to
overwrite a baseline with an unregistered change, and no note the previous commit's baseline saw is
gone (regenerating the baseline in the same commit does not hide a deletion).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repro import baseline, preregistration
from repro.cli import app
from repro.load import load_claims
from repro.runner import run_claim
from repro.store import Store

from .helpers import claim_text, write_claims

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "reports" / "ci" / "verdicts.json"
runner = CliRunner()


def _committed() -> baseline.Baseline:
    committed = baseline.read(COMMITTED)
    if not all(row.notes is not None for row in committed.rows.values()):
        pytest.skip("the committed baseline predates note digests: regenerate it with `repro report --scale ci`")
    return committed


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "claims"
    shutil.copytree(REPO / "claims", folder)
    return folder


def _edit_claim(folder: Path, file: str, claim_id: str, edit) -> None:
    """Apply ``edit`` (text -> text) to the [[claim]] block of ``claim_id`` in ``folder/file``."""
    path = folder / file
    blocks = path.read_text().split("\n[[claim]]\n")
    (index,) = [i for i, block in enumerate(blocks) if re.search(rf'^id = "{re.escape(claim_id)}"$', block, re.M)]
    edited = edit(blocks[index])
    assert edited != blocks[index]
    blocks[index] = edited
    path.write_text("\n[[claim]]\n".join(blocks))


def _note(folder: Path, file: str, claim_id: str, fields: dict, **extra: str) -> None:
    """Append a change note to ``file``'s history file."""
    lines = [
        "[[change]]", f"claim = {json.dumps(claim_id)}", "date = 2026-12-07", 'what = "the edit under test"',
        'why = "a test of the pre-registration check"', 'before = "as in the committed baseline"',
        "fields = { " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in fields.items()) + " }",
        *(f"{key} = {json.dumps(value)}" for key, value in extra.items()),
    ]  # fmt: skip
    history = folder / "history" / file
    history.write_text(history.read_text() + "\n" + "\n".join(lines) + "\n")


def _problems(folder: Path, claim_id: str) -> list[str]:
    return [p for p in baseline.preregistration_problems(load_claims(folder), _committed()) if p.startswith(claim_id)]


def test_the_real_claims_pass_unedited(tmp_path):
    assert baseline.preregistration_problems(load_claims(_copy(tmp_path)), _committed()) == []


def test_deleting_a_change_note_is_refused(tmp_path):
    folder = _copy(tmp_path)
    history = folder / "history" / "subnetworks.toml"
    text = history.read_text()
    blocks = text.split("\n[[change]]\n")
    (first,) = [i for i, b in enumerate(blocks) if b.startswith('claim = "subnetworks.cs.beats-dense"')][:1]
    history.write_text("\n[[change]]\n".join(blocks[:first] + blocks[first + 1 :]))
    (problem,) = _problems(folder, "subnetworks.cs.beats-dense")
    assert "change note(s) the baseline has seen are gone or edited" in problem


def test_seeds_raised_again_on_the_same_root_seed_are_refused(tmp_path):
    claim_id = "tms.linear.m-features"  # its older notes already mention seeds
    folder = _copy(tmp_path)
    _edit_claim(folder, "tms.toml", claim_id, lambda b: b.replace("batch = 256\nseeds = 11", "batch = 256\nseeds = 15"))
    (problem,) = _problems(folder, claim_id)
    assert "seeds.ci changed from 11 to 15" in problem
    _note(folder, "tms.toml", claim_id, {"seeds.ci": [11, 15]})
    (problem,) = _problems(folder, claim_id)
    assert "raised 11 -> 15 on the same root seed" in problem
    fresh = _copy(tmp_path / "fresh")
    _edit_claim(fresh, "tms.toml", claim_id, lambda b: b.replace("batch = 256\nseeds = 11", "batch = 256\nseeds = 15")
                .replace('metric = "n_represented"\n', 'metric = "n_represented"\nseed = 20261207\n', 1))  # fmt: skip
    _note(fresh, "tms.toml", claim_id, {"seeds.ci": [11, 15], "seed": [0, 20261207]})
    assert _problems(fresh, claim_id) == []


def test_switching_the_method_is_refused(tmp_path):
    claim_id = "tms.relu.frobenius-at-0.01"
    folder = _copy(tmp_path)
    _edit_claim(folder, "tms.toml", claim_id, lambda b: re.sub(r"(\nassertion = \{[^\n]*?) \}\n",
                r'\1, method = "wilcoxon" }\n', b, count=1))  # fmt: skip
    (problem,) = _problems(folder, claim_id)
    assert 'assertion.method changed from "t" to "wilcoxon"' in problem
    _note(folder, "tms.toml", claim_id, {"assertion.method": ["t", "wilcoxon"]})
    assert _problems(folder, claim_id) == []


def test_a_family_of_its_own_is_refused(tmp_path):
    claim_id = "subnetworks.cs.beats-dense"  # alone, its raw p would decide
    folder = _copy(tmp_path)
    _edit_claim(folder, "subnetworks.toml", claim_id, lambda b: b.replace(
        "\nseeds = ", '\nfamily = "subnetworks.beats-dense"\nseeds = ', 1))  # fmt: skip
    (problem,) = _problems(folder, claim_id)
    assert 'family changed from "unset" to "subnetworks.beats-dense"' in problem
    _note(folder, "subnetworks.toml", claim_id, {"family": [preregistration.UNSET, "subnetworks.beats-dense"]})
    assert _problems(folder, claim_id) == []


def test_declaring_a_claim_a_control_is_refused(tmp_path):
    claim_id = "tms.linear.m-features"
    folder = _copy(tmp_path)
    _edit_claim(folder, "tms.toml", claim_id, lambda b: b.replace("\nseeds = ", "\ncontrol = true\nseeds = ", 1))
    problems = _problems(folder, claim_id)
    assert any("control changed from false to true" in p for p in problems), problems


def test_report_refuses_to_overwrite_a_baseline_with_an_unregistered_change(tmp_path):
    claims = write_claims(tmp_path / "claims", claim_text())
    for claim in load_claims(claims):
        run_claim(claim, "ci", store=Store.default(), device="cpu")
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", "--claims", str(claims), "-o", str(out)]).exit_code == 0
    written = (out / "verdicts.json").read_bytes()
    claims.write_text(claims.read_text().replace("alpha = 0.01", "alpha = 0.05", 1))
    result = runner.invoke(app, ["report", "--claims", str(claims), "-o", str(out)])
    assert result.exit_code == 2 and "refusing to overwrite the baseline" in result.output
    assert "assertion.alpha changed from 0.01 to 0.05" in result.output
    assert (out / "verdicts.json").read_bytes() == written  # nothing half-written


def test_no_note_the_previous_commits_baseline_saw_is_gone():
    """Regenerating the baseline in the commit that deletes a note does not hide it: the parent's baseline saw it."""
    try:
        shown = subprocess.run(["git", "show", "HEAD~1:reports/ci/verdicts.json"], cwd=REPO, capture_output=True,
                               text=True, check=False, timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("git is not available")
    if shown.returncode != 0:
        pytest.skip("no parent commit with a baseline (a shallow clone, or the first commit)")
    previous = baseline.parse(json.loads(shown.stdout), "HEAD~1:reports/ci/verdicts.json")
    claims = {claim.id: claim for claim in load_claims(REPO / "claims")}
    lost = [
        f"{claim_id}: {digest}"
        for claim_id, row in previous.rows.items()
        if claim_id in claims and row.notes
        for digest in row.notes
        if digest not in preregistration.note_digests(claims[claim_id])
    ]
    assert not lost, "change notes the previous commit's baseline saw are gone or edited:\n" + "\n".join(lost)


def test_history_files_are_validated_naming_the_file_and_claim(tmp_path):
    from repro.errors import ClaimFileError

    claims = write_claims(tmp_path / "claims", claim_text())
    history = tmp_path / "claims" / "history"
    history.mkdir()
    note = 'date = 2024-05-01\nwhat = "seeds 8 -> 10"\nwhy = "the plan asks ten"\nbefore = "reproduced"\n'
    (history / "demo.toml").write_text(f'[[change]]\nclaim = "demo.mean-positive"\n{note}')
    (claim,) = load_claims(claims)
    assert [n.what for n in claim.changed] == ["seeds 8 -> 10"]  # appended to the claim
    (history / "demo.toml").write_text(f'[[change]]\nclaim = "demo.nothing"\n{note}')
    with pytest.raises(ClaimFileError) as bad_id:
        load_claims(claims)
    assert "history/demo.toml: change #1: field 'claim'" in str(bad_id.value) and "demo.nothing" in str(bad_id.value)
    undated = note.replace("2024-05-01", '"May"')
    (history / "demo.toml").write_text(f'[[change]]\nclaim = "demo.mean-positive"\n{undated}')
    with pytest.raises(ClaimFileError) as bad_note:
        load_claims(claims)
    assert "history/demo.toml: change #1 (claim 'demo.mean-positive')" in str(bad_note.value)
    assert "'date'" in str(bad_note.value)
    (history / "demo.toml").write_text(
        f'[[change]]\nclaim = "demo.mean-positive"\n{note}fields = {{ "seeds.ci" = [10, 10] }}\n'
    )
    with pytest.raises(ClaimFileError, match="before and after are equal"):
        load_claims(claims)

"""repro export --format latex: the stored verdicts as LaTeX macros, from a store filled by tiny ci runs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repro.cli import app
from repro.export import FIELDS, claims_label, escape, latex, number
from repro.judge import judge_all
from repro.load import ClaimSet, load_claims
from repro.runner import run_claim
from repro.store import Store

from .helpers import write_claims

runner = CliRunner()
CALIBRATION = Path(__file__).resolve().parents[1] / "claims" / "calibration.toml"
POSITIVE, NEGATIVE = "calibration.greater.positive", "calibration.greater.negative"
SEQUENTIAL = "calibration.sequential.greater.positive"
NOT_RUN = "calibration.proportion.negative"
STRONG, SPECIAL = "paper.mean-strong", "paper.special_chars"
SPECIAL_TEXT = r"Draws_1 hold 100 % & #2 at $x$ in {braces} ~ ^ \ and |x| < 1 > 0"

FAMILY = """
[[claim]]
id = "paper.mean-strong"
source = "test"
statement = "Draws with mean 1 have a mean above 0"
evidence = "By construction"
experiment = "calibration.normal"
metric = "value"
seeds = 12
assertion = { test = "greater", threshold = 0.0, alpha = 0.01 }
params = { mean = 1.0, sd = 0.5 }
[claim.scales.ci]
seeds = 10

[[claim]]
id = "paper.special_chars"
source = "test"
statement = 'STATEMENT'
evidence = "By construction"
experiment = "calibration.normal"
metric = "value"
seeds = 12
assertion = { test = "greater", threshold = 0.0, alpha = 0.01 }
params = { mean = 0.8, sd = 0.5, stream = 3 }
[claim.scales.ci]
seeds = 10
""".replace("STATEMENT", SPECIAL_TEXT)


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[ClaimSet, Path, Store]:
    """Calibration controls (two fixed-seed, one sequential) and a two-claim Holm family run at ci scale
    into one store; the other calibration claims are left unrun. Returns the family, its claims file, the store."""
    root = tmp_path_factory.mktemp("export")
    store = Store(root / "store")
    calibration = load_claims(CALIBRATION)
    for claim_id in (POSITIVE, NEGATIVE, SEQUENTIAL):
        run_claim(calibration.get(claim_id), "ci", store=store, device="cpu")
    family_file = write_claims(root / "claims", FAMILY, name="paper.toml")
    family = load_claims(family_file)
    for claim in family:
        run_claim(claim, "ci", store=store, device="cpu", family_size=family.family_size(claim, "ci"))
    return family, family_file, store


def _invoke(monkeypatch, store: Store, *args: str):
    monkeypatch.setenv("REPRO_HOME", str(store.root))
    return runner.invoke(app, list(args))


def _export(monkeypatch, store: Store, claims: Path, *extra: str) -> str:
    result = _invoke(monkeypatch, store, "export", "--format", "latex", "--claims", str(claims), *extra)
    assert result.exit_code == 0, result.output
    return result.stdout


def _macros(text: str) -> dict[tuple[str, str], str]:
    """(claim id, field) -> the stored value, read back from the definitions."""
    pattern = re.compile(r"^\\expandafter\\def\\csname repro@(.+?)@(\w+)\\endcsname\{(.*)\}$", re.MULTILINE)
    return {(m[1], m[2]): m[3] for m in pattern.finditer(text)}


def test_two_exports_from_the_same_store_are_byte_identical(filled, monkeypatch, tmp_path):
    _, _, store = filled
    first = _export(monkeypatch, store, CALIBRATION)
    out = tmp_path / "verdicts.tex"
    result = _invoke(monkeypatch, store, "export", "--claims", str(CALIBRATION), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == first.encode("utf-8")
    assert _export(monkeypatch, store, CALIBRATION) == first
    # The header names the scale and the claims path; nothing varies from run to run or machine to machine.
    assert first.startswith("% repro export --format latex: the verdicts of ")
    assert " at ci scale" in first.splitlines()[0]
    assert str(tmp_path) not in first and str(store.root) not in first and "/tmp" not in first
    assert "calibration.toml" in first.splitlines()[1]


def test_macros_carry_the_report_s_verdicts_and_numbers(filled, monkeypatch, tmp_path):
    _, _, store = filled
    values = _macros(_export(monkeypatch, store, CALIBRATION))
    report = tmp_path / "report"
    result = _invoke(monkeypatch, store, "report", "--claims", str(CALIBRATION), "-o", str(report))
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads((report / "verdicts.json").read_text())["claims"]}
    exact = {c["id"]: c for c in json.loads((report / "results.json").read_text())["claims"]}

    assert values[(POSITIVE, "verdict")] == "reproduced" == rows[POSITIVE]["verdict"]
    assert values[(NEGATIVE, "verdict")] == "not reproduced"
    assert rows[NEGATIVE]["verdict"] == "not_reproduced"
    assert values[(NEGATIVE, "expect")] == "not reproduced" and values[(POSITIVE, "expect")] == "reproduced"
    assert values[(NOT_RUN, "verdict")] == "not run" and values[(NOT_RUN, "estimate")] == "--"
    for claim_id in (POSITIVE, NEGATIVE):
        row, verdict = rows[claim_id], exact[claim_id]["verdict"]
        # The same estimate as verdicts.json (6 significant digits) and as the page (4, from results.json).
        assert float(values[(claim_id, "estimate")]) == pytest.approx(row["estimate"], rel=1e-3)
        assert values[(claim_id, "estimate")] == f"{verdict['estimate']:.4g}"
        assert float(values[(claim_id, "low")]) == pytest.approx(row["ci_low"], rel=1e-3)
        assert float(values[(claim_id, "high")]) == pytest.approx(row["ci_high"], rel=1e-3)
        assert values[(claim_id, "seeds")] == str(row["seeds"])
        assert values[(claim_id, "threshold")] == "0"
        assert values[(claim_id, "metric")] == "value"
        # A control is judged alone: the deciding interval and p are the raw ones.
        assert values[(claim_id, "interval")] == values[(claim_id, "rawinterval")]
        assert values[(claim_id, "p")] == values[(claim_id, "rawp")]
        assert values[(claim_id, "evalue")] == "--"
    p = float(values[(NEGATIVE, "p")])  # ~1: plain form; the positive control's p is tiny: scientific, in math
    assert p == pytest.approx(rows[NEGATIVE]["p_value"], rel=0.05)
    assert re.fullmatch(r"\\ensuremath\{(\d(\.\d)?\\times)?10\^\{-\d+\}\}", values[(POSITIVE, "p")])
    assert values[(POSITIVE, "p")] == number(exact[POSITIVE]["verdict"]["p_value"], digits=2)
    assert set(FIELDS) == {field for (claim_id, field) in values if claim_id == POSITIVE}


def test_a_sequential_claim_exports_its_anytime_p_and_e_value(filled, monkeypatch):
    _, _, store = filled
    values = _macros(_export(monkeypatch, store, CALIBRATION))
    run = judge_all([load_claims(CALIBRATION).get(SEQUENTIAL)], "ci", store, load_claims(CALIBRATION))[0]
    assert run.verdict.sequential is not None
    assert values[(SEQUENTIAL, "verdict")] == "reproduced"
    assert values[(SEQUENTIAL, "evalue")] == number(run.verdict.sequential.e_value)
    assert values[(SEQUENTIAL, "p")] == number(run.verdict.p_value, digits=2)
    assert values[(SEQUENTIAL, "seeds")] == str(run.verdict.sequential.seeds_used)


def test_a_family_member_exports_the_interval_at_its_holm_level(filled, monkeypatch):
    family, family_file, store = filled
    values = _macros(_export(monkeypatch, store, family_file))
    runs = {run.claim.id: run for run in judge_all(list(family), "ci", store, family)}
    for claim_id, run in runs.items():
        v = run.verdict
        assert v.family is not None and v.ci_low_adjusted is not None and v.p_adjusted is not None
        assert values[(claim_id, "low")] == number(v.ci_low_adjusted)
        assert values[(claim_id, "high")] == number(v.ci_high_adjusted)
        assert values[(claim_id, "rawlow")] == number(v.ci_low)
        assert values[(claim_id, "p")] == number(v.p_adjusted, digits=2)
        assert values[(claim_id, "rawp")] == number(v.p_value, digits=2)
    # The member with the smaller p is tested at alpha / 2: its deciding interval is wider than the raw one.
    first = min(runs.values(), key=lambda r: r.verdict.p_value or 1.0).claim.id
    assert values[(first, "interval")] != values[(first, "rawinterval")]
    assert values[(first, "level")] != values[(first, "rawlevel")] == r"98\%"


def test_special_characters_are_escaped(filled, monkeypatch):
    assert escape(r"a_b % & # $ { } ~ ^ \ z") == (
        r"a\_b \% \& \# \$ \{ \} \textasciitilde{} \textasciicircum{} \textbackslash{} z"
    )
    assert escape("two\nlines") == "two lines"
    family, family_file, store = filled
    text = _export(monkeypatch, store, family_file)
    statement = _macros(text)[(SPECIAL, "statement")]
    assert statement == escape(SPECIAL_TEXT)
    assert not re.search(r"(?<!\\)[_%&#$~^]", statement.replace("{}", ""))
    assert r"\texttt{paper.special\_chars}" in text  # the id in the table; csnames keep it as it is
    assert r"\csname repro@paper.special_chars@statement\endcsname" in text


def test_numbers_are_formatted_deterministically():
    assert number(None) == "--"
    assert number(0.123456) == "0.1235" and number(-1.04349) == "-1.043" and number(-0.0) == "0"
    assert number(12.0) == "12" and number(0.00012345) == "0.0001234"
    assert number(3.2e-5, digits=2) == r"\ensuremath{3.2\times10^{-5}}"
    assert number(1e-12, digits=2) == r"\ensuremath{10^{-12}}"
    assert number(-123456.0) == r"\ensuremath{-1.235\times10^{5}}"


def test_claims_label_is_never_absolute(tmp_path):
    assert claims_label(Path("claims")) == "claims"
    assert claims_label(tmp_path / "x" / "claims.toml", cwd=tmp_path) == "x/claims.toml"
    assert claims_label(tmp_path / "claims.toml", cwd=tmp_path / "elsewhere") == "claims.toml"


def test_bad_input_exits_2(filled, monkeypatch, tmp_path):
    _, _, store = filled
    result = _invoke(monkeypatch, store, "export", "--format", "html", "--claims", str(CALIBRATION))
    assert result.exit_code == 2
    assert "latex" in result.output and "html" in result.output
    assert _invoke(monkeypatch, store, "export", "--scale", "huge", "--claims", str(CALIBRATION)).exit_code == 2
    assert _invoke(monkeypatch, store, "export", "--claims", str(tmp_path / "missing.toml")).exit_code == 2
    unwritable = tmp_path / "no" / "such" / "folder" / "v.tex"
    assert _invoke(monkeypatch, store, "export", "--claims", str(CALIBRATION), "-o", str(unwritable)).exit_code == 2


DOCUMENT = r"""\documentclass{article}
\input{verdicts.tex}
\begin{document}
The mean is \repro{calibration.greater.positive}{estimate} (\repro{calibration.greater.positive}{level}
interval \repro{calibration.greater.positive}{interval}, $p = \repro{calibration.greater.positive}{p}$);
the family's \repro{paper.special_chars}{statement}: \repro{paper.special_chars}{verdict}.

\reproclaimtable
BODY
\end{document}
"""


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_the_export_compiles_with_pdflatex(filled, tmp_path):
    family, _, store = filled
    calibration = load_claims(CALIBRATION)
    both = dataclasses.replace(family, claims=family.claims + calibration.claims,
                               sources={**calibration.sources, **family.sources})  # fmt: skip
    (tmp_path / "verdicts.tex").write_text(latex(judge_all(list(both), "ci", store, both), "ci", "claims"))

    def compile_(name: str, body: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / f"{name}.tex").write_text(DOCUMENT.replace("BODY", body))
        command = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", f"{name}.tex"]
        env = {**os.environ, "max_print_line": "10000"}  # TeX breaks its log lines at 79 characters
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)

    done = compile_("paper", "")
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 0
    unknown = compile_("unknown", r"\repro{calibration.no-such-claim}{estimate}")
    assert unknown.returncode != 0
    assert "Package repro Error: No value 'estimate' for claim 'calibration.no-such-claim'" in unknown.stdout

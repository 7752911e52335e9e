"""repro.baseline and `repro diff`: the verdict baseline, its diff, and the pre-registration check.

The last test runs in CI against the real files: the committed ``reports/ci/verdicts.json`` and
``claims/``. CI's pytest items assert that each claim's ci verdict equals its ci ``expect``; this
test asserts that the committed baseline's verdict equals it too, so a ci run that differs from
the baseline by a verdict fails one or the other. And a claim whose threshold, margin, alpha,
seeds or expect moved since the baseline must say so in a dated ``changed`` note.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repro import baseline, preregistration
from repro.cli import app
from repro.errors import BaselineError
from repro.load import load_claims
from repro.runner import run_claim
from repro.store import Store

from .helpers import claim_text, write_claims

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "reports" / "ci" / "verdicts.json"
runner = CliRunner()


def _row(claim_id: str = "demo.a", **fields) -> baseline.Row:
    values = {
        "id": claim_id, "scale": "ci", "verdict": "reproduced", "expect": "reproduced", "estimate": 1.0,
        "ci_low": 0.8, "ci_high": 1.2, "ci_level": 0.98, "p_value": 0.001, "p_adjusted": 0.002, "p_opposite": 0.99,
        "p_opposite_adjusted": 1.0, "alpha": 0.01, "family": "demo.test", "family_size": 2,
        "test": "scipy.stats.ttest_1samp", "n": 10, "seeds": 10, "code_version": "abc", "declared": None,
    }  # fmt: skip
    values.update(fields)
    return baseline.Row(**values)


def _by_id(*rows: baseline.Row) -> dict[str, baseline.Row]:
    return {r.id: r for r in rows}


# -- the file ---------------------------------------------------------------------------------------------


def test_write_read_round_trip_and_byte_identical_rewrite(tmp_path):
    rows = [_row("demo.b", declared={"seeds": {"ci": 10, "full": 12}}), _row("demo.a", p_adjusted=None, family=None)]
    first = baseline.write(tmp_path / "one" / "verdicts.json", rows, "ci")
    read = baseline.read(first)
    assert read.scale == "ci" and list(read.rows) == ["demo.a", "demo.b"]  # sorted by id
    assert read.rows["demo.b"] == rows[0] and read.rows["demo.a"] == rows[1]
    again = baseline.write(tmp_path / "two.json", list(read.rows.values()), "ci")
    assert again.read_bytes() == first.read_bytes()
    document = json.loads(first.read_text())
    assert document["kind"] == "repro verdicts" and document["format"] == baseline.BASELINE_FORMAT
    assert list(document["claims"][0]) == sorted(document["claims"][0])  # sorted keys


def test_floats_are_rounded_so_noise_does_not_churn_the_file():
    noisy = _row(estimate=1.0 + 1e-12, p_value=0.0123456789, ci_low=0.799999999999)
    assert noisy.estimate == 1.0 and noisy.p_value == 0.0123457 and noisy.ci_low == 0.8
    assert baseline.dumps([noisy], "ci") == baseline.dumps([_row(p_value=0.0123457)], "ci")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"claims": 3, "scale": "ci"}', "no 'claims' list"),
        ('{"claims": [], "scale": "huge"}', "field 'scale'"),
        ('{"kind": "repro verdicts", "format": 99, "claims": [], "scale": "ci"}', "format 99"),
        ('{"kind": "repro verdicts", "format": 1, "claims": [{"id": "x.y"}], "scale": "ci"}', "claim 'x.y': field"),
        ('{"claims": [{"id": "x.y", "status": "reproduced"}], "scale": "ci"}', "claim 'x.y': missing field 'verdict'"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(BaselineError, match="bad.json") as caught:
        baseline.read(path)
    assert problem in str(caught.value) and caught.value.exit_code == 2
    with pytest.raises(BaselineError, match="cannot be read"):
        baseline.read(tmp_path / "missing.json")


def test_a_row_listed_twice_is_refused():
    row = _row().model_dump(mode="json")
    with pytest.raises(BaselineError, match="listed twice"):
        baseline.parse({"kind": "repro verdicts", "format": 1, "scale": "ci", "claims": [row, row]}, "f.json")


# -- diff -------------------------------------------------------------------------------------------------


def test_diff_of_equal_baselines_is_empty():
    assert baseline.diff(_by_id(_row("a.a"), _row("a.b")), _by_id(_row("a.a"), _row("a.b"))) == []


def test_diff_detects_a_moved_verdict():
    (delta,) = baseline.diff(_by_id(_row()), _by_id(_row(verdict="inconclusive")))
    assert delta.moved and delta.reasons == ("verdict moved",) and delta.id == "demo.a"


def test_diff_detects_an_estimate_outside_the_old_interval():
    (delta,) = baseline.diff(_by_id(_row()), _by_id(_row(estimate=1.3)))
    assert delta.reasons == ("estimate outside the old CI",) and not delta.moved
    assert baseline.diff(_by_id(_row()), _by_id(_row(estimate=1.2))) == []  # on the bound is inside
    assert baseline.diff(_by_id(_row()), _by_id(_row(estimate=None, ci_low=None, ci_high=None, verdict="not_run")))[
        0
    ].reasons == ("verdict moved",)


def test_diff_detects_p_crossing_alpha_adjusted_p_first():
    crossed = baseline.diff(_by_id(_row()), _by_id(_row(p_adjusted=0.02)))
    assert crossed[0].reasons == ("p crossed alpha",) and not crossed[0].moved
    # The raw p crosses but the adjusted one, which decides, does not: nothing to report.
    assert baseline.diff(_by_id(_row(p_value=0.001)), _by_id(_row(p_value=0.02, p_adjusted=0.005))) == []
    # Judged alone (no adjusted p): the raw p decides.
    alone = {"p_adjusted": None, "family": None, "family_size": 1}
    assert baseline.diff(_by_id(_row(**alone)), _by_id(_row(p_value=0.5, **alone)))[0].reasons == ("p crossed alpha",)
    # A changed alpha counts on each side.
    assert baseline.diff(_by_id(_row(p_adjusted=0.02)), _by_id(_row(p_adjusted=0.02, alpha=0.05)))[0].reasons == (
        "p crossed alpha",
    )


def test_diff_lists_claims_on_one_side_only():
    deltas = baseline.diff(_by_id(_row("a.gone"), _row("a.kept")), _by_id(_row("a.kept"), _row("a.new")))
    assert [(d.id, d.reasons, d.moved) for d in deltas] == [
        ("a.gone", ("only in old",), True),
        ("a.new", ("only in new",), True),
    ]


# -- pre-registration ---------------------------------------------------------------------------------------

TWO_CLAIMS = claim_text() + claim_text(mean=-1.0, expect="not_reproduced").replace("demo.mean-positive", "demo.control")


def _claims(tmp_path: Path, body: str = TWO_CLAIMS, name: str = "claims"):
    return load_claims(write_claims(tmp_path / name, body))


def _committed(claim_set, **verdicts: str) -> baseline.Baseline:
    rows = {}
    for claim in claim_set:
        verdict = verdicts.get(claim.id.split(".")[1], claim.expected("ci"))
        rows[claim.id] = _row(claim.id, verdict=verdict, declared=baseline.declared(claim),
                              notes=preregistration.note_digests(claim))  # fmt: skip
    return baseline.Baseline("ci", rows, "verdicts.json")


def test_preregistration_passes_when_claims_and_baseline_agree(tmp_path):
    claim_set = _claims(tmp_path)
    assert baseline.preregistration_problems(claim_set, _committed(claim_set)) == []


def test_preregistration_verdict_must_equal_the_ci_expect(tmp_path):
    claim_set = _claims(tmp_path)
    (problem,) = baseline.preregistration_problems(claim_set, _committed(claim_set, control="inconclusive"))
    assert problem.startswith("demo.control:") and "inconclusive" in problem and "not_reproduced" in problem


def test_preregistration_a_fragile_expected_verdict_must_be_declared(tmp_path):
    claim_set = _claims(tmp_path)
    committed = _committed(claim_set)
    fragile = {"seeds": 10, "leave_one_out": 10, "decides": 1, "near": None, "fragile": True}
    row = committed.rows["demo.control"]
    committed.rows["demo.control"] = row.model_copy(update={"margin": fragile})
    (problem,) = baseline.preregistration_problems(claim_set, committed)
    assert problem.startswith("demo.control: its expected ci verdict is fragile") and "scales.ci.fragile" in problem
    control = claim_set.get("demo.control")
    scales = dict(control.scales)
    scales["ci"] = scales["ci"].model_copy(update={"fragile": "declared: one seed decides, and why"})
    declared = type(claim_set)(
        claims=tuple(control.model_copy(update={"scales": scales}) if c.id == "demo.control" else c for c in claim_set),
        sources=claim_set.sources, files=claim_set.files,
    )  # fmt: skip
    assert baseline.preregistration_problems(declared, committed) == []


def test_preregistration_every_claim_in_the_baseline_and_no_stale_rows(tmp_path):
    claim_set = _claims(tmp_path)
    committed = _committed(claim_set)
    committed.rows["demo.retired"] = committed.rows.pop("demo.control").model_copy(update={"id": "demo.retired"})
    problems = baseline.preregistration_problems(claim_set, committed)
    assert len(problems) == 2
    assert "demo.control: not in the baseline" in problems[0] and "demo.retired: in the baseline" in problems[1]


@pytest.mark.parametrize(
    ("old", "new", "path", "before", "after"),
    [
        ("threshold = 0.0", "threshold = 0.2", "assertion.threshold", 0.0, 0.2),
        ("alpha = 0.01", "alpha = 0.05", "assertion.alpha", 0.01, 0.05),
        ("seeds = 12", "seeds = 12\nseed = 7", "seed", 0, 7),  # new seeds, as a new count draws
        ('metric = "value"', 'metric = "value"\nfamily = "demo.alone"', "family", "unset", "demo.alone"),
        ('metric = "value"', 'metric = "value"\ncontrol = true', "control", False, True),
    ],
)
def test_preregistration_a_changed_field_needs_a_note_giving_it(tmp_path, old, new, path, before, after):
    """Each declared field moves only with a new note whose fields give it, with exactly its before and after."""
    committed = _committed(_claims(tmp_path, claim_text(), "before"))
    body = claim_text().replace(old, new, 1)
    assert body != claim_text()
    (problem,) = baseline.preregistration_problems(_claims(tmp_path, body, "after"), committed)
    assert problem.startswith(f"demo.mean-positive: {path} changed from") and "no new change note" in problem
    naming_only = (
        f'{{ date = 2024-05-01, what = "{path}: old -> new", why = "the source says so", before = "reproduced" }}'
    )
    wrong = json.dumps(after + 1 if isinstance(after, (int, float)) and not isinstance(after, bool) else "other")
    cases = (
        (naming_only, 1),  # a note that names the field in words is not enough
        (f'{naming_only[:-2]}, fields = {{ "{path}" = [{json.dumps(before)}, {wrong}] }} }}', 2),  # wrong after
        (f'{naming_only[:-2]}, fields = {{ "{path}" = [{json.dumps(before)}, {json.dumps(after)}] }} }}', 0),
    )
    for index, (note, left) in enumerate(cases):
        annotated = _claims(
            tmp_path, body.replace("[claim.scales.ci]", f"changed = [{note}]\n[claim.scales.ci]"), f"n{index}"
        )
        problems = baseline.preregistration_problems(annotated, committed)
        assert len(problems) == left, problems


def _noted(body: str, extra: str, before_ci: str = "") -> str:
    """``body`` with one change note (its ``fields`` and any other keys in ``extra``) before its ci scale."""
    note = (
        f'{{ date = 2024-05-01, what = "seeds at ci 10 -> 14", why = "repro plan asks 14", before = "rep", {extra} }}'
    )
    return body.replace("[claim.scales.ci]", f"{before_ci}changed = [{note}]\n[claim.scales.ci]")


def test_preregistration_seeds_raised_on_the_same_root_need_a_reason(tmp_path):
    committed = _committed(_claims(tmp_path, claim_text(), "before"))
    body = claim_text().replace("seeds = 10", "seeds = 14", 1)  # at ci
    raised = _claims(tmp_path, _noted(body, 'fields = { "seeds.ci" = [10, 14] }'), "raised")
    (problem,) = baseline.preregistration_problems(raised, committed)
    assert "raised 10 -> 14 on the same root seed 0" in problem and "root_seed_kept" in problem
    fresh = _noted(body, 'fields = { "seeds.ci" = [10, 14], "seed" = [0, 99] }', before_ci="seed = 99\n")
    assert baseline.preregistration_problems(_claims(tmp_path, fresh, "fresh"), committed) == []
    kept = _noted(body, 'fields = { "seeds.ci" = [10, 14] }, root_seed_kept = "the first ten were never looked at"')
    assert baseline.preregistration_problems(_claims(tmp_path, kept, "kept"), committed) == []


def test_preregistration_a_note_the_baseline_has_seen_is_never_deleted_or_edited(tmp_path):
    note = '{ date = 2024-05-01, what = "statement reworded", why = "the source says so", before = "reproduced" }'
    body = claim_text().replace("[claim.scales.ci]", f"changed = [{note}]\n[claim.scales.ci]")
    committed = _committed(_claims(tmp_path, body, "before"))
    assert baseline.preregistration_problems(_claims(tmp_path, body, "same"), committed) == []
    (problem,) = baseline.preregistration_problems(_claims(tmp_path, claim_text(), "deleted"), committed)
    assert "1 change note(s) the baseline has seen are gone or edited" in problem
    edited = _claims(tmp_path, body.replace("the source says so", "the source says otherwise"), "edited")
    assert "gone or edited" in baseline.preregistration_problems(edited, committed)[0]


def test_preregistration_a_skipped_claim_is_skipped_in_the_baseline(tmp_path):
    from .helpers import skipped_claim_text

    claim_set = _claims(tmp_path, skipped_claim_text())
    assert baseline.declared(claim_set.claims[0])["expect"] == {"ci": "skipped", "full": "reproduced"}
    assert baseline.preregistration_problems(claim_set, _committed(claim_set, **{"mean-positive": "skipped"})) == []
    (problem,) = baseline.preregistration_problems(claim_set, _committed(claim_set, **{"mean-positive": "reproduced"}))
    assert "the claim expects skipped" in problem


# -- repro report and repro diff ---------------------------------------------------------------------------


def _report(claims: Path, out: Path) -> Path:
    """Fill the test's store (REPRO_HOME, see conftest) with the claims at ci, then `repro report`."""
    for claim in load_claims(claims):
        run_claim(claim, "ci", store=Store.default(), device="cpu")
    result = runner.invoke(app, ["report", "--claims", str(claims), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out / "verdicts.json"


def test_report_writes_the_baseline_and_diff_exit_codes(tmp_path):
    claims = write_claims(tmp_path / "claims", TWO_CLAIMS)
    old = _report(claims, tmp_path / "old")
    rows = baseline.read(old).rows
    assert set(rows) == {"demo.mean-positive", "demo.control"}
    assert rows["demo.mean-positive"].verdict == "reproduced" and rows["demo.control"].verdict == "not_reproduced"
    assert rows["demo.mean-positive"].declared == baseline.declared(load_claims(claims).get("demo.mean-positive"))
    assert rows["demo.mean-positive"].family == "demo.test" and rows["demo.mean-positive"].family_size == 2

    # The same store: nothing differs, whether against a verdicts.json, a results.json or the store itself.
    for new in (str(old), str(old.parent / "results.json"), "store"):
        result = runner.invoke(app, ["diff", str(old), new, "--claims", str(claims)])
        assert result.exit_code == 0, result.output
        assert "no differences: 2 claims" in result.output

    # A verdict moves: the positive claim now draws with mean -1.
    write_claims(tmp_path / "claims", TWO_CLAIMS.replace("mean = 1.0", "mean = -1.0", 1))
    result = runner.invoke(app, ["diff", str(old), "store", "--claims", str(claims)])
    assert result.exit_code == 1, result.output
    assert "demo.mean-positive" in result.output and "verdict moved" in result.output
    assert "demo.control" not in result.output

    # A claim only on one side fails the diff too; an estimate alone leaving the interval does not.
    document = json.loads(old.read_text())
    document["claims"] = [c for c in document["claims"] if c["id"] != "demo.control"]
    fewer = tmp_path / "fewer.json"
    fewer.write_text(json.dumps(document))
    result = runner.invoke(app, ["diff", str(fewer), str(old)])
    assert result.exit_code == 1 and "only in new" in result.output
    for c in document["claims"]:
        c["estimate"] = c["ci_high"] + 1  # the new estimate leaves the old interval; the verdict stays
    shifted = tmp_path / "shifted.json"
    shifted.write_text(json.dumps(document))
    result = runner.invoke(app, ["diff", str(fewer), str(shifted)])
    assert result.exit_code == 0 and "estimate outside the old CI" in result.output


def test_diff_bad_input_exits_2_naming_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("[1, 2")
    good = baseline.write(tmp_path / "good.json", [_row()], "ci")
    for args in (["diff", str(bad), str(good)], ["diff", str(good), str(bad)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "broken.json" in result.output
    result = runner.invoke(app, ["diff", str(tmp_path / "absent.json"), str(good)])
    assert result.exit_code == 2 and "absent.json" in result.output
    full = baseline.write(tmp_path / "full.json", [_row(scale="full")], "full")
    result = runner.invoke(app, ["diff", str(good), str(full)])
    assert result.exit_code == 2 and "full.json" in result.output
    assert runner.invoke(app, ["diff", str(good), str(good), "--scale", "full"]).exit_code == 2
    assert runner.invoke(app, ["diff", str(good), "store", "--scale", "huge"]).exit_code == 2


# -- the committed baseline (CI) -----------------------------------------------------------------------------


@pytest.mark.skipif(
    not COMMITTED.exists(),
    reason="reports/ci/verdicts.json is not committed yet: `repro run --scale ci && repro report --scale ci` writes it",
)
def test_claims_agree_with_the_committed_baseline():
    """Every claim is in the baseline, its ci verdict there is its ci expect, and declared changes carry notes."""
    committed = baseline.read(COMMITTED)
    assert committed.scale == "ci"
    problems = baseline.preregistration_problems(load_claims(REPO / "claims"), committed)
    assert not problems, "\n".join(problems)


def test_diff_says_same_verdict_different_numbers_when_only_the_digest_moved():
    old, new = _row(metrics_digest="aaaa"), _row(metrics_digest="bbbb")
    (delta,) = baseline.diff(_by_id(old), _by_id(new))
    assert delta.reasons == ("same verdict, different numbers",) and not delta.moved
    assert baseline.diff(_by_id(old), _by_id(_row(metrics_digest="aaaa"))) == []
    assert baseline.diff(_by_id(_row()), _by_id(new)) == []  # a row without a digest (an older file) says nothing
    moved = baseline.diff(_by_id(old), _by_id(_row(verdict="inconclusive", metrics_digest="bbbb")))
    assert moved[0].reasons == ("verdict moved",)  # a moved verdict is reported as that, not as drift


def test_the_metrics_digest_sees_the_last_bit_of_one_seed(tmp_path):
    import math
    from dataclasses import dataclass, field

    from repro import stats
    from repro.judge import ClaimRun

    @dataclass
    class _Result:
        seed: int
        metrics: dict
        sweep: dict = field(default_factory=dict)

    claim = load_claims(write_claims(tmp_path, claim_text())).get("demo.mean-positive")
    values = [0.5, 1.25, 0.75]

    def digest(vals):
        results = {"main": [_Result(i, {"value": v}) for i, v in enumerate(vals)]}
        return ClaimRun(claim, "ci", stats.error_verdict(claim.assertion, "x"), [0, 1, 2], results).metrics_digest

    assert digest(values) == digest(list(values))
    assert digest(values) != digest([0.5, math.nextafter(1.25, 2.0), 0.75])
    assert digest(values) != digest([1.25, 0.5, 0.75])  # which seed holds which value counts


def test_a_row_keeps_the_interval_at_the_holm_level_beside_the_raw_one(tmp_path):
    row = _row(ci_low_adjusted=0.7000000001, ci_high_adjusted=1.3, ci_level_adjusted=1 - 2 * 0.01 / 3)
    assert (row.ci_low_adjusted, row.ci_high_adjusted, row.ci_level_adjusted) == (0.7, 1.3, 0.993333)
    assert baseline.read(baseline.write(tmp_path / "v.json", [row], "ci")).rows["demo.a"] == row
    assert _row().ci_low_adjusted is None  # judged alone, or a baseline written before the field


def test_preregistration_rows_from_before_note_digests_take_notes_named_in_words(tmp_path):
    """A row written before rows held note digests (and notes written before ``fields``): the fields it holds
    are compared, and a note whose ``what`` names the moved field in words registers it, as it did then."""
    before = _claims(tmp_path, claim_text(), "before")
    committed = _committed(before)
    old = {key: value for key, value in baseline.declared(before.claims[0]).items() if key in ("assertion", "seeds")}
    committed.rows["demo.mean-positive"] = committed.rows["demo.mean-positive"].model_copy(
        update={"declared": old, "notes": None}
    )
    body = claim_text().replace("seeds = 10", "seeds = 14", 1)
    (problem,) = baseline.preregistration_problems(_claims(tmp_path, body, "bare"), committed)
    assert "seeds.ci changed from 10 to 14" in problem
    note = '{ date = 2024-05-01, what = "seeds at ci 10 -> 14", why = "repro plan asks 14", before = "reproduced" }'
    worded = body.replace("[claim.scales.ci]", f"changed = [{note}]\n[claim.scales.ci]")
    assert baseline.preregistration_problems(_claims(tmp_path, worded, "worded"), committed) == []
    own = _claims(tmp_path, body.replace('metric = "value"', 'metric = "value"\nfamily = "demo.own"'), "family")
    (problem,) = baseline.preregistration_problems(own, committed)
    assert "seeds.ci changed" in problem  # family is not in the old row: not compared; the seeds still are

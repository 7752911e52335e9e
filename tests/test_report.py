"""repro.report: the page and results.json from a store filled by a tiny ci run, and the tms figures."""

from __future__ import annotations

import dataclasses
import json
import textwrap
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from matplotlib.figure import Figure

import repro.report
from repro import registry, stats
from repro.claim import Claim
from repro.experiments.tms import plots as tms_plots
from repro.judge import ClaimRun
from repro.load import ClaimSet, load_claims
from repro.report import build_report
from repro.report.figures import figure_to_data_uri
from repro.runner import run_claim
from repro.store import Store, StoredResult

CALIBRATION = Path(__file__).resolve().parents[1] / "claims" / "calibration.toml"
RUN = ("calibration.greater.positive", "calibration.greater.negative", "calibration.trend.positive")
NOT_RUN = "calibration.proportion.negative"

SOURCES = """
[source.test]
title = "Test source"
authors = "Tester"
year = 2024
url = "https://example.org"
"""

TMS_CLAIM = """
[[claim]]
id = "tiny.tms.pentagon"
source = "test"
statement = "A tiny ReLU toy model with 5 features in 2 dimensions represents some of them"
evidence = "Paper intro figure: a pentagon"
experiment = "tms.train"
metric = "n_represented"
at = 0.1
seeds = 3
assertion = { test = "greater", threshold = 0.5, alpha = 0.2 }
params = { n_features = 5, n_hidden = 2, feature_probability = [1.0, 0.3, 0.1, 0.03], steps = 40, batch = 64 }
[claim.scales.ci]
seeds = 3
"""


def _write(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.toml").write_text(textwrap.dedent(SOURCES))
    path = folder / "claims.toml"
    path.write_text(textwrap.dedent(body))
    return path


def _merge(*sets: ClaimSet) -> ClaimSet:
    return ClaimSet(
        claims=tuple(c for s in sets for c in s.claims),
        sources={k: v for s in sets for k, v in s.sources.items()},
        files={k: v for s in sets for k, v in s.files.items()},
    )


def _build(claim_set: ClaimSet, store: Store, out: Path) -> Path:
    return build_report(claim_set, store, "ci", out)


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[ClaimSet, Store]:
    """Three calibration claims and a tiny tms claim run at ci scale; one calibration claim left unrun."""
    root = tmp_path_factory.mktemp("filled")
    calibration = load_claims(CALIBRATION)
    chosen = dataclasses.replace(calibration, claims=tuple(calibration.get(i) for i in (*RUN, NOT_RUN)))
    claim_set = _merge(chosen, load_claims(_write(root / "claims", TMS_CLAIM)))
    store = Store(root / "store")
    for claim in claim_set:
        if claim.id != NOT_RUN:
            run_claim(claim, "ci", store=store, device="cpu")
    return claim_set, store


@pytest.fixture(scope="module")
def built(filled, tmp_path_factory) -> Path:
    claim_set, store = filled
    return _build(claim_set, store, tmp_path_factory.mktemp("report"))


class _Rows(HTMLParser):
    """Rows of the summary table: each row's attributes and its cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[dict[str, str | None], list[str]]] = []
        self._in_row = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr" and "data-claim" in dict(attrs):
            self._in_row = True
            self.rows.append((dict(attrs), []))
        elif tag == "td" and self._in_row:
            self.rows[-1][1].append("")
        elif tag == "br" and self._in_row:
            self.handle_data(" ")

    def handle_endtag(self, tag):
        if tag == "tr":
            self._in_row = False

    def handle_data(self, data):
        if self._in_row and self.rows[-1][1]:
            self.rows[-1][1][-1] += data


def _rows(html: str) -> dict[str, tuple[dict, list[str]]]:
    parser = _Rows()
    parser.feed(html)
    return {" ".join(cells[0].split()): (attrs, [" ".join(c.split()) for c in cells]) for attrs, cells in parser.rows}


def filled_families(rows: dict) -> dict[str, str]:
    """The family cell each claim of the filled store should show: its claims file, with its size; or alone."""
    claim_set = load_claims(CALIBRATION)
    sizes = {"calibration": 4, "claims": 1}  # the claims of ``filled`` in calibration.toml and claims.toml
    out = {}
    for claim_id in rows:
        control = claim_id != "tiny.tms.pentagon" and claim_set.get(claim_id).control
        family = "calibration" if claim_id.startswith("calibration.") else "claims"
        out[claim_id] = "alone (control)" if control else f"{family} ({sizes[family]} test{'s' * (sizes[family] > 1)})"
    return out


def test_public_surface():
    assert repro.report.__all__ == ["build_report"]


def test_summary_table(built):
    html = built.read_text()
    rows = _rows(html)
    assert list(rows) == [*RUN, NOT_RUN, "tiny.tms.pentagon"]
    status = {claim_id: attrs["data-status"] for claim_id, (attrs, _) in rows.items()}
    assert status == {
        "calibration.greater.positive": "reproduced",
        "calibration.greater.negative": "not_reproduced",
        "calibration.trend.positive": "reproduced",
        NOT_RUN: "not_run",
        "tiny.tms.pentagon": "reproduced",
    }
    header = ["claim", "source", "statement", "verdict", "estimate [CI]", "threshold", "test", "p", "p (Holm)",
              "family", "seeds", "runtime"]  # fmt: skip
    assert all(len(cells) == len(header) for _, cells in rows.values())
    positive = dict(zip(header, rows["calibration.greater.positive"][1], strict=True))
    assert positive["verdict"].startswith("reproduced ✓ as expected")
    assert positive["seeds"] == "20/20" and positive["test"] == "scipy.stats.ttest_1samp"
    assert float(positive["p (Holm)"]) >= float(positive["p"]) > 0  # raw and adjusted side by side
    calibration = filled_families(rows)
    assert positive["family"] == calibration["calibration.greater.positive"]
    assert positive["estimate [CI]"].count("[") == 1  # a control, judged alone: one interval, at the raw level
    pentagon = dict(zip(header, rows["tiny.tms.pentagon"][1], strict=True))
    # in a family: the interval at the raw level and the one at the Holm level that decides, each labelled
    assert pentagon["estimate [CI]"].count(" raw") == 1 and pentagon["estimate [CI]"].endswith(" Holm")
    negative = dict(zip(header, rows["calibration.greater.negative"][1], strict=True))
    # a negative control; no full-scale run of it exists, so its full-scale expectation is marked a prediction
    assert negative["verdict"] == "not reproduced ✓ as expected full scale: expected not reproduced (predicted)"
    unrun = dict(zip(header, rows[NOT_RUN][1], strict=True))
    assert unrun["verdict"] == "not run expected not reproduced full scale: expected not reproduced (predicted)"
    assert unrun["p"] == unrun["p (Holm)"] == unrun["runtime"] == "—" and unrun["seeds"] == "0/40"
    assert unrun["family"] == calibration[NOT_RUN]  # a member not run still counts in its family
    assert 'class="badge s-not_run">not run<' in html and "s-error" not in html.split('<h2 id="claims-detail">')[1]
    for claim_id in rows:  # every row links to its section
        assert f'href="#claim-{claim_id}"' in html and f'id="claim-{claim_id}"' in html
    assert 'id="filter-source"' in html and 'id="filter-status"' in html


def test_page_is_self_contained(built):
    html = built.read_text()
    assert "<link" not in html and ' src="http' not in html and "@import" not in html
    assert html.count("<script>") == 1 and "default-src &#39;none&#39;; img-src data:;" in html
    images = [part.split('"', 1)[0] for part in html.split('<img src="')[1:]]
    assert all(src.startswith("data:image/svg+xml,<svg ") for src in images)
    # per-seed values for the 4 run claims, and the tms claim's 5 own figures
    assert len(images) == 4 + 5
    for src in images:  # percent-encoded where an attribute needs it; well-formed SVG once decoded
        assert not set(src) & set('"&#\n\t') and src.isascii()
        svg = urllib.parse.unquote(src.split(",", 1)[1])
        root = ElementTree.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and "metadata" not in svg and "<!--" not in svg
    assert "could not be drawn" not in html


def test_per_claim_section(built):
    html = built.read_text()
    section = html.split('id="claim-tiny.tms.pentagon"')[1].split("</section>")[0]
    assert "Paper intro figure: a pentagon" in section  # the source's number beside ours
    assert "n_represented at 0.1 &gt; 0.5" in section
    assert "params as run" in section and "feature_probability" in section and "[1.0, 0.3, 0.1, 0.03]" in section
    for label in ("git commit", "packages", "python", "device", "date", "experiment calls"):
        assert f"<td>{label}</td>" in section
    assert "3 of 3 results stored" in section
    unrun = html.split(f'id="claim-{NOT_RUN}"')[1].split("</section>")[0]
    assert "as declared (not run yet)" in unrun and "<img" not in unrun


def test_results_json(built, filled):
    document = json.loads((built.parent / "results.json").read_text())
    assert document["scale"] == "ci" and document["format"] == 1
    counts = {"reproduced": 3, "not_reproduced": 1, "inconclusive": 0, "error": 0, "not_run": 1, "skipped": 0}
    assert document["counts"] == counts
    assert document["as_expected"] == 4
    claims = {c["id"]: c for c in document["claims"]}
    assert list(claims) == [c.id for c in filled[0]]
    positive = claims["calibration.greater.positive"]
    assert positive["verdict"]["outcome"] == "reproduced" and positive["as_expected"] is True
    assert positive["p_adjusted"] >= positive["verdict"]["p_value"]
    assert positive["verdict"]["p_adjusted"] in (None, positive["p_adjusted"])  # None only for a claim judged alone
    assert len(positive["seeds"]) == positive["results_stored"] == 20
    assert claims["calibration.greater.negative"]["expect"] == "not_reproduced"
    unrun = claims[NOT_RUN]
    assert unrun["status"] == "not_run" and unrun["verdict"]["outcome"] == "error"
    assert unrun["as_expected"] is None and unrun["p_adjusted"] is None and unrun["results_stored"] == 0
    assert "within each claim's family" in document["multiple_comparisons"]
    assert "adjusted p decides" in document["multiple_comparisons"]
    # Holm within each family, a member without a p counting as 1; a claim judged alone keeps its raw p.
    families: dict[str, list[dict]] = {}
    for c in document["claims"]:
        if c["family"] is None:
            assert c["p_adjusted"] == c["verdict"]["p_value"]
        else:
            families.setdefault(c["family"], []).append(c)
    assert families, "the filled claims are no controls, so they form families"
    for members in families.values():
        assert all(c["family_size"] == len(members) for c in members)
        raw = [1.0 if c["verdict"]["p_value"] is None else c["verdict"]["p_value"] for c in members]
        expected = stats.holm(raw)
        for c, q in zip(members, expected, strict=True):
            if c["verdict"]["p_value"] is not None:
                assert c["p_adjusted"] == pytest.approx(q) and c["p_adjusted"] >= c["verdict"]["p_value"]
                assert c["verdict"]["family"] == c["family"] and c["verdict"]["family_size"] == len(members)


def test_verdict_baseline_beside_the_report(built, filled):
    from repro import baseline

    document = json.loads((built.parent / "results.json").read_text())
    written = baseline.read(built.parent / "verdicts.json")
    assert written.scale == "ci" and sorted(written.rows) == sorted(c.id for c in filled[0])
    for c in document["claims"]:
        row = written.rows[c["id"]]
        assert row.verdict == c["status"] and row.seeds == len(c["seeds"]) and row.code_version
        if c["verdict"]["p_value"] is not None:
            assert row.p_value == pytest.approx(c["verdict"]["p_value"], rel=1e-5)
    assert written.rows[NOT_RUN].verdict == "not_run" and written.rows[NOT_RUN].estimate is None
    from_results = baseline.read(built.parent / "results.json")  # both formats read, and they agree
    assert baseline.diff(written.rows, from_results.rows) == []


def test_rebuild_is_byte_identical(built, filled, tmp_path):
    claim_set, store = filled
    again = _build(claim_set, store, tmp_path / "again")
    assert again.read_bytes() == built.read_bytes()
    for name in ("results.json", "verdicts.json"):
        assert (again.parent / name).read_bytes() == (built.parent / name).read_bytes()


def test_report_reads_the_store_only(tmp_path):
    claim_set = load_claims(CALIBRATION)
    store = Store(tmp_path / "empty")
    page = build_report(claim_set, store, "full", tmp_path / "out")
    assert not (tmp_path / "empty").exists()  # nothing ran, nothing was written to the store
    document = json.loads((page.parent / "results.json").read_text())
    assert {c["status"] for c in document["claims"]} == {"not_run"}
    assert document["counts"]["not_run"] == len(claim_set)
    assert "<img" not in page.read_text()


def test_statement_is_escaped(tmp_path):
    body = """
    [[claim]]
    id = "demo.escape"
    source = "test"
    statement = "Escaped <script>alert(1)</script> & shown as text"
    evidence = "<img src=x onerror=alert(2)>"
    experiment = "calibration.normal"
    metric = "value"
    seeds = 7
    assertion = { test = "greater", threshold = 0.0 }
    params = { mean = 1.0, sd = 0.5 }
    expect = "inconclusive"
    finding = "<b>bold</b> finding"
    [claim.scales.ci]
    seeds = 7
    """
    path = _write(tmp_path / "claims", body)
    with path.with_name("sources.toml").open("a") as handle:
        handle.write('\n[source.evil]\ntitle = "<i>t</i>"\nauthors = "A & B"\nyear = 2024\n')
        handle.write('url = "javascript:alert(3)"\n')
    path.write_text(path.read_text().replace('source = "test"', 'source = "evil"'))
    claim_set = load_claims(path)
    store = Store(tmp_path / "store")
    run_claim(claim_set.get("demo.escape"), "ci", store=store, device="cpu")
    html = build_report(claim_set, store, "ci", tmp_path / "out").read_text()
    assert "<script>alert(1)</script>" not in html and html.count("<script") == 1
    assert "Escaped &lt;script&gt;alert(1)&lt;/script&gt; &amp; shown as text" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html and "<img src=x" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; finding" in html and "&lt;i&gt;t&lt;/i&gt;" in html
    assert 'href="javascript:' not in html  # only http(s) addresses become links


def test_failing_figure_is_a_note(tmp_path, monkeypatch):
    def broken(claim, run):
        raise ZeroDivisionError("no figure today")

    def good(claim, run):
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [1, 0])
        return fig

    calibration = registry.get("calibration.normal")
    figures = {"broken": broken, "nothing": lambda c, r: None, "wrong type": lambda c, r: 3, "good": good}
    monkeypatch.setitem(registry._REGISTRY, calibration.name, dataclasses.replace(calibration, figures=figures))
    claim_set = load_claims(CALIBRATION)
    claim_set = dataclasses.replace(claim_set, claims=(claim_set.get(RUN[0]),))
    store = Store(tmp_path / "store")
    run_claim(claim_set.claims[0], "ci", store=store, device="cpu")
    html = build_report(claim_set, store, "ci", tmp_path / "out").read_text()
    assert "Figure “broken” could not be drawn: ZeroDivisionError: no figure today" in html
    assert "Figure “wrong type” could not be drawn: TypeError" in html
    assert "<figcaption>nothing</figcaption>" not in html
    assert html.count("<img") == 2  # per-seed values and "good"


# -- tms figures ---------------------------------------------------------------------------------------------


def _tms_claim(**params) -> Claim:
    return Claim.model_validate({
        "id": "synthetic.tms", "source": "test", "statement": "A synthetic toy model claim",
        "evidence": "none", "experiment": "tms.train", "metric": "n_represented", "seeds": 7,
        "assertion": {"test": "greater", "threshold": 1.0}, "params": params, "scales": {"ci": {}},
    })  # fmt: skip


def _synthetic_run(tmp_path: Path, n: int = 6, m: int = 2, sweep=(1.0, 0.1, 0.01), seeds=2, untied=False) -> ClaimRun:
    params = {"n_features": n, "n_hidden": m, "model": "relu_untied" if untied else "relu_tied",
              "feature_probability": list(sweep), "represented_threshold": 0.5}  # fmt: skip
    claim = _tms_claim(**params)
    rng = np.random.default_rng(0)
    k = len(sweep)
    tmp_path.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in range(seeds):
        arrays = {"W": rng.normal(size=(k, m, n)), "b": rng.normal(size=(k, n)) * 0.1,
                  "norms": rng.uniform(0, 1.2, size=(k, n)), "superposition": rng.uniform(0, 1.5, size=(k, n)),
                  "dimensionality": rng.uniform(0, 1, size=(k, n))}  # fmt: skip
        if untied:
            arrays["W2"] = rng.normal(size=(k, n, m))
        path = tmp_path / f"seed{seed}.json"
        np.savez(path.with_suffix(".npz"), **arrays)
        metrics = {"n_represented": list(rng.integers(1, n, size=k).astype(float)),
                   "dims_per_feature": list(rng.uniform(0.2, 1.0, size=k))}  # fmt: skip
        results.append(StoredResult(key=f"k{seed}", experiment="tms.train", params=params, seed=seed, metrics=metrics,
                                    sweep={"feature_probability": list(sweep)}, provenance={}, runtime_s=0.0,
                                    path=path))  # fmt: skip
    verdict = stats.error_verdict(claim.assertion, "synthetic")
    return ClaimRun(claim, "ci", verdict=verdict, seeds=list(range(seeds)), results={"main": results})


def test_tms_figures_on_a_tiny_real_run(filled):
    claim_set, store = filled
    from repro.judge import evaluate

    run = evaluate(claim_set.get("tiny.tms.pentagon"), "ci", store)
    assert run.verdict.outcome == "reproduced"
    for name, function in tms_plots.FIGURES.items():
        figure = function(run.claim, run)
        assert isinstance(figure, Figure), name
        assert figure_to_data_uri(figure) == figure_to_data_uri(function(run.claim, run))  # deterministic
    heatmaps = tms_plots.wtw_heatmaps(run.claim, run)
    assert sum(bool(ax.images) for ax in heatmaps.axes) == 4  # one W^T W panel per sparsity
    assert f"seed {run.seeds[0]}" in heatmaps.get_suptitle()


def test_tms_figures_choose_what_applies(tmp_path):
    wide = _synthetic_run(tmp_path / "a", n=8, m=3, sweep=[1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.001])
    assert tms_plots.feature_vectors_2d(wide.claim, wide) is None  # only for two hidden dimensions
    heatmaps = tms_plots.wtw_heatmaps(wide.claim, wide)
    panels = [ax for ax in heatmaps.axes if ax.images]
    assert len(panels) == tms_plots.MAX_PANELS
    assert panels[0].get_title() == "S = 0" and panels[-1].get_title() == "S = 0.999"
    assert tms_plots.dimensionality_vs_sparsity(wide.claim, wide) is not None

    short = _synthetic_run(tmp_path / "b", sweep=[1.0, 0.1])
    assert tms_plots.represented_vs_sparsity(short.claim, short) is None  # two points are no curve
    assert tms_plots.dimensionality_vs_sparsity(short.claim, short) is None
    assert tms_plots.feature_vectors_2d(short.claim, short) is not None

    untied = _synthetic_run(tmp_path / "c", untied=True)
    assert "W_2 W_1" in tms_plots.wtw_heatmaps(untied.claim, untied).get_suptitle()
    assert tms_plots.superposition_bars(untied.claim, untied) is not None

    empty = dataclasses.replace(untied, results={"main": []})
    assert all(function(empty.claim, empty) is None for function in tms_plots.FIGURES.values())


def test_a_skipped_scale_shows_its_reason_not_a_verdict(tmp_path):
    from .helpers import skipped_claim_text, write_claims

    claim_set = load_claims(write_claims(tmp_path / "claims", skipped_claim_text("its data exist nowhere offline")))
    html = _build(claim_set, Store(tmp_path / "store"), tmp_path / "report").read_text()
    document = json.loads((tmp_path / "report" / "results.json").read_text())
    assert document["counts"]["skipped"] == 1 and document["claims"][0]["status"] == "skipped"
    assert document["claims"][0]["as_expected"] is None  # skipped is neither a pass nor a failure
    section = html.split('id="claim-demo.mean-positive"')[1].split("</section>")[0]
    assert "skipped at this scale" in section and "its data exist nowhere offline" in section


def test_a_figure_shared_by_claims_is_embedded_once(tmp_path):
    from repro.report.figures import render_figures, results_only

    calls = []

    @results_only
    def shared(claim, run):
        calls.append(claim.id)
        figure = Figure()
        figure.subplots().plot([0, 1])
        return figure

    calibration = load_claims(CALIBRATION)
    store = Store(tmp_path / "store")
    first, second = (calibration.get(i) for i in ("calibration.greater.positive", "calibration.greater.negative"))
    run = run_claim(first, "ci", store=store, device="cpu")
    other = dataclasses.replace(run, claim=second)  # another claim on the very same stored results
    memo: dict = {}
    drawn = render_figures(first, run, {"shared": shared}, memo)
    linked = render_figures(second, other, {"shared": shared}, memo)
    again = render_figures(first, run, {"shared": shared}, memo)
    assert calls == [first.id]  # drawn once
    assert drawn[0].uri and linked[0].uri is None and linked[0].shown_in == first.id
    assert again[0].uri == drawn[0].uri  # the owner keeps its image


def test_changed_notes_are_shown(tmp_path):
    from .helpers import claim_text, write_claims

    notes = (
        "changed = [\n"
        '  { date = 2024-05-01, what = "threshold -1 -> 0", why = "the source states it above zero", '
        'before = "reproduced, estimate 1.0" },\n'
        '  { date = 2024-06-02, what = "seeds 8 -> 10 at ci", why = "more seeds for the power the plan asks", '
        'before = "reproduced <b>x</b>" },\n'
        "]\n[claim.scales.ci]"
    )
    claim_set = load_claims(write_claims(tmp_path / "claims", claim_text().replace("[claim.scales.ci]", notes)))
    store = Store(tmp_path / "store")
    run_claim(claim_set.claims[0], "ci", store=store, device="cpu")
    html = _build(claim_set, store, tmp_path / "report").read_text()
    section = html.split('id="claim-demo.mean-positive"')[1].split("</section>")[0]
    changes = section.split('class="changes"')[1].split("</div>")[0]
    assert "Changes to what this claim declares" in changes
    for text in ("2024-05-01", "threshold -1 -&gt; 0", "the source states it above zero", "reproduced, estimate 1.0",
                 "2024-06-02", "reproduced &lt;b&gt;x&lt;/b&gt;"):  # fmt: skip
        assert text in changes
    assert "p (raw)" in section and "p (Holm)" in section and "demo.test (1 test)" in section
    row = _rows(html)["demo.mean-positive"][1]
    assert "Changed 2×, last 2024-06-02" in row[2]
    document = json.loads((tmp_path / "report" / "results.json").read_text())
    assert [n["date"] for n in document["claims"][0]["changed"]] == ["2024-05-01", "2024-06-02"]

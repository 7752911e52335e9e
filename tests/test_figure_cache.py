"""repro.report.cache and repro.report.encode: figures drawn once per distinct input, kept in the store, compact."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from xml.etree import ElementTree

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from repro import registry
from repro.judge import evaluate
from repro.load import load_claims
from repro.report import build_report, cache
from repro.report.cache import FigureCache, draws_from, figure_inputs, results_only
from repro.report.encode import RC, _path_data, compact_svg, figure_svg, svg_data_uri
from repro.runner import run_claim
from repro.store import Store

from .helpers import claim_text, write_claims

ROOT = Path(__file__).resolve().parents[1]
CALLS: list[str] = []


def _plot(values, title: str = "") -> Figure:
    figure = Figure(figsize=(3, 2))
    figure.subplots().plot(values, marker="o")
    figure.suptitle(title)
    return figure


@results_only
def shared(claim, run):
    CALLS.append(f"shared {claim.id}")
    return _plot([r.metrics["value"] for r in run.results["main"]])


@draws_from("assertion")
def with_threshold(claim, run):
    CALLS.append(f"threshold {claim.id}")
    figure = _plot([r.metrics["value"] for r in run.results["main"]])
    figure.axes[0].axhline(claim.assertion.threshold)
    return figure


def per_claim(claim, run):  # reads the whole claim: its statement is the title
    CALLS.append(f"per-claim {claim.id}")
    return _plot([r.metrics["value"] for r in run.results["main"]], claim.statement)


def nothing(claim, run):
    CALLS.append(f"nothing {claim.id}")
    return None


def broken(claim, run):
    CALLS.append(f"broken {claim.id}")
    raise RuntimeError("no figure today")


FIGURES = {"shared": shared, "threshold": with_threshold, "per claim": per_claim, "nothing": nothing}


def _claims(tmp_path: Path):
    """Two claims on the very same results (another id and statement), and a third on other results."""
    a = claim_text().replace("demo.mean-positive", "demo.a")
    b = a.replace("demo.a", "demo.b").replace("have a mean above 0", "have a mean above zero")
    c = claim_text(mean=2.0).replace("demo.mean-positive", "demo.c")
    return load_claims(write_claims(tmp_path / "claims", a + b + c))


@pytest.fixture
def filled(tmp_path, monkeypatch):
    claim_set = _claims(tmp_path)
    store = Store(tmp_path / "store")
    for claim in claim_set:
        run_claim(claim, "ci", store=store, device="cpu")
    calibration = registry.get("calibration.normal")
    monkeypatch.setitem(registry._REGISTRY, calibration.name, dataclasses.replace(calibration, figures=FIGURES))
    CALLS.clear()
    return claim_set, store


def _build(claim_set, store, out: Path) -> bytes:
    return build_report(claim_set, store, "ci", out).read_bytes()


def _entries(store: Store) -> list[Path]:
    return sorted(p for p in (store.root / "figures").rglob("*") if p.is_file())


def test_a_second_build_draws_nothing_and_writes_the_same_page(filled, tmp_path):
    claim_set, store = filled
    cold = _build(claim_set, store, tmp_path / "cold")
    # drawn once per distinct input: demo.b shares demo.a's results (and threshold), so only its own figure is drawn
    assert sorted(CALLS) == sorted([
        "shared demo.a", "threshold demo.a", "per-claim demo.a", "nothing demo.a",
        "per-claim demo.b", "nothing demo.b",
        "shared demo.c", "threshold demo.c", "per-claim demo.c", "nothing demo.c",
    ])  # fmt: skip
    entries = _entries(store)
    assert {p.suffix for p in entries} == {".svg", ".none"}
    assert not [p for p in entries if p.name.startswith(".tmp-")]
    CALLS.clear()
    warm = _build(claim_set, store, tmp_path / "warm")
    assert CALLS == []  # every figure, and every "nothing to draw", came from the store
    assert warm == cold and _entries(store) == entries
    html = warm.decode()
    assert 'The same figure is shown in the section of <a href="#claim-demo.a">demo.a</a>.' in html


def test_the_page_embeds_each_image_once(filled, tmp_path):
    claim_set, store = filled
    html = _build(claim_set, store, tmp_path / "out").decode()
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == len(set(images))
    section = html.split('id="claim-demo.b"')[1].split("</section>")[0]
    assert section.count("<img") == 1  # its own title; the same values, threshold and estimate are demo.a's
    assert section.count('class="figure-ref"') == 3  # per-seed values, shared and threshold


def test_a_change_to_the_results_it_reads_redraws(filled, tmp_path):
    claim_set, store = filled
    cold = _build(claim_set, store, tmp_path / "cold")
    run = evaluate(claim_set.get("demo.c"), "ci", store)
    result = run.results["main"][0]
    record = json.loads(result.path.read_text())
    record["provenance"]["date"] = "2030-01-01T00:00:00+00:00"  # computed again, at another time
    record["metrics"]["value"] = 9.0
    result.path.write_text(json.dumps(record))
    CALLS.clear()
    again = _build(claim_set, store, tmp_path / "again")
    # and the claims that read the whole claim's verdict: Holm's correction in the family moved
    assert {"shared demo.c", "threshold demo.c", "per-claim demo.c"} <= set(CALLS)
    assert not {"shared demo.a", "threshold demo.a"} & set(CALLS)
    assert again != cold


def test_only_the_claim_fields_a_figure_reads_key_it(filled, tmp_path):
    claim_set, store = filled
    _build(claim_set, store, tmp_path / "cold")
    a = claim_set.get("demo.a")
    reworded = a.model_copy(update={"statement": "Draws with mean 1 have a positive mean"})
    CALLS.clear()
    _build(dataclasses.replace(claim_set, claims=(reworded,)), store, tmp_path / "reworded")
    assert CALLS == ["per-claim demo.a", "nothing demo.a"]  # only these read the statement
    stricter = a.model_copy(update={"assertion": a.assertion.model_copy(update={"threshold": 0.25})})
    CALLS.clear()
    _build(dataclasses.replace(claim_set, claims=(stricter,)), store, tmp_path / "stricter")
    assert CALLS == ["threshold demo.a", "per-claim demo.a", "nothing demo.a"]


def test_keys(filled):
    claim_set, store = filled
    figures = FigureCache(store)
    run_a, run_c = (evaluate(claim_set.get(i), "ci", store) for i in ("demo.a", "demo.c"))
    run_b = dataclasses.replace(run_a, claim=claim_set.get("demo.b"))

    def key(function, run):
        return figures.key(function, figure_inputs(function, run.claim, run))

    assert key(shared, run_a) == key(shared, run_b) != key(shared, run_c)  # results alone
    assert key(with_threshold, run_a) == key(with_threshold, run_b)  # same threshold
    assert key(per_claim, run_a) != key(per_claim, run_b)  # the whole claim
    assert key(shared, run_a) != key(with_threshold, run_a)  # the function itself
    assert re.fullmatch(r"[0-9a-f]{64}", key(shared, run_a))
    assert key(lambda c, r: None, run_a) is None  # no source of its own to key it: drawn every time

    def closure(claim, run):
        return shared(claim, run)

    assert key(closure, run_a) is None


def test_a_change_to_the_figure_code_redraws(filled, tmp_path, monkeypatch):
    claim_set, store = filled
    name = "figure_module_under_test"
    source = textwrap.dedent("""
        from matplotlib.figure import Figure
        from repro.report.figures import results_only

        CALLS = []
        SLOPE = 1.0


        @results_only
        def drawn(claim, run):
            CALLS.append(claim.id)
            figure = Figure(figsize=(2, 2))
            figure.subplots().plot([0, 1], [0, SLOPE])
            return figure
    """)
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    calibration = registry.get("calibration.normal")
    try:
        module = importlib.import_module(name)
        monkeypatch.setitem(
            registry._REGISTRY, calibration.name, dataclasses.replace(calibration, figures={"drawn": module.drawn})
        )
        first = _build(claim_set, store, tmp_path / "first")
        _build(claim_set, store, tmp_path / "second")
        assert module.CALLS == ["demo.a", "demo.c"]  # drawn once per distinct results, then kept

        (tmp_path / f"{name}.py").write_text(source.replace("SLOPE = 1.0", "SLOPE = 250.0"))
        module = importlib.reload(module)
        cache._module_digest.cache_clear()  # a process computes each module's digest once
        monkeypatch.setitem(
            registry._REGISTRY, calibration.name, dataclasses.replace(calibration, figures={"drawn": module.drawn})
        )
        changed = _build(claim_set, store, tmp_path / "changed")
        assert module.CALLS == ["demo.a", "demo.c"] and changed != first
    finally:
        sys.modules.pop(name, None)
        cache._module_digest.cache_clear()


def test_a_failed_figure_is_not_kept_and_an_unkeyable_one_is_drawn_every_time(filled, tmp_path, monkeypatch):
    claim_set, store = filled
    drawn = []
    calibration = registry.get("calibration.normal")
    figures = {"broken": broken, "local": lambda claim, run: drawn.append(claim.id)}  # returns None, unkeyed
    monkeypatch.setitem(registry._REGISTRY, calibration.name, dataclasses.replace(calibration, figures=figures))
    one = claim_set.get("demo.c")
    subset = dataclasses.replace(claim_set, claims=(one,))
    html = _build(subset, store, tmp_path / "first").decode()
    assert "Figure “broken” could not be drawn: RuntimeError: no figure today" in html
    kept = _entries(store)
    assert len(kept) == 1  # the per-seed values only
    _build(subset, store, tmp_path / "second")
    assert CALLS == ["broken demo.c", "broken demo.c"] and drawn == ["demo.c", "demo.c"]
    assert _entries(store) == kept


def test_an_interrupted_write_leaves_no_partial_figure(filled, tmp_path, monkeypatch):
    claim_set, store = filled

    def interrupted(fd):
        raise KeyboardInterrupt  # as Ctrl-C between writing the temporary file and moving it into place

    with monkeypatch.context() as patch:
        patch.setattr("repro.store.os.fsync", interrupted)
        with pytest.raises(KeyboardInterrupt):
            _build(claim_set, store, tmp_path / "interrupted")
    assert _entries(store) == []  # not even the temporary file
    _build(claim_set, store, tmp_path / "after")
    assert _entries(store) and not [p for p in _entries(store) if p.name.startswith(".tmp-")]


def test_a_store_that_cannot_keep_figures_still_gets_its_page(filled, tmp_path, monkeypatch):
    claim_set, store = filled

    def full(self, target, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Store, "write_atomic", full)
    html = _build(claim_set, store, tmp_path / "out").decode()
    assert "could not be drawn" not in html and html.count("<img") >= 6
    assert _entries(store) == []


KILLED = """
import os, signal, sys
from pathlib import Path
from repro.load import load_claims
from repro.report import build_report
from repro.store import Store

os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # killed before the first figure is in place
build_report(load_claims(Path(sys.argv[1])), Store(Path(sys.argv[2])), "ci", Path(sys.argv[3]))
"""


def test_a_killed_report_leaves_only_a_temporary_file_that_is_cleared_later(tmp_path):
    claims = write_claims(tmp_path / "claims", claim_text())
    store = Store(tmp_path / "store")
    for claim in load_claims(claims):
        run_claim(claim, "ci", store=store, device="cpu")
    done = subprocess.run([sys.executable, "-c", KILLED, str(claims), str(store.root), str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, timeout=300)  # fmt: skip
    assert done.returncode == -9, done.stderr.decode()
    left = _entries(store)
    assert len(left) == 1 and left[0].name.startswith(".tmp-") and left[0].suffix == ".partial"
    html = _build(load_claims(claims), store, tmp_path / "out").decode()  # a reader never takes it for a figure
    assert html.count("<img") == 1
    past = time.time() - 7200
    os.utime(left[0], (past, past))
    assert store.clear_stale_temporaries() == 1
    assert all(p.suffix == ".svg" for p in _entries(store))


# -- the encoding -----------------------------------------------------------------------------------------


def _mixed_figure() -> Figure:
    rng = np.random.default_rng(0)
    figure = Figure(figsize=(5, 3))
    left, right = figure.subplots(1, 2)
    left.scatter(rng.normal(size=40), rng.normal(size=40), s=8, alpha=0.5, label="dots")
    left.set_yscale("log")
    left.set_title(r"$W^{\top} W$ & <b>")
    left.legend()
    right.imshow(rng.integers(0, 5, size=(6, 7)), cmap="viridis", interpolation="nearest")  # resampled: a large PNG
    right.set_xlabel("µ − ΔF")
    figure.suptitle("a 'quoted' \"title\"")
    return figure


def _raw_svg(figure: Figure) -> str:
    """Matplotlib's own SVG, under the report's style."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue().decode()


def test_compact_svg_is_well_formed_and_keeps_every_label():
    figure = _mixed_figure()
    raw = _raw_svg(figure)
    compact = figure_svg(figure)
    assert compact == compact_svg(raw) and len(compact) < len(raw) / 2

    def labels(svg: str) -> list[str]:
        root = ElementTree.fromstring(svg.encode())
        texts = root.iter("{http://www.w3.org/2000/svg}text")
        return sorted("".join("".join(t.itertext()).split()) for t in texts)  # indentation aside

    assert labels(compact) == labels(raw)
    ids = set(re.findall(r" id='([^']+)'", compact))
    assert set(re.findall(r"(?:href='|url\()#([^')]+)", compact)) <= ids  # every reference resolves
    assert "<!--" not in compact and "metadata" not in compact and "\n" not in compact


def test_embedded_images_become_palette_pngs_without_loss():
    raw = _raw_svg(_mixed_figure())

    def pixels(svg: str) -> list[tuple[str, np.ndarray]]:
        out = []
        for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=\s]+)", svg):
            image = Image.open(io.BytesIO(base64.b64decode("".join(data.split()))))
            out.append((image.mode, np.asarray(image.convert("RGBA"))))
        return out

    before, after = pixels(raw), pixels(compact_svg(raw))
    assert len(before) == len(after) == 1
    assert after[0][0] == "P" and np.array_equal(before[0][1], after[0][1])


def test_data_uri_encodes_only_what_an_attribute_needs():
    svg = "<svg a='1'><text>50% #1 & \"q\" µ</text></svg>"
    uri = svg_data_uri(svg)
    assert uri == "data:image/svg+xml,<svg a='1'><text>50%25 %231 %26 %22q%22 %C2%B5</text></svg>"
    from urllib.parse import unquote

    assert unquote(uri.split(",", 1)[1]) == svg


@pytest.mark.parametrize(
    ("d", "short"),
    [
        ("M 57.6 180 L 309.6 180 L 309.6 28.8 L 57.6 28.8 z ", "M57.6 180H309.6V28.8H57.6z"),
        ("M 1 2 L 3 4 L 5 -6 L 5 7 M 1 1 L 2 2 z", "M1 2 3 4 5-6V7M1 1 2 2z"),
        ("M 0 1 C 1 1 2 0 2 -1 C 2 -2 1 -3 0 -3 z", "M0 1C1 1 2 0 2-1 2-2 1-3 0-3z"),
        ("M 0 0 L 1", "M 0 0 L 1"),  # not matplotlib's form: left as it is
    ],
)
def test_path_data(d, short):
    assert _path_data(d) == short

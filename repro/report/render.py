"""Render ``DIR/index.html``, ``DIR/results.json`` and the verdict baseline ``DIR/verdicts.json`` from the store.

The report never runs an experiment: each claim is judged by :func:`repro.judge.judge_all`, which
reads only stored results, and a claim with nothing stored is shown as "not run". Holm's
correction runs within each claim's family (controls are judged alone), and the adjusted p decides
the verdict; the page shows the raw p beside it. The baseline is written by :mod:`repro.baseline`.
The only thing a report writes into the store is its drawn figures (:mod:`repro.report.cache`), so
that the next report on the same results draws none of them.

Determinism: the page holds no build time and no absolute path; every number is formatted here
(not in the templates) with fixed precision; figures are compact SVG with fixed ids (see
:mod:`repro.report.figures`), the same whether drawn now or read from the store. Rebuilding from
the same store gives byte-identical files.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from repro import baseline, fragility, preregistration, registry, stats
from repro._version import __version__
from repro.baseline import status_of
from repro.claim import Claim, Difference, Equivalent, Greater, Less, Proportion, Source, Trend
from repro.errors import BaselineError
from repro.fragility import Margin
from repro.judge import ClaimRun, judge_all
from repro.load import ClaimSet, resolve_params
from repro.report.cache import FigureCache
from repro.report.figures import RenderedFigure, observed_figure, render_figures, sequence_figure
from repro.settings import Departure
from repro.stats_verdict import level_text
from repro.store import Store, StoredResult

__all__ = ["STATUSES", "build_report", "status_of"]

#: Display statuses, in the order the summary lists them; "not_run" is an error verdict whose
#: results are missing from the store, shown grey rather than as a failure.
STATUSES: dict[str, str] = {
    "reproduced": "reproduced",
    "not_reproduced": "not reproduced",
    "inconclusive": "inconclusive",
    "error": "error",
    "not_run": "not run",
    "skipped": "skipped at this scale",
}
RESULTS_FORMAT = 1
MULTIPLE_COMPARISONS = (
    "Holm's step-down correction within each claim's family (the claim's 'family', default its "
    "claims file); controls are judged alone; a member without a p counts as p = 1. The adjusted p decides the "
    "verdict; 'p_adjusted' is it (the raw p for a claim judged alone), verdict.p_value the raw p."
)


# -- formatting: every number on the page goes through these ---------------------------------------


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}"


def _duration(seconds: float) -> str:
    if seconds < 0.01:
        return "< 0.01 s"
    if seconds >= 600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _json_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def describe_assertion(claim: Claim) -> str:
    """The claim's test in words, e.g. "n_represented > 5 (t test on the mean)"."""
    a, metric = claim.assertion, claim.metric
    if claim.at is not None:
        metric = f"{metric} at {claim.at:g}"
    if isinstance(a, (Greater, Less)):
        location: dict[str | None, str] = {
            "t": "t test on the mean",
            "wilcoxon": "signed-rank test on the median",
            "sign": "sign test",
        }
        return f"{metric} {'>' if isinstance(a, Greater) else '<'} {a.threshold:g} ({location[a.method]})"
    if isinstance(a, Proportion):
        pred = a.predicate
        return f"more than {a.min_fraction:g} of observations have {metric} {pred.op} {pred.value:g}"
    if isinstance(a, Trend):
        return f"{metric} {a.direction} along the sweep (mean Spearman rho beyond {a.min_rho:g})"
    if isinstance(a, Difference):
        side = ">" if a.direction == "greater" else "<"
        kind = "paired" if a.paired else "unpaired"
        return f"{metric}[{a.a}] − {metric}[{a.b}] {side} {a.margin:g} ({kind}, {a.method})"
    if isinstance(a, Equivalent):
        return f"|{metric}[{a.a}] − {metric}[{a.b}]| < {a.margin:g} ({'paired' if a.paired else 'unpaired'} TOST)"
    return a.test  # pragma: no cover - the union above is exhaustive


# -- one claim, ready for the template ---------------------------------------------------------------


@dataclass
class Entry:
    """One claim with every value the page shows already formatted as text."""

    claim: Claim
    file: str
    source: Source | None
    status: str
    expected: str
    as_expected: bool | None  # None: not judged (not run)
    verdict: stats.Verdict
    family_name: str | None  # None: judged alone (a control), or not judged at this scale (skipped)
    family_size: int
    seeds: list[int]
    n_stored: int
    n_wanted: int
    runtime_s: float
    assertion: str
    margin: Margin | None = None
    metrics_digest: str | None = None
    setting: tuple[str, str] | None = None  # (name, title) of the source's setting the claim runs in
    departures: list[Departure] = field(default_factory=list)  # from that setting, at this scale
    setting_departures: dict[str, str] = field(default_factory=dict)  # what the experiment cannot express
    full_expect: str | None = None  # measured / contradicted / predicted: the full-scale expectation
    params: list[tuple[str, bool, list[tuple[str, str]]]] = field(default_factory=list)
    provenance: list[tuple[str, str]] = field(default_factory=list)
    figures: list[RenderedFigure] = field(default_factory=list)

    @property
    def status_label(self) -> str:
        return STATUSES[self.status]

    @property
    def substitutes(self) -> list[Departure]:
        """Departures that swap the source's data or model: a verdict on them is about the stand-in."""
        return [d for d in self.departures if d.substitute]

    @property
    def full_expect_label(self) -> str | None:
        """'full scale: not reproduced (predicted)' where the full-scale expectation is not measured."""
        if self.full_expect is None:
            return None
        status = "contradicted by the full-scale run" if self.full_expect == "contradicted" else self.full_expect
        return f"full scale: expected {self.claim.expected('full').replace('_', ' ')} ({status})"

    @property
    def source_url(self) -> str | None:
        """Only web addresses become links (a claims file could hold a javascript: URL)."""
        url = self.source.url if self.source else ""
        return url if url.startswith(("https://", "http://")) else None

    @property
    def estimate(self) -> str:
        return _num(self.verdict.estimate)

    @property
    def ci(self) -> str:
        """The interval at the raw level, its ends bracketed as it holds them: [a, b], [a, b), (a, b]."""
        return self.verdict.interval() or "—"

    @property
    def ci_about(self) -> str:
        v = self.verdict
        return "" if v.ci_low is None else f"{level_text(v.ci_level)} {v.ci_method}"

    @property
    def ci_adjusted(self) -> str | None:
        """The interval at the Holm level that decides, within a family; None when judged alone."""
        return self.verdict.interval(adjusted=True)

    @property
    def ci_adjusted_about(self) -> str:
        v = self.verdict
        if v.ci_level_adjusted is None:
            return ""
        return f"{level_text(v.ci_level_adjusted)} {v.ci_method_adjusted or v.ci_method}"

    @property
    def threshold(self) -> str:
        return _num(self.verdict.threshold)

    @property
    def p(self) -> str:
        return _p(self.verdict.p_value)

    @property
    def p_opposite(self) -> str:
        return _p(self.verdict.p_opposite)

    def _deciding(self, adjusted: float | None, raw: float | None) -> float | None:
        return adjusted if adjusted is not None or self.family_name is not None else raw

    @property
    def p_deciding(self) -> float | None:
        """The p that decides: Holm-adjusted within the family, or the raw p of a claim judged alone."""
        return self._deciding(self.verdict.p_adjusted, self.verdict.p_value)

    @property
    def p_adjusted(self) -> str:
        return _p(self.p_deciding)

    @property
    def p_opposite_adjusted(self) -> str:
        return _p(self._deciding(self.verdict.p_opposite_adjusted, self.verdict.p_opposite))

    @property
    def family(self) -> str:
        """Where Holm's correction runs, e.g. "tms (12 tests)"; "alone" for a control; "—" when skipped."""
        if self.status == "skipped":
            return "—"
        if self.family_name is None:
            return "alone (control)"
        return f"{self.family_name} ({self.family_size} test{'s' if self.family_size != 1 else ''})"

    @property
    def runtime(self) -> str:
        return _duration(self.runtime_s) if self.n_stored else "—"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.claim.id,
            "file": self.file,
            "source": self.claim.source,
            "statement": self.claim.statement,
            "experiment": self.claim.experiment,
            "metric": self.claim.metric,
            "at": self.claim.at,
            "status": self.status,
            "expect": self.expected,
            "as_expected": self.as_expected,
            "verdict": self.verdict.model_dump(mode="json"),
            "p_adjusted": self.p_deciding,
            "family": self.family_name,
            "family_size": self.family_size,
            "changed": [note.model_dump(mode="json") for note in self.claim.changed],
            "seeds": self.seeds,
            "results_stored": self.n_stored,
            "results_expected": self.n_wanted,
            "runtime_s": round(self.runtime_s, 3),
            "margin": None if self.margin is None else self.margin.to_json(),
            "metrics_digest": self.metrics_digest,
            "setting": None if self.setting is None else self.setting[0],
            "departures": [
                {
                    "field": d.field,
                    "source": d.source_value,
                    "ours": d.claim_value,
                    "why": d.why,
                    "substitute": d.substitute,
                }
                for d in self.departures
            ],  # fmt: skip
            "full_expect": self.full_expect,
            "adjudication": None
            if self.claim.adjudication is None
            else self.claim.adjudication.model_dump(mode="json"),
        }


def _provenance(results: Iterable[StoredResult]) -> list[tuple[str, str]]:
    """Distinct provenance values over a claim's stored results, as (label, text) rows."""
    values: dict[str, set[str]] = defaultdict(set)
    dates: list[str] = []
    calls: set[tuple[Any, ...]] = set()
    for result in results:
        p = result.provenance
        sha = p.get("git_sha")
        dirty = " (uncommitted changes)" if p.get("git_dirty") else ""
        values["git commit"].add(f"{sha}{dirty}" if sha else "unknown (not a git checkout)")
        source = p.get("experiment_origin")
        if isinstance(source, dict) and source.get("target"):
            dist = " ".join(str(source[k]) for k in ("distribution", "version") if source.get(k))
            values["experiment from"].add(
                f"{dist} ({source['target']})" if dist else f"{source['target']} ({source.get('how')})"
            )
        claims = p.get("claims")
        if isinstance(claims, dict) and claims.get("file"):
            csha = claims.get("git_sha")
            cdirty = " (uncommitted changes)" if claims.get("git_dirty") else ""
            values["claims file"].add(
                f"{claims['file']} at {csha}{cdirty}" if csha else f"{claims['file']} (not in a git repository)"
            )
        values["device"].add(str(p.get("device") or "unknown"))
        values["python"].add(str(p.get("python") or "unknown"))
        values["platform"].add(str(p.get("platform") or "unknown"))
        packages = p.get("packages") or {}
        values["packages"].add(", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v) or "unknown")
        if p.get("image_id"):
            values["image"].add(str(p["image_id"]))
        values["numerics"].add(_numerics_text(p.get("numerics")))
        values["warnings"].update(str(w) for w in p.get("warnings") or ())
        if p.get("date"):
            dates.append(str(p["date"]))
        calls.add((p.get("date"), tuple(p.get("seeds_in_call") or (result.seed,))))
    if not calls:
        return []
    order = ("git commit", "experiment from", "claims file", "packages", "python", "platform", "device", "numerics",
             "image", "warnings")  # fmt: skip
    rows = [(label, "; ".join(sorted(values[label]))) for label in order if values.get(label)]
    if dates:
        first, last = min(dates), max(dates)
        rows.append(("date", first if first == last else f"{first} to {last}"))
    rows.append(("experiment calls", str(len(calls))))
    return rows


def _numerics_text(info: Any) -> str:
    """A result's numerics in words: the pinned level and what each library dispatched to."""
    if not isinstance(info, dict):
        return "not recorded (computed before the numerics were pinned)"
    level = str(info.get("level", "unknown"))
    dispatch = info.get("dispatch") or {}
    parts = [f"torch {dispatch['torch']}"] if dispatch.get("torch") else []
    if "numpy_avx512" in dispatch:
        parts.append("numpy " + ("AVX-512" if dispatch["numpy_avx512"] else "up to AVX2"))
    if dispatch.get("openblas"):
        parts.append("OpenBLAS " + "/".join(map(str, dispatch["openblas"])))
    text = level if level != "native" else "native (not pinned: results may differ between CPUs)"
    if info.get("not_pinned"):
        text += f" ({info['not_pinned']})"
    return text + (f": {', '.join(parts)}" if parts else "")


def _params(claim: Claim, run: ClaimRun) -> list[tuple[str, bool, list[tuple[str, str]]]]:
    """(arm, as run?, sorted (name, value) rows) per arm: stored params, else the declared ones."""
    out = []
    for arm in claim.arm_names():
        stored = run.results.get(arm) or []
        as_run = bool(stored)
        params = stored[0].params if as_run else resolve_params(claim, run.scale, arm).model_dump(mode="json")
        out.append((arm, as_run, [(k, _json_value(params[k])) for k in sorted(params)]))
    return out


def _entry(
    run: ClaimRun, claim_set: ClaimSet, memo: dict, cache: FigureCache, margin: Margin | None = None,
    full: baseline.Baseline | None = None,
) -> Entry:  # fmt: skip
    claim = run.claim
    status = status_of(run)
    setting = claim_set.setting_of(claim)
    stored = [r for arm in run.results.values() for r in arm]
    entry = Entry(
        claim=claim,
        file=claim_set.files[claim.id].name if claim.id in claim_set.files else "",
        source=claim_set.sources.get(claim.source),
        status=status,
        expected=run.expected,
        as_expected=None if status in ("not_run", "skipped") else run.as_expected,
        verdict=run.verdict,
        family_name=claim_set.family(claim),
        family_size=claim_set.family_size(claim, run.scale),
        seeds=list(run.seeds),
        n_stored=len(stored),
        n_wanted=len(run.seeds) * len(claim.arm_names()),
        runtime_s=run.runtime_s,
        assertion=describe_assertion(claim),
        margin=margin,
        metrics_digest=run.metrics_digest,
        setting=None if setting is None else (setting[0], setting[1].title),
        departures=[d for d in claim_set.departures(claim) if d.scale == run.scale],
        setting_departures={} if setting is None else dict(setting[1].departures),
        full_expect=baseline.full_expect_of(run, full),
        params=_params(claim, run),
        provenance=_provenance(stored),
    )
    if stored:
        functions = {"per-seed values": observed_figure, **registry.get(claim.experiment).figures}
        if claim.sequential is not None:
            functions = {"confidence sequence": sequence_figure, **functions}
        entry.figures = render_figures(claim, run, functions, memo, cache)
    return entry


# -- the page ------------------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("repro.report", "templates"),
        autoescape=True,  # every template here is HTML, whatever its file name ends with
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["breakable"] = _breakable
    env.filters["data_uri"] = _data_uri
    return env


def _data_uri(uri: str) -> markupsafe.Markup:
    """A figure's URI as it is: :mod:`repro.report.encode` percent-encodes every ``"`` and ``&`` in it,
    so it cannot end its double-quoted attribute or start a character reference (and < > ' may stay)."""
    if not uri.startswith("data:") or '"' in uri or "&" in uri:
        raise ValueError("a figure's URI must be a data: URI without \" or &")
    return markupsafe.Markup(uri)


def _breakable(text: str) -> markupsafe.Markup:
    """Dotted names may wrap after a dot, and nowhere else (long claim ids and test names)."""
    return markupsafe.Markup(".<wbr>").join(markupsafe.escape(part) for part in str(text).split("."))


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _results_json(entries: list[Entry], scale: str, counts: dict[str, int]) -> str:
    claims = [e.to_json() for e in entries]
    document = {
        "format": RESULTS_FORMAT,
        "generator": f"repro {__version__}",
        "scale": scale,
        "counts": counts,
        "as_expected": sum(1 for e in entries if e.as_expected),
        "multiple_comparisons": MULTIPLE_COMPARISONS,
        "claims": claims,
    }
    return json.dumps(document, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def build_report(claim_set: ClaimSet, store: Store, scale: str, out_dir: Path) -> Path:
    """Judge every claim from ``store``; write ``out_dir/index.html``, ``results.json`` and ``verdicts.json``.

    Runs no experiment. Returns the path of index.html.
    """
    out_dir = Path(out_dir)
    runs = judge_all(list(claim_set), scale, store, claim_set)
    store.clear_stale_temporaries()  # of a report or run killed while writing
    cache = FigureCache(store)  # figures drawn by earlier reports, by what they were drawn from
    memo: dict = {}  # this page's images, each embedded once, and the figures claims share
    margins = fragility.margins(runs)
    full = baseline.read_full() if scale != "full" else None
    entries = [_entry(run, claim_set, memo, cache, margins[run.claim.id], full) for run in runs]
    counts = {status: sum(1 for e in entries if e.status == status) for status in STATUSES}

    env = _environment()
    style = env.get_template("_style.css.j2").render()
    script = env.get_template("_script.js.j2").render()
    html = env.get_template("index.html.j2").render(
        scale=scale,
        version=__version__,
        entries=entries,
        counts=[(status, STATUSES[status], counts[status]) for status in STATUSES],
        n_as_expected=sum(1 for e in entries if e.as_expected),
        n_judged=sum(1 for e in entries if e.as_expected is not None),
        sources=sorted({e.claim.source for e in entries}),
        files=sorted({e.file for e in entries if e.file}),
        statuses=STATUSES,
        style=markupsafe.Markup(style),  # our own static text, hashed into the CSP below
        script=markupsafe.Markup(script),
        csp=f"default-src 'none'; img-src data:; style-src {_csp_hash(style)}; script-src {_csp_hash(script)}; "
        "base-uri 'none'; form-action 'none'",
    )
    rows = baseline.rows(runs, margins, full)
    _refuse_unregistered_changes(out_dir / "verdicts.json", rows, runs, scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    index.write_bytes(html.encode("utf-8"))
    (out_dir / "results.json").write_bytes(_results_json(entries, scale, counts).encode("utf-8"))
    baseline.write(out_dir / "verdicts.json", rows, scale)
    return index


def _refuse_unregistered_changes(
    path: Path, rows: Sequence[baseline.Row], runs: Sequence[ClaimRun], scale: str
) -> None:
    """Refuse to overwrite a committed baseline with rows whose declaration moved without a change note
    that gives each moved field's before and after, or that lost a note the baseline has seen
    (:func:`repro.preregistration.problems`); nothing is written then."""
    if not path.is_file():
        return
    try:
        committed = baseline.read(path)
    except BaselineError:
        return  # an unreadable or foreign file: the write replaces it, as before
    if committed.scale != scale:
        return
    claims = {run.claim.id: run.claim for run in runs}
    problems = [
        problem
        for row in rows
        if (old := committed.rows.get(row.id)) is not None
        for problem in preregistration.problems(claims[row.id], old.declared, old.notes)
    ]
    if problems:
        raise BaselineError(f"{path}: refusing to overwrite the baseline: " + "; ".join(problems))

"""What the ``repro`` commands print: rich tables and JSON documents built from claims, verdicts and baselines.

Each function here takes loaded claims, judged runs or baseline rows and returns a :class:`rich.table.Table`
or plain data; none reads options, prints or exits. :mod:`repro.cli` parses the options, loads the
claims, reports errors with the exit codes and prints what these return. Kept apart so that the
commands read as what they do, and the formatting of every table sits in one place.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from repro import baseline, fragility, registry
from repro.claim import Claim, Source
from repro.judge import ClaimRun, replicate_seeds
from repro.load import ClaimSet, resolve_params
from repro.stats_verdict import level_text
from repro.store import Store

__all__ = ["claims_table", "diff_table", "plan_table", "resolved_claim", "schema_document", "verdict_table"]

_COLOURS = {"reproduced": "green", "not_reproduced": "red", "inconclusive": "yellow", "error": "magenta"}


def claims_table(claim_set: ClaimSet, full: baseline.Baseline | None = None) -> Table:
    """`repro list`: every claim's id, source, statement, expected outcome and seeds.

    A full-scale expectation that no full-scale run of the claim as declared now has measured (``full``,
    the committed full-scale baseline) is marked "predicted".
    """
    table = Table(show_lines=False)
    table.add_column("id", no_wrap=True)
    for column in ("source", "statement", "expect", "seeds ci/full"):
        table.add_column(column, overflow="fold")
    for claim in claim_set:
        if claim.skipped("full"):
            full_expect = "skipped (full)"
        else:
            full_expect = f"{claim.expected('full')} (full, {baseline.full_status(claim, full)})"
        ci_expect = "skipped" if claim.skipped("ci") else claim.expected("ci")
        expect = f"{ci_expect} (ci) / {full_expect}"
        seeds = f"{claim.n_seeds('ci')}/{claim.n_seeds('full')}"
        table.add_row(*(escape(cell) for cell in (claim.id, claim.source, claim.statement, expect, seeds)))
    return table


def resolved_claim(claim_set: ClaimSet, claim: Claim) -> dict[str, Any]:
    """`repro show`: one claim resolved: params at each scale, seeds, assertion, source."""
    source = claim_set.sources[claim.source]
    resolved: dict[str, Any] = {
        "id": claim.id,
        "file": str(claim_set.files[claim.id]),
        "statement": claim.statement,
        "source": {"key": claim.source, **source.model_dump(exclude_none=True)},
        "evidence": claim.evidence,
        "experiment": claim.experiment,
        "metric": claim.metric,
        "at": claim.at,
        "assertion": claim.assertion.model_dump(),
        "expect": claim.expect,
        "finding": claim.finding,
        "family": claim_set.family(claim),
        "control": claim.control,
        "smallest_effect": claim.smallest_effect,
        "changed": [change.model_dump(mode="json") for change in claim.changed],
        "scales": {},
    }
    for scale in ("ci", "full"):
        resolved["scales"][scale] = {
            "expect": None if claim.skipped(scale) else claim.expected(scale),
            "skip": claim.skipped(scale),
            "family_size": claim_set.family_size(claim, scale),
            "seeds": replicate_seeds(claim.seed, claim.n_seeds(scale)),
            "params": {arm: resolve_params(claim, scale, arm).model_dump(mode="json") for arm in claim.arm_names()},
        }
    return resolved


def schema_document() -> dict[str, Any]:
    """`repro schema`: the JSON Schema of a claims file (claims, sources, and each experiment's params).

    ``x-experiments`` (an annotation JSON Schema validators ignore) says what a claim may name for each
    experiment: its params (a reference into ``$defs``), its metrics with their kind and the test a claim
    that names no ``method`` gets (:func:`repro.registry.default_method`), and its sweep axis.
    """
    from repro.experiments.sweeps import AXES

    claim_schema = Claim.model_json_schema()
    defs = claim_schema.pop("$defs", {})
    experiments: dict[str, Any] = {}
    for name in registry.names():
        experiment = registry.get(name)
        params = experiment.params.model_json_schema()
        defs.update(params.pop("$defs", {}))
        defs[f"params:{name}"] = params
        axis = experiment.sweep or AXES.get(name)
        metrics = {}
        for metric in experiment.metrics:
            kind = experiment.metric_kinds.get(metric)
            metrics[metric] = {
                "kind": kind,
                "default_method": None if kind is None else registry.default_method(kind),
                "default_method_unpaired": None if kind is None else registry.default_method(kind, paired=False),
                "per": None if axis is None else "sweep point" if metric in axis.per_point else "seed",
            }
        experiments[name] = {
            "description": experiment.description,
            "params": {"$ref": f"#/$defs/params:{name}"},
            "metrics": metrics,
            "sweep": None if axis is None else {"axis": axis.name, "points": axis.meaning, "set_by": list(axis.fields)},
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "repro claims file",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "claim": {"type": "array", "items": claim_schema},
            "source": {"type": "object", "additionalProperties": Source.model_json_schema()},
        },
        "$defs": defs,
        "x-experiments": experiments,
    }


def verdict_table(runs: list[ClaimRun], title: str) -> Table:
    """`repro run`: one row per claim: verdict, estimate [CI], threshold, p, Holm p, seeds, the decision
    margin (how many seeds decide the verdict: repro.fragility), time.

    Within a family the CI cell holds two intervals, labelled: the one at the raw level and the one at
    the Holm level that decides (which excludes the threshold exactly when the Holm p rejects)."""
    adjusted = [r.verdict.p_adjusted for r in runs]
    margins = fragility.margins(runs)
    table = Table(title=title)
    table.add_column("claim", no_wrap=True)
    for column in ("verdict", "estimate [CI]", "threshold", "p", "p (Holm)", "seeds", "margin", "time"):
        table.add_column(column, overflow="fold")
    for run, p_adj in zip(runs, adjusted, strict=True):
        v = run.verdict
        verdict = f"[{_COLOURS[v.outcome]}]{v.outcome}[/]" if not run.skipped else "[dim]skipped[/]"
        if not run.as_expected:
            verdict += f" [bold red]✗ expected {run.expected}[/]"
        estimate = "" if v.estimate is None else f"{v.estimate:.4g}"
        raw, held = v.interval(digits=3), v.interval(adjusted=True, digits=3)
        if raw is not None:
            estimate += f" {escape(raw)}"
        if held is not None and v.ci_level_adjusted is not None:
            estimate += (
                f" raw {level_text(v.ci_level)}; {escape(held)} at the Holm level {level_text(v.ci_level_adjusted)}"
            )
        table.add_row(
            run.claim.id,
            verdict,
            estimate,
            "" if v.threshold is None else f"{v.threshold:g}",
            "" if v.p_value is None else f"{v.p_value:.2g}",
            "" if p_adj is None else f"{p_adj:.2g}",
            str(len(run.seeds)),
            _margin_cell(margins.get(run.claim.id)),
            f"{run.wall_s:.1f}s",
        )
    return table


def _margin_cell(margin: fragility.Margin | None) -> str:
    if margin is None:
        return ""
    if margin.fragile:
        return "[bold yellow]fragile: one seed decides[/]"
    return f"robust ({'>' + str(fragility.DEPTH) if margin.decides is None else margin.decides} seeds)"


def _cells(row: baseline.Row | None, with_ci: bool) -> tuple[str, str, str]:
    """(verdict, estimate [CI], p / alpha) of one side of a diff."""
    if row is None:
        return "[dim]absent[/]", "", ""
    estimate = "" if row.estimate is None else f"{row.estimate:.4g}"
    if with_ci and row.ci_low is not None and row.ci_high is not None:
        estimate += f" [{row.ci_low:.3g}, {row.ci_high:.3g}]"
    p = row.p_deciding
    return escape(row.verdict), escape(estimate), "" if p is None else f"{p:.2g} / {row.alpha:g}"


def diff_table(before: baseline.Baseline, after: baseline.Baseline, deltas: list[baseline.Delta]) -> Table:
    """`repro diff`: one row per claim that moved, old beside new."""
    table = Table(title=escape(f"{before.origin} -> {after.origin} ({before.scale} scale)"))
    table.add_column("claim", no_wrap=True)
    for column in ("what moved", "verdict old", "verdict new", "estimate [CI] old", "estimate new", "p/alpha old",
                   "p/alpha new"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for delta in deltas:
        (v_old, e_old, p_old), (v_new, e_new, p_new) = _cells(delta.old, True), _cells(delta.new, False)
        what = escape("; ".join(delta.reasons))
        table.add_row(escape(delta.id), f"[bold red]{what}[/]" if delta.moved else what, v_old, v_new, e_old, e_new,
                      p_old, p_new)  # fmt: skip
    return table


def plan_table(claim_set: ClaimSet, chosen: list[Claim], scale: str, store: Store) -> Table:
    """`repro plan`: the seeds each claim needs for each power at its smallest_effect, spread from the store."""
    from repro.judge import evaluate, observations
    from repro.plan import POWERS, plan_claim

    table = Table(title=f"seeds for power at smallest_effect, {scale} scale (spread read from the store)")
    for column in ("claim", "test", "alpha (Holm first step)", "smallest effect", "sd", "seeds now",
                   *(f"{p:.0%} power" for p in POWERS), "how"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for claim in chosen:
        if claim.skipped(scale):
            continue
        run_ = evaluate(claim, scale, store)
        if not run_.complete and scale == "full":  # a pilot: the ci scale's spread
            run_ = evaluate(claim, "ci", store)
        values, sweep = observations(claim, run_.results) if run_.complete else (None, None)
        size = claim_set.family_size(claim, scale)
        p = plan_claim(claim, values, sweep, size)
        table.add_row(
            claim.id, p.test, f"{p.alpha:g} / {size} = {p.planning_alpha:.2g}",
            "—" if p.smallest_effect is None else f"{p.smallest_effect:g}",
            "—" if p.spread is None else f"{p.spread:.3g}", str(claim.n_seeds(scale)),
            *("—" if p.seeds[q] is None else str(p.seeds[q]) for q in POWERS), p.how if p.seeds[POWERS[0]] else p.note,
        )  # fmt: skip
    return table

"""Figures for the report: call each figure function safely, once per distinct input, and embed its SVG.

Figure functions belong to the experiment families (``Experiment.figures``, name -> ``fn(claim,
run)``) and draw with matplotlib's object API (``matplotlib.figure.Figure``, never pyplot, so no
global figure state and no GUI backend). This module only runs them, under one fixed style, and
turns each Figure into a ``data:image/svg+xml`` URI for an ``<img>``: an image keeps each SVG's
ids in its own document, so figures cannot clash, and the page stays one self-contained file.

Each figure is drawn once per distinct input and kept in the store (:mod:`repro.report.cache`); a
report on a store whose figures are all kept draws nothing. Within a page, an image is embedded
once: a second claim with the same figure links to the section that shows it.

SVG output is byte-identical for the same inputs: ``svg.hashsalt`` is fixed (matplotlib otherwise
salts its element ids with a random UUID), the Date metadata is dropped, and the compaction of
:mod:`repro.report.encode` is a pure function of its input.

The report adds one figure of its own to every claim that has results, :func:`observed_figure`:
the per-seed values the verdict was computed from, against the claim's threshold.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from repro.claim import Claim, Difference, Equivalent, Greater, Less, Proportion, Trend
from repro.judge import ClaimRun, observations
from repro.plotting import arms_with_results, draws_from, results_only, seed_arrays
from repro.report.cache import FigureCache, canonical, figure_inputs
from repro.report.encode import RC, figure_svg, svg_data_uri

__all__ = [
    "RC",
    "RenderedFigure",
    "arms_with_results",
    "draws_from",
    "figure_to_data_uri",
    "observed_figure",
    "sequence_figure",
    "render_figures",
    "results_only",
    "seed_arrays",
]

log = logging.getLogger(__name__)

FigureFunction = Callable[[Claim, ClaimRun], "Figure | None"]


@dataclass(frozen=True)
class RenderedFigure:
    """One entry of a claim's figure list: an image, the reason there is none, or where it is.

    ``shown_in`` names the claim whose section already shows this very image (drawn from the same
    input, or an identical picture): the page embeds each distinct image once and links to it.
    """

    name: str
    uri: str | None = None
    error: str | None = None
    owner: str | None = None  # the claim whose section embeds ``uri``
    shown_in: str | None = None


def figure_to_data_uri(figure: Figure) -> str:
    """Encode a Figure as a deterministic ``data:image/svg+xml;base64,...`` URI of its compact SVG.

    A form any consumer reads; the page itself embeds the shorter percent-encoded form of
    :func:`repro.report.encode.svg_data_uri`.
    """
    return "data:image/svg+xml;base64," + base64.b64encode(figure_svg(figure).encode("utf-8")).decode("ascii")


def _draw(function: FigureFunction, claim: Claim, run: ClaimRun) -> str | None:
    """The function's figure as compact SVG, or None when it has nothing to draw."""
    with matplotlib.rc_context(RC):
        figure = function(claim, run)
        if figure is None:
            return None
        if not isinstance(figure, Figure):
            raise TypeError(f"returned {type(figure).__name__}, not a matplotlib Figure or None")
        return figure_svg(figure)


def _embed_or_link(first: RenderedFigure, name: str, claim: Claim) -> RenderedFigure:
    """The image where ``claim`` owns it (its first appearance on the page), else a link to its owner."""
    if first.owner == claim.id:
        return RenderedFigure(name, uri=first.uri, owner=claim.id)
    return RenderedFigure(name, shown_in=first.owner)


def _figure(
    function: FigureFunction, claim: Claim, run: ClaimRun, memo: dict, cache: FigureCache | None
) -> tuple[str | RenderedFigure | None, tuple | None]:
    """(SVG, None for nothing to draw, or the figure of the same input on the page; the memo key or None)."""
    inputs = figure_inputs(function, claim, run)
    shared = ("inputs", function, canonical(inputs)) if hasattr(function, "figure_reads") else None
    if shared is not None and shared in memo:
        return memo[shared], None
    key = cache.key(function, inputs) if cache is not None else None
    svg = cache.get(key) if cache is not None and key is not None else FigureCache.MISSING  # a key: a cache
    if svg is FigureCache.MISSING:
        svg = _draw(function, claim, run)
        if cache is not None and key is not None:
            cache.put(key, svg)
    return cast("str | None", svg), shared  # the cache's text or None, or a drawing's


def render_figures(
    claim: Claim,
    run: ClaimRun,
    functions: Mapping[str, FigureFunction],
    memo: dict[tuple, Any] | None = None,
    cache: FigureCache | None = None,
) -> list[RenderedFigure]:
    """Call every figure function in the mapping's order; a failing one becomes an error note.

    ``memo`` (one dict per report) keeps the figures of :func:`draws_from` functions by their input,
    and the owner of every embedded image; a later claim with the same input, or the same image,
    gets a link to the first claim's figure rather than a second copy. ``cache`` keeps drawn
    figures across reports.
    """
    memo = {} if memo is None else memo
    rendered = []
    for name, function in functions.items():
        try:
            svg, shared = _figure(function, claim, run, memo, cache)
        except Exception as exc:  # one broken figure must not take the report down
            log.warning("figure %r of claim %s failed: %s: %s", name, claim.id, type(exc).__name__, exc)
            log.debug("figure failure detail", exc_info=True)
            rendered.append(RenderedFigure(name, error=f"{type(exc).__name__}: {exc}"))
            continue
        if isinstance(svg, RenderedFigure):  # this input's figure is on the page already
            rendered.append(_embed_or_link(svg, name, claim))
            continue
        first = None
        if svg is not None:
            image = ("image", hashlib.sha256(svg.encode()).hexdigest())
            first = memo.setdefault(image, RenderedFigure(name, uri=svg_data_uri(svg), owner=claim.id))
            rendered.append(_embed_or_link(first, name, claim))
        if shared is not None:
            memo[shared] = first
    return rendered


# -- the report's own figure: what the verdict was computed from ----------------------------------------


def _offsets(values: np.ndarray, width: float = 0.3) -> np.ndarray:
    """Sideways offsets that stack near-equal values side by side (a deterministic beeswarm)."""
    span = float(np.ptp(values)) or 1.0
    bins = np.round((values - values.min()) / (span / 40)).astype(int)  # (n,) vertical bins
    slot = np.zeros(values.size)
    for b in np.unique(bins):
        members = np.flatnonzero(bins == b)
        slot[members] = [(j + 1) // 2 * (1 if j % 2 else -1) for j in range(members.size)]
    widest = max(float(np.abs(slot).max()), 1.0)
    return slot * min(0.05, width / widest)


def _strip(ax: Any, position: float, values: np.ndarray, colour: str) -> None:
    """Per-seed values as dots at one x position, near-equal ones side by side."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    ax.scatter(position + _offsets(values), values, s=14, color=colour, alpha=0.75, linewidths=0, zorder=3)


def _estimate(ax: Any, position: float, run: ClaimRun, colour: str = "black") -> None:
    v = run.verdict
    if v.estimate is None or v.ci_low is None or v.ci_high is None:
        return
    ax.errorbar(
        [position + 0.32], [v.estimate], yerr=[[v.estimate - v.ci_low], [v.ci_high - v.estimate]],
        fmt="D", color=colour, markersize=4, capsize=3, zorder=4,
        label=f"estimate, {v.ci_level:.0%} CI",
    )  # fmt: skip


def _hline(ax: Any, y: float, label: str, style: str = "--") -> None:
    ax.axhline(y, color="#b03030", linestyle=style, linewidth=1.0, label=label, zorder=2)


def _margins(fig: Figure, left: float, right: float, top: float, bottom: float = 0.5) -> None:
    """Fixed margins in inches: a layout engine would draw every figure twice to find them."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height)


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty legend is a matplotlib warning
        # Outside the axes, in the right margin: it never hides a point.
        ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)


def _trend(fig: Figure, claim: Claim, run: ClaimRun, values: dict[str, np.ndarray], sweep: np.ndarray | None) -> None:
    ax = fig.subplots()
    for arm, block in values.items():
        block = np.atleast_2d(block)  # (n_seeds, K)
        x = sweep if sweep is not None and sweep.size == block.shape[1] else np.arange(block.shape[1], dtype=float)
        for row in block:
            ax.plot(x, row, color="#9aa5b1", linewidth=0.8, alpha=0.8)
        with np.errstate(all="ignore"):
            finite = np.isfinite(block)
            mean = np.where(finite, block, 0.0).sum(0) / np.maximum(finite.sum(0), 1)
        label = "mean of seeds" if arm == "main" else f"{arm}: mean of seeds"
        ax.plot(x, mean, color="#1f4e79", linewidth=2.0, marker="o", markersize=3, label=label)
        if x.size > 1 and np.all(x > 0) and x.max() / x.min() > 50:
            ax.set_xscale("log")
    axis = next(iter(next(r for r in run.results.values() if r)[0].sweep), "sweep")
    ax.set_xlabel(axis)
    ax.set_ylabel(claim.metric)
    _legend(ax)


def _arms(fig: Figure, claim: Claim, run: ClaimRun, values: dict[str, np.ndarray]) -> None:
    assert isinstance(claim.assertion, (Difference, Equivalent))  # observed_figure draws these kinds here
    a, b = claim.assertion.a, claim.assertion.b
    left, right = fig.subplots(1, 2, width_ratios=[3, 2], gridspec_kw={"wspace": 0.45})
    x, y = values[a].ravel(), values[b].ravel()
    paired = bool(getattr(claim.assertion, "paired", False)) and x.size == y.size
    if paired:
        for u, w in zip(x, y, strict=True):
            left.plot([0, 1], [u, w], color="#c5ccd3", linewidth=0.7, zorder=1)
    _strip(left, 0.0, x, "#1f4e79")
    _strip(left, 1.0, y, "#7a4f9a")
    left.set_xticks([0, 1], [a, b])
    left.set_xlim(-0.6, 1.6)
    left.set_ylabel(claim.metric)
    left.set_title("per seed" + (" (paired)" if paired else ""))
    if paired:
        _strip(right, 0.0, x - y, "#404040")
    margin = claim.assertion.margin
    if isinstance(claim.assertion, Equivalent):
        _hline(right, margin, f"margin ±{margin:g}")
        _hline(right, -margin, "_nolabel")
    else:
        _hline(right, margin, f"margin {margin:g}")
    right.axhline(0.0, color="#808080", linewidth=0.6)
    _estimate(right, 0.0, run)
    right.set_xticks([0], [f"{a} − {b}"])
    right.set_xlim(-0.6, 0.9)
    right.set_title("difference")
    _legend(right)


def _location(fig: Figure, claim: Claim, run: ClaimRun, values: dict[str, np.ndarray]) -> None:
    ax = fig.subplots()
    observed = np.concatenate([v.ravel() for v in values.values()])
    _strip(ax, 0.0, observed, "#1f4e79")
    assertion = claim.assertion
    if isinstance(assertion, (Greater, Less)):
        _hline(ax, assertion.threshold, f"threshold {assertion.threshold:g}")
        _estimate(ax, 0.0, run)
    elif isinstance(assertion, Proportion):
        predicate = assertion.predicate
        _hline(ax, predicate.value, f"predicate {predicate.op} {predicate.value:g}")
    ax.set_xticks([])
    ax.set_xlim(-0.6, 0.9)
    ax.set_ylabel(claim.metric)
    _legend(ax)


@draws_from("metric", "at", "assertion", verdict=("estimate", "ci_low", "ci_high", "ci_level"))
def observed_figure(claim: Claim, run: ClaimRun) -> Figure | None:
    """The per-seed values behind the verdict, with the threshold (or margin) and the estimate's CI."""
    results = {arm: rs for arm, rs in run.results.items() if rs}
    if not results:
        return None
    try:
        values, sweep = observations(claim, results)
    except (ValueError, KeyError):  # the verdict already says why these values cannot be read
        return None
    assertion = claim.assertion
    if isinstance(assertion, (Difference, Equivalent)) and not {assertion.a, assertion.b} <= set(values):
        return None
    fig = Figure(figsize=(6.4, 3.0))
    _margins(fig, left=0.8, right=2.1, top=0.6 if isinstance(assertion, (Difference, Equivalent)) else 0.4)
    if isinstance(claim.assertion, Trend):
        _trend(fig, claim, run, values, sweep)
    elif isinstance(claim.assertion, (Difference, Equivalent)):
        _arms(fig, claim, run, values)
    else:
        _location(fig, claim, run, values)
    n = min(len(r) for r in results.values())
    where = "" if claim.at is None or math.isnan(claim.at) else f" at {claim.at:g}"
    fig.suptitle(f"{claim.metric}{where}: {n} seed{'s' if n != 1 else ''} as stored")
    return fig


@draws_from("metric", "at", "assertion", "sequential", verdict=("sequential", "threshold"))
def sequence_figure(claim: Claim, run: ClaimRun) -> Figure | None:
    """A sequential claim's confidence sequence and e-values against seeds, up to where it stopped."""
    from repro import sequential

    record, record_threshold = run.verdict.sequential, run.verdict.threshold
    results = {arm: rs for arm, rs in run.results.items() if rs}
    if claim.sequential is None or record is None or not results:
        return None
    assert record_threshold is not None, "a sequential verdict is decided against its threshold"
    try:
        values, sweep = observations(claim, results)
        design = claim.sequential
        path = sequential.sequential_path(
            claim.assertion, values, sweep, method=design.method, bounds=design.bounds, sigma=design.sigma
        )
    except (ValueError, KeyError):
        return None
    seeds = np.arange(1, len(path.e_claim) + 1)
    fig = Figure(figsize=(6.4, 3.2))
    _margins(fig, left=0.8, right=2.1, top=0.4)
    left, right = fig.subplots(1, 2)
    low, high = np.asarray(path.cs_low), np.asarray(path.cs_high)
    shown = np.isfinite(low) & np.isfinite(high)
    # One bar per seed at which the sequence has both bounds (a median's needs a few seeds first).
    left.vlines(seeds[shown], low[shown], high[shown], color="#6baed6", linewidth=4, label="confidence sequence")
    left.set_xlim(0.5, len(seeds) + 0.5)
    _hline(left, record_threshold, "threshold")
    left.set_xlabel("seeds")
    left.set_ylabel(path.estimand)
    right.semilogy(seeds, np.maximum.accumulate(path.e_claim), color="#1f4e79", label="largest e so far (claim)")
    right.semilogy(seeds, np.maximum.accumulate(path.e_opposite), color="#b2182b", label="largest e so far (opposite)")
    right.axhline(record.bar, color="black", linestyle="--", linewidth=1, label=f"bar {record.bar:g}")
    right.axvline(record.seeds_used, color="grey", linewidth=1)
    right.set_xlabel("seeds")
    _legend(right)
    fig.suptitle(f"sequential: {record.seeds_used} of at most {record.max_seeds} seeds")
    return fig

"""Figures of ``stall.active_learning`` claims for the report: ``FIGURES`` is the experiment's mapping.

Each function takes (claim, run), a :class:`repro.judge.ClaimRun`, and returns a matplotlib
``Figure`` (object API, no pyplot) or None when it has nothing to draw. Stored arrays per seed:
``tsne`` (n, 2) and ``tsne_labels`` (n,); ``cosine_hist_source`` / ``_uncentred`` / ``_centred``
(counts in 100 bins over [-1, 1]); ``queried_counts`` (queries, classes); ``classes`` (names).
Per-round metrics are lists along the sweep axis ``round``; bands are 95 % t intervals over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from repro.claim import Claim
from repro.plotting import arms_with_results, results_only, seed_arrays

if TYPE_CHECKING:
    from repro.judge import ClaimRun
    from repro.store import StoredResult

__all__ = ["FIGURES", "cosine_histograms", "per_round_scores", "queried_classes", "tsne_maps"]

ARM_COLOURS = {"baseline": "#404040", "least_confidence": "#b4541a", "random": "#1f4e79"}
OTHER_COLOURS = ("#3f7f3f", "#7f3f7f", "#7f7f3f")
MAX_CLASSES_SHOWN = 20


def _colour(arm: str, i: int) -> str:
    return ARM_COLOURS.get(arm, OTHER_COLOURS[i % len(OTHER_COLOURS)])


def _figure(width: float, height: float, left: float = 0.7, right: float = 0.25, top: float = 0.5,
            bottom: float = 0.55) -> Figure:  # fmt: skip
    """A figure with fixed margins in inches: no layout engine, so it is drawn once."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height)
    return fig


def _band(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95 % t interval over seeds (rows) of (n_seeds, K); zero width for one seed."""
    mean = np.nanmean(block, 0)
    n = np.sum(np.isfinite(block), 0)
    sd = np.nanstd(block, 0, ddof=1) if block.shape[0] > 1 else np.zeros_like(mean)
    half = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1)), 0.0)
    return mean, mean - half, mean + half


def _rows(results: list[StoredResult], metric: str) -> np.ndarray:
    rows = [cast("list[float]", r.metrics.get(metric)) for r in results if isinstance(r.metrics.get(metric), list)]
    if not rows:
        return np.empty((0, 0))
    width = max(len(row) for row in rows)
    return np.asarray([row + [math.nan] * (width - len(row)) for row in rows], dtype=float)


@results_only
def tsne_maps(claim: Claim, run: ClaimRun) -> Figure | None:
    """The t-SNE embedding of the test features, first stored seed of each arm, coloured by true class."""
    panels = [(arm, results[0], seed_arrays(results[0])) for arm, results in arms_with_results(run)]
    panels = [(arm, r, a) for arm, r, a in panels if "tsne" in a]
    if not panels:
        return None
    fig = _figure(3.0 * len(panels) + 0.4, 3.6, left=0.2, right=0.2, top=0.85, bottom=0.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (arm, result, arrays) in zip(axes, panels, strict=True):
        points, labels = arrays["tsne"], arrays["tsne_labels"]
        cmap = "tab10" if labels.max() < 10 else "nipy_spectral"
        top = max(9, int(labels.max()))
        # A raster layer inside the SVG: thousands of dots as vector marks would dwarf the rest of the page.
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap=cmap, s=3, linewidths=0, vmin=0, vmax=top,
                   rasterized=True)  # fmt: skip
        sil = result.metrics.get("silhouette_tsne", math.nan)
        ax.set_title(f"{arm} (seed {result.seed})\nsilhouette {sil:.3f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("t-SNE of the test features, coloured by true class")
    return fig


@results_only
def cosine_histograms(claim: Claim, run: ClaimRun) -> Figure | None:
    """Pairwise cosine similarities of the test features, every stored seed pooled, per arm."""
    arms = arms_with_results(run)
    kinds = (("cosine_hist_source", "source's extractor, uncentred"), ("cosine_hist_centred", "pooled, centred"))
    fig = _figure(7.4, 3.2, right=0.2, top=0.6)
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.25})
    drawn = False
    for ax, (name, title) in zip(axes, kinds, strict=True):
        for i, (arm, results) in enumerate(arms):
            counts = [a[name] for a in (seed_arrays(r) for r in results) if name in a]
            if not counts:
                continue
            total = np.sum(counts, 0)
            edges = np.linspace(-1.0, 1.0, total.size + 1)
            density = total / max(total.sum(), 1) / np.diff(edges)
            metric = "cosine_source" if name == "cosine_hist_source" else "cosine_centred"
            mean = np.mean([r.metrics.get(metric, math.nan) for r in results])
            ax.stairs(density, edges, color=_colour(arm, i), linewidth=1.4, label=f"{arm}: mean {mean:.3f}")
            drawn = True
        ax.set_title(title)
        ax.set_xlabel("cosine similarity of two test images' features")
        if ax.get_legend_handles_labels()[0]:
            ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # room for the legend above the curves
            ax.legend(frameon=False, fontsize=7, loc="upper left")
    if not drawn:
        return None
    axes[0].set_ylabel("density, all stored seeds")
    fig.suptitle("Pairwise cosine similarity of test features")
    return fig


@results_only
def per_round_scores(claim: Claim, run: ClaimRun) -> Figure | None:
    """Silhouette and Davies-Bouldin of the raw pooled features after each round; the baseline as a band."""
    arms = arms_with_results(run)
    fig = _figure(8.0, 3.3, right=2.3, top=0.6)
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.3})
    drawn = False
    for ax, metric, title in ((axes[0], "round_silhouette_raw", "silhouette"),
                              (axes[1], "round_davies_bouldin_raw", "Davies-Bouldin")):  # fmt: skip
        for i, (arm, results) in enumerate(arms):
            block, labelled = _rows(results, metric), _rows(results, "round_labelled")
            if block.size == 0:
                continue
            mean, low, high = _band(block)
            x = np.nanmean(labelled, 0)
            colour = _colour(arm, i)
            if block.shape[1] == 1:  # the baseline: one measurement on all labels
                ax.axhline(mean[0], color=colour, linewidth=1.2, linestyle="--", label=f"{arm} (all labels)")
                ax.axhspan(low[0], high[0], color=colour, alpha=0.12, linewidth=0)
            else:
                ax.plot(x, mean, color=colour, marker="o", markersize=3, label=f"{arm}, {block.shape[0]} seeds")
                ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
            drawn = True
        ax.set_xlabel("labelled training images")
        ax.set_title(f"{title}, raw pooled features")
    if not drawn:
        return None
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)
    fig.suptitle("Cluster scores after each round (mean, 95 % t band over seeds)")
    return fig


@results_only
def queried_classes(claim: Claim, run: ClaimRun) -> Figure | None:
    """Images of each class picked by the first query, mean over seeds, per querying arm."""
    bars = []
    for i, (arm, results) in enumerate(arms_with_results(run)):
        first = [a["queried_counts"][0] for a in (seed_arrays(r) for r in results)
                 if "queried_counts" in a and a["queried_counts"].shape[0] > 0]  # fmt: skip
        if first:
            bars.append((arm, _colour(arm, i), np.mean(first, 0), len(first), seed_arrays(results[0])))
    if not bars:
        return None
    classes = bars[0][4].get("classes")
    n_classes = bars[0][2].size
    names = [str(c) for c in classes] if classes is not None and len(classes) == n_classes else \
        [str(c) for c in range(n_classes)]  # fmt: skip
    shown = np.argsort(-bars[0][2], kind="stable")[:MAX_CLASSES_SHOWN]
    fig = _figure(max(5.0, 0.45 * len(shown) + 1.5), 3.4, bottom=1.1)
    ax = fig.subplots()
    width = 0.8 / len(bars)
    for j, (arm, colour, counts, n, _) in enumerate(bars):
        ax.bar(np.arange(len(shown)) + (j - (len(bars) - 1) / 2) * width, counts[shown], width=width, color=colour,
               label=f"{arm} ({n} seeds)")  # fmt: skip
    ax.set_xticks(np.arange(len(shown)), [names[k] for k in shown], rotation=45, ha="right")
    ax.set_ylabel("images picked, mean over seeds")
    ax.legend(frameon=False)
    fig.suptitle("Classes picked by the first query")
    return fig


FIGURES: dict[str, Callable[[Claim, ClaimRun], Figure | None]] = {
    "t-SNE maps per arm": tsne_maps,
    "cosine-similarity histograms": cosine_histograms,
    "silhouette and Davies-Bouldin per round": per_round_scores,
    "queried-class counts": queried_classes,
}

"""Figures of ``subnetworks.split`` claims for the report: ``FIGURES`` is the experiment's figure mapping.

Each function takes (claim, run), a :class:`repro.judge.ClaimRun`, and returns a matplotlib ``Figure``
(object API, no pyplot) or None when the stored seeds hold nothing to draw (a detection-only run, or a
seed without a polysemantic unit). Pictures of one split show the first stored seed that has one and
say which; curves and scatters use every stored seed. Stored arrays per seed: ``cluster_{a,b}_images``
(receptive-field crops, uint8), ``act_{dense,mask_a,mask_b}_{a,b}`` (held-out activations),
``sweep_fractions`` with ``sweep_{auroc,preservation}_{snip,force,actgrad}``, ``layer_{n,kept_a,kept_b,
observed,expected}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from repro.claim import Claim
from repro.plotting import arms_with_results, results_only, seed_arrays

if TYPE_CHECKING:
    from repro.judge import ClaimRun
    from repro.store import StoredResult

__all__ = ["FIGURES", "activation_histograms", "cluster_images", "overlap_vs_independence", "sparsity_vs_preservation"]

METHOD_COLOURS = {"cs": "#1f4e79", "snip": "#b4541a", "force": "#3f7f3f", "actgrad": "#7a3f7f"}
CLUSTER_COLOURS = ("#1f4e79", "#b4541a")


def _results(run: ClaimRun) -> list[StoredResult]:
    arms = arms_with_results(run, limit=1)
    return arms[0][1] if arms else []


def _first_split(run: ClaimRun) -> tuple[StoredResult, dict[str, np.ndarray]] | None:
    for result in _results(run):
        arrays = seed_arrays(result)
        if "act_dense_a" in arrays:
            return result, arrays
    return None


def _title(result: StoredResult) -> str:
    unit = result.metrics.get("split_unit", math.nan)
    unit_text = "?" if not isinstance(unit, float) or math.isnan(unit) else f"{int(unit)}"
    return f"seed {result.seed}, unit {unit_text}"


@results_only
def cluster_images(claim: Claim, run: ClaimRun) -> Figure | None:
    """Top images (receptive-field crops, strongest first) of clusters A and B of the split unit."""
    found = _first_split(run)
    if found is None:
        return None
    result, arrays = found
    rows = [arrays["cluster_a_images"], arrays["cluster_b_images"]]
    n = max(len(r) for r in rows)
    fig = Figure(figsize=(0.8 + 0.75 * n, 2.1))
    fig.subplots_adjust(left=0.8 / (0.8 + 0.75 * n), right=0.98, top=0.8, bottom=0.04, wspace=0.08, hspace=0.15)
    axes = fig.subplots(2, n, squeeze=False)
    for r, (images, name) in enumerate(zip(rows, ("cluster A", "cluster B"), strict=True)):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.set_axis_off()
                continue
            ax.imshow(images[c], cmap="gray" if images[c].ndim == 2 else None, vmin=0, vmax=255)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(f"Top images of each cluster ({_title(result)})")
    return fig


@results_only
def activation_histograms(claim: Claim, run: ClaimRun) -> Figure | None:
    """The source's figure 4: held-out activations of A and B images under dense, mask A and mask B."""
    found = _first_split(run)
    if found is None:
        return None
    result, arrays = found
    fig = Figure(figsize=(8.4, 2.8))
    fig.subplots_adjust(left=0.07, right=0.98, top=0.78, bottom=0.18, wspace=0.3)
    axes = fig.subplots(1, 3)
    for ax, (key, name) in zip(axes, (("dense", "dense"), ("mask_a", "mask A"), ("mask_b", "mask B")), strict=True):
        a, b = arrays[f"act_{key}_a"], arrays[f"act_{key}_b"]
        both = np.r_[a, b]
        bins = np.linspace(float(both.min()), float(both.max()) + 1e-9, 25)
        for values, label, colour in ((a, "cluster A", CLUSTER_COLOURS[0]), (b, "cluster B", CLUSTER_COLOURS[1])):
            ax.hist(values, bins=bins, alpha=0.55, color=colour, label=label)
        ax.set_title(name)
        ax.set_xlabel("unit activation (centre, pre-ReLU)")
    axes[0].set_ylabel("held-out images")
    axes[0].legend(frameon=False)
    fig.suptitle(f"Activations of the two clusters' held-out images ({_title(result)})")
    return fig


@results_only
def sparsity_vs_preservation(claim: Claim, run: ClaimRun) -> Figure | None:
    """Kept fraction against feature preservation and AUROC: heuristics swept (mean of seeds), CS per seed."""
    stored = [(r, seed_arrays(r)) for r in _results(run)]
    stored = [(r, a) for r, a in stored if "sweep_fractions" in a]
    if not stored:
        return None
    fig = Figure(figsize=(8.4, 3.2))
    fig.subplots_adjust(left=0.08, right=0.8, top=0.85, bottom=0.17, wspace=0.3)
    pres_ax, auroc_ax = fig.subplots(1, 2)
    fractions = stored[0][1]["sweep_fractions"]
    for method in ("snip", "force", "actgrad"):
        for ax, kind in ((pres_ax, "preservation"), (auroc_ax, "auroc")):
            block = np.array([a[f"sweep_{kind}_{method}"] for _, a in stored])
            ax.plot(fractions, block.mean(0), marker="o", color=METHOD_COLOURS[method], label=method.upper())
    kept = [r.metrics["kept_fraction"] for r, _ in stored]
    for ax, metric in ((pres_ax, "preservation_cs"), (auroc_ax, "auroc_own_min")):
        ax.scatter(kept, [r.metrics[metric] for r, _ in stored], color=METHOD_COLOURS["cs"], marker="*", s=60,
                   label="CS (each seed)", zorder=3)  # fmt: skip
        ax.axvline(0.10, color="#808080", linestyle=":", linewidth=1.0)
        ax.set_xscale("log")
        ticks = sorted({*np.round(fractions, 4).tolist(), 0.1})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("kept fraction of masked weights")
    pres_ax.set_yscale("log")
    pres_ax.set_ylabel("ΔF_norm, own cluster (low = kept)")
    auroc_ax.set_ylabel("AUROC, own cluster (min of A, B)")
    auroc_ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), frameon=False)
    fig.suptitle(f"Heuristic masks across sparsities vs continuous sparsification ({len(stored)} seeds)")
    return fig


@results_only
def overlap_vs_independence(claim: Claim, run: ClaimRun) -> Figure | None:
    """Per layer and seed: weights kept by both masks against the hypergeometric expectation |A||B|/N."""
    stored = [seed_arrays(r) for r in _results(run)]
    stored = [a for a in stored if "layer_observed" in a]
    if not stored:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    fig.subplots_adjust(left=0.12, right=0.68, top=0.88, bottom=0.15)
    ax = fig.subplots()
    n_layers = len(stored[0]["layer_observed"])
    colours = ("#1f4e79", "#b4541a", "#3f7f3f", "#7a3f7f", "#a08020", "#505050")
    for j in range(n_layers):
        expected = [a["layer_expected"][j] for a in stored]
        observed = [a["layer_observed"][j] for a in stored]
        ax.scatter(expected, observed, color=colours[j % len(colours)], s=18, label=f"masked conv {j + 1}")
    values = np.concatenate([np.r_[a["layer_expected"], a["layer_observed"]] for a in stored])
    values = values[values > 0]
    if values.size:
        lo, hi = float(values.min()) / 1.5, float(values.max()) * 1.5
        ax.plot([lo, hi], [lo, hi], color="#808080", linestyle="--", linewidth=1.0, label="independence")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("expected overlap |A||B|/N")
    ax.set_ylabel("observed |A ∩ B|")
    ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), frameon=False)
    fig.suptitle(f"Mask overlap per layer against independence ({len(stored)} seeds)")
    return fig


FIGURES: dict[str, Callable[[Claim, ClaimRun], Figure | None]] = {
    "top images per cluster": cluster_images,
    "activation histograms (source figure 4)": activation_histograms,
    "kept fraction vs feature preservation": sparsity_vs_preservation,
    "mask overlap vs independence": overlap_vs_independence,
}

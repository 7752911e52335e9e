"""Figures of ``sae.mnist`` claims for the report: ``FIGURES`` is the experiment's figure mapping.

Each function takes (claim, run), a :class:`repro.judge.ClaimRun`, and returns a matplotlib
``Figure`` (object API, no pyplot) or None when it has nothing to draw. Curves average every stored
seed; pictures of single latents show the first stored seed of each arm and say which. The
dictionary a picture shows is the claim's ``at`` (an index into ``params.dictionaries``), else the
first. Stored arrays per seed, for dictionary j: ``activation_frequency_j`` (L,),
``classes_spanned_j`` (L,), ``top_latents_j`` (S,), ``top_values_j`` / ``top_labels_j`` (S, T),
``top_images_j`` (S, T, side, side) uint8; and ``unit_activation_frequency`` (2H,) of the classifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import numpy as np
from matplotlib.figure import Figure

from repro.claim import Claim
from repro.plotting import arms_with_results, draws_from, results_only, seed_arrays

if TYPE_CHECKING:
    from repro.judge import ClaimRun
    from repro.store import StoredResult

__all__ = ["FIGURES", "dead_latent_histogram", "l0_vs_reconstruction", "probe_vs_size", "top_inputs_grid"]

ARM_COLOURS = ("#1f4e79", "#b4541a", "#3f7f3f")
MAX_ARMS = 3


def _arms(run: ClaimRun) -> list[tuple[str, list[StoredResult]]]:
    return arms_with_results(run, MAX_ARMS)


def _block(results: list[StoredResult], metric: str) -> np.ndarray:
    """(n_seeds, D) values of a per-dictionary metric (NaN rows where a seed lacks it)."""
    width = max(len(cast("list[float]", r.metrics.get(metric, []) or [])) for r in results)  # a list per seed
    rows = [
        cast("list[float]", r.metrics.get(metric)) if isinstance(r.metrics.get(metric), list) else [math.nan] * width
        for r in results
    ]
    return np.asarray([row + [math.nan] * (width - len(row)) for row in rows], dtype=float)


def _dictionary(claim: Claim, result: StoredResult) -> int:
    """The dictionary a claim is about: its ``at``, else the first."""
    n = len(result.sweep.get("dictionary", [])) or 1
    j = 0 if claim.at is None else int(round(claim.at))
    return j if 0 <= j < n else 0


def _label(arm: str, text: str) -> str:
    return text if arm == "main" else f"{arm}: {text}"


def _figure(width: float, height: float, left: float = 0.8, right: float = 0.25, top: float = 0.45,
            bottom: float = 0.55) -> Figure:  # fmt: skip
    """A figure with fixed margins in inches: no layout engine, so it is drawn once."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height)
    return fig


# -- sweep pictures over every stored seed -------------------------------------------------------------------


@draws_from("metric", "assertion")
def probe_vs_size(claim: Claim, run: ClaimRun) -> Figure | None:
    """Probe accuracy on the codes against dictionary size, with the raw-activation probe and chance."""
    arms = _arms(run)
    if not arms or all(_block(results, "latents").shape[1] < 2 for _, results in arms):
        return None
    fig = _figure(5.6, 3.4, right=2.0)
    ax = fig.subplots()
    for colour, (arm, results) in zip(ARM_COLOURS, arms, strict=False):
        sizes = np.nanmean(_block(results, "latents"), 0)  # (D,)
        probe = _block(results, "probe_accuracy_codes")  # (n_seeds, D)
        order = np.argsort(sizes, kind="stable")
        for row in probe:
            ax.plot(sizes[order], row[order], color=colour, linewidth=0.6, alpha=0.35)
        ax.plot(sizes[order], np.nanmean(probe, 0)[order], color=colour, marker="o", markersize=4, linewidth=2.0,
                label=_label(arm, f"codes, mean of {len(results)} seeds"))  # fmt: skip
        raw = cast(float, np.nanmean([r.metrics.get("probe_accuracy_raw", math.nan) for r in results]))  # a float64
        ax.axhline(raw, color=colour, linestyle="--", linewidth=1.0, label=_label(arm, "raw activations, mean"))
    chance = cast(float, np.nanmean([r.metrics.get("probe_chance", math.nan) for _, rs in arms for r in rs]))  # float64
    if math.isfinite(chance) and chance > 0:
        ax.axhline(chance, color="#808080", linestyle=":", linewidth=1.0, label=f"chance {chance:.2f}")
    threshold = getattr(claim.assertion, "threshold", None)
    if claim.metric == "probe_accuracy_codes" and threshold is not None:
        ax.axhline(threshold, color="#b03030", linewidth=1.0, linestyle="--", label=f"claim threshold {threshold:g}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("dictionary size (latents)")
    ax.set_ylabel("linear-probe test accuracy")
    ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)
    fig.suptitle("Probe accuracy against dictionary size")
    return fig


@results_only
def l0_vs_reconstruction(claim: Claim, run: ClaimRun) -> Figure | None:
    """Each (seed, dictionary): L0 against the unexplained variance 1 - FVE (log), marker by size."""
    arms = _arms(run)
    if not arms:
        return None
    fig = _figure(5.6, 3.4, right=2.0)
    ax = fig.subplots()
    markers = ("o", "s", "^", "D", "v", "P", "X", "*")
    drawn = False
    for colour, (arm, results) in zip(ARM_COLOURS, arms, strict=False):
        l0 = _block(results, "l0")  # (n_seeds, D)
        unexplained = 1 - _block(results, "fraction_variance_explained")
        sizes = np.nanmean(_block(results, "latents"), 0)
        topk = np.nanmax(_block(results, "topk_k"), 0) > 0
        for j in range(l0.shape[1]):
            shown = np.isfinite(l0[:, j]) & np.isfinite(unexplained[:, j]) & (unexplained[:, j] > 0)
            if not shown.any():
                continue
            label = _label(arm, f"#{j}: {'TopK' if topk[j] else 'L1'}, {sizes[j]:.0f} latents")
            ax.scatter(l0[shown, j], unexplained[shown, j], s=18, color=colour, marker=markers[j % len(markers)],
                       alpha=0.75, linewidths=0, label=label)  # fmt: skip
            drawn = True
    if not drawn:
        return None
    ax.set_yscale("log")
    ax.set_xlabel("L0 (active latents per test input)")
    ax.set_ylabel("1 − fraction of variance explained")
    ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False, fontsize=7)
    fig.suptitle("L0 against reconstruction error, every seed and dictionary")
    return fig


# -- one dictionary of the claim -------------------------------------------------------------------------------


@draws_from("at")
def dead_latent_histogram(claim: Claim, run: ClaimRun) -> Figure | None:
    """How often each latent fires on the test set, dead ones as a bar of their own, beside the classifier's units."""
    arms = _arms(run)
    if not arms:
        return None
    fig = _figure(7.2, 3.2, right=0.3, top=0.6)
    latents_ax, units_ax = fig.subplots(1, 2, gridspec_kw={"wspace": 0.3})
    bins = np.linspace(0.0, 1.0, 41)
    drawn = False
    for colour, (arm, results) in zip(ARM_COLOURS, arms, strict=False):
        j = _dictionary(claim, results[0])
        for ax, name, what in (
            (latents_ax, f"activation_frequency_{j}", f"#{j}: "),
            (units_ax, "unit_activation_frequency", ""),
        ):
            stored = [a for a in (seed_arrays(r).get(name) for r in results) if a is not None]
            if not stored:
                continue
            values = np.concatenate(stored)  # every seed's units, pooled
            dead = int(np.sum(values == 0))
            label = _label(arm, f"{what}{dead / values.size:.1%} dead")
            ax.hist(values[values > 0], bins=bins, color=colour, alpha=0.55, label=label)
            ax.bar([-0.06], [dead], width=0.05, color=colour, alpha=0.55)  # the dead ones, never active
            drawn = drawn or ax is latents_ax
    if not drawn:
        return None
    for ax, what in ((latents_ax, "autoencoder latents"), (units_ax, "classifier hidden units (both layers)")):
        ax.set_xticks([-0.06, 0.25, 0.5, 0.75, 1.0], ["dead", "0.25", "0.5", "0.75", "1"])
        ax.set_xlabel("share of test inputs on which it fires")
        ax.set_title(what)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper center", frameon=False, fontsize=7)
    latents_ax.set_ylabel("count, all stored seeds")
    fig.suptitle("Activation frequency on the test set")
    return fig


@draws_from("at")
def top_inputs_grid(claim: Claim, run: ClaimRun) -> Figure | None:
    """The top-activating test digits of a few latents (first stored seed of each arm), with their labels.

    One mosaic image (one row per latent, one cell per input, white between cells) on one axes, with
    the labels as text and the latents as its y ticks: a grid of small axes would cost a frame, ticks
    and an image per digit.
    """
    rows = []
    for arm, results in _arms(run):
        j = _dictionary(claim, results[0])
        arrays = seed_arrays(results[0])
        if f"top_images_{j}" in arrays and arrays[f"top_images_{j}"].size:
            rows += [(arm, results[0], j, arrays, s) for s in range(arrays[f"top_images_{j}"].shape[0])]
    if not rows:
        return None
    n_inputs = max(arrays[f"top_images_{j}"].shape[1] for _, _, j, arrays, _ in rows)
    side = max(arrays[f"top_images_{j}"].shape[-1] for _, _, j, arrays, _ in rows)
    across, down = side + 2, side + 9  # pixels per cell with the gap beside it, and with room for its title
    mosaic = np.zeros((len(rows) * down, n_inputs * across), dtype=np.uint8)  # 0 is white in gray_r
    inch, left, top = 0.62 / side, 1.7, 0.5  # 0.62 in per digit
    fig = _figure(left + mosaic.shape[1] * inch + 0.2, top + mosaic.shape[0] * inch + 0.15, left=left, right=0.2,
                  top=top, bottom=0.15)  # fmt: skip
    ax = fig.subplots()
    frames_x: list[float] = []
    frames_y: list[float] = []
    rows_at: list[float] = []
    row_labels: list[str] = []
    for r, (arm, _, j, arrays, s) in enumerate(rows):
        images, labels = arrays[f"top_images_{j}"][s], arrays[f"top_labels_{j}"][s]  # (T, side, side), (T,)
        values, latent = arrays[f"top_values_{j}"][s], int(arrays[f"top_latents_{j}"][s])
        spanned = int(arrays[f"classes_spanned_{j}"][latent]) if f"classes_spanned_{j}" in arrays else -1
        y = r * down + down - side  # top of this row's digits
        for c in range(images.shape[0]):
            h, w = images[c].shape[:2]
            mosaic[y : y + h, c * across : c * across + w] = images[c]
            ax.text(c * across + w / 2, y - 1, str(int(labels[c])) if values[c] > 0 else "–", fontsize=7,
                    ha="center", va="bottom")  # fmt: skip
            frames_x += [c * across, c * across + w, c * across + w, c * across, c * across, np.nan]
            frames_y += [y, y, y + h, y + h, y, np.nan]
        prefix = "" if arm == "main" else f"{arm} "
        rows_at.append(y + side / 2)
        row_labels.append(f"{prefix}#{j} latent {latent}\nspans {spanned} digits")
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="none",
              extent=(0, mosaic.shape[1], mosaic.shape[0], 0))  # fmt: skip
    ax.plot(frames_x, frames_y, color="#b0b0b0", linewidth=0.5, clip_on=False)
    ax.set_xlim(0, mosaic.shape[1])
    ax.set_ylim(mosaic.shape[0], 0)
    ax.set_xticks([])
    ax.set_yticks(rows_at, row_labels, fontsize=7)
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_ylabel("strongest latents")
    seeds = ", ".join(sorted({f"seed {result.seed}" for _, result, *_ in rows}))
    fig.suptitle(f"Top-activating test digits of the strongest latents ({seeds}); titles: true digit")
    return fig


FIGURES: dict[str, Callable[[Claim, ClaimRun], Figure | None]] = {
    "probe accuracy vs dictionary size": probe_vs_size,
    "L0 vs reconstruction error": l0_vs_reconstruction,
    "top-activating inputs": top_inputs_grid,
    "dead-latent histogram": dead_latent_histogram,
}

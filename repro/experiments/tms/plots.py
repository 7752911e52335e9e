"""Figures of ``tms.train`` claims for the report: ``FIGURES`` is the experiment's figure mapping.

Each function takes (claim, run), a :class:`repro.judge.ClaimRun` with the stored per-seed results,
and returns a matplotlib ``Figure`` (object API, no pyplot) or None when it has nothing to draw for
that claim. Per-model pictures (W^T W, superposition bars, 2-D feature vectors) show the first
stored seed of each arm and say which; sweep curves average over every stored seed with a 95 %
t band. Stored arrays per seed (K sweep points, n features, m hidden): W (K, m, n) (W1 for the
untied net), W2 (K, n, m) untied only, b (K, n), norms / superposition / dimensionality (K, n).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from repro.claim import Claim
from repro.plotting import arms_with_results, draws_from, results_only, seed_arrays

if TYPE_CHECKING:
    from repro.judge import ClaimRun
    from repro.store import StoredResult

__all__ = [
    "FIGURES",
    "dimensionality_vs_sparsity",
    "feature_vectors_2d",
    "represented_vs_sparsity",
    "superposition_bars",
    "wtw_heatmaps",
]

MAX_PANELS = 7  # per-model pictures show at most this many sweep points
MAX_ARMS = 3
#: Fractional dimensionalities where the paper finds features "stick" (tegum products of polytopes).
STICKY = ((1.0, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (3 / 8, "3/8"))
ARM_COLOURS = ("#1f4e79", "#b4541a", "#3f7f3f")


# -- reading the stored results ------------------------------------------------------------------------


def _arms(run: ClaimRun) -> list[tuple[str, list[StoredResult]]]:
    return arms_with_results(run, MAX_ARMS)


def _sweep(result: StoredResult) -> np.ndarray:
    return np.asarray(result.sweep.get("feature_probability") or result.params.get("feature_probability") or [], float)


def _panels(k: int) -> list[int]:
    """Sweep indices to draw: all of them, or MAX_PANELS spread evenly from first to last."""
    if k <= MAX_PANELS:
        return list(range(k))
    return sorted({int(round(i)) for i in np.linspace(0, k - 1, MAX_PANELS)})


def _sparsity_label(p: float) -> str:
    return f"S = {1.0 - p:.4g}"


def _arm_label(arm: str, result: StoredResult) -> str:
    prefix = "" if arm == "main" else f"arm {arm}, "
    return f"{prefix}seed {result.seed}"


def _per_model(
    run: ClaimRun,
    draw: Callable[[Any, dict[str, np.ndarray], int, StoredResult], Any],
    title: str,
    panel: tuple[float, float],
    needs: str = "W",
    colorbar: bool = True,
) -> tuple[Figure, list[Any], Any] | None:
    """A grid of panels, one row per arm (first stored seed), one column per drawn sweep point.

    Returns (figure, what each draw returned, colour-bar axes or None). The margins are fixed in
    inches rather than found by a layout engine, which would double the drawing time of a grid.
    """
    rows = [(arm, results[0], seed_arrays(results[0])) for arm, results in _arms(run)]
    rows = [row for row in rows if needs in row[2]]
    if not rows:
        return None
    columns = _panels(min(arrays[needs].shape[0] for _, _, arrays in rows))
    (w, h), n_rows, n_cols = panel, len(rows), len(columns)
    left, right, top, bottom, gap_w, gap_h = 0.55, (1.1 if colorbar else 0.2), 0.65, 0.5, 0.15, 0.55
    width, height = left + n_cols * w + (n_cols - 1) * gap_w + right, top + n_rows * h + (n_rows - 1) * gap_h + bottom
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
        wspace=gap_w / w, hspace=gap_h / h,
    )  # fmt: skip
    # Shared axes: one set of tick labels per row and column.
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    handles = []
    for r, (arm, result, arrays) in enumerate(rows):
        sweep = _sweep(result)
        for c, k in enumerate(columns):
            ax = axes[r, c]
            handles.append(draw(ax, arrays, k, result))
            # A fixed title height: matplotlib's automatic placement measures every tick label again.
            ax.set_title(_sparsity_label(float(sweep[k])) if k < sweep.size else f"point {k}", y=1.0, pad=4)
        axes[r, 0].set_ylabel(_arm_label(arm, result))
    fig.suptitle(f"{title}, {', '.join(_arm_label(arm, result) for arm, result, _ in rows)}", y=1 - 0.12 / height)
    cax = None
    if colorbar:
        span = (height - top - bottom) / height
        cax = fig.add_axes((1 - (right - 0.2) / width, bottom / height + 0.1 * span, 0.12 / width, 0.8 * span))
    return fig, handles, cax


# -- per-model pictures --------------------------------------------------------------------------------


@results_only
def wtw_heatmaps(claim: Claim, run: ClaimRun) -> Figure | None:
    """W^T W (W2 W1 for the untied net) beside the bias b, one panel per sparsity: the paper's picture."""
    untied = any("W2" in seed_arrays(results[0]) for _, results in _arms(run))
    limit = 1.0  # symmetric colour scale, at least [-1, 1] as in the paper
    for _, results in _arms(run):
        arrays = seed_arrays(results[0])
        for k in range(arrays["W"].shape[0] if "W" in arrays else 0):
            limit = max(limit, float(np.nanmax(np.abs(_gram(arrays, k)), initial=0.0)))
    # 255 colours and white: an image of at most 256 colours is embedded as a small palette PNG.
    cmap = matplotlib.colormaps["RdBu_r"].resampled(255).with_extremes(bad="white")

    def draw(ax: Any, arrays: dict[str, np.ndarray], k: int, result: StoredResult) -> Any:
        gram = _gram(arrays, k)  # (n, n)
        n = gram.shape[0]
        grid = np.full((n, n + 2), np.nan)  # a blank column, then the bias
        grid[:, :n] = gram
        grid[:, n + 1] = arrays["b"][k] if "b" in arrays else np.nan
        image = ax.imshow(grid, cmap=cmap, vmin=-limit, vmax=limit, interpolation="none")
        ax.set_xticks([n + 1], ["b"])
        ax.set_yticks([])
        return image

    n = next((seed_arrays(rs[0])["W"].shape[2] for _, rs in _arms(run) if "W" in seed_arrays(rs[0])), 1)
    panel = (1.7, 1.7 * n / (n + 2))  # square cells: n rows, n + 2 columns
    made = _per_model(run, draw, ("$W_2 W_1$" if untied else "$W^{\\top}W$") + " and bias b", panel)
    if made is None:
        return None
    fig, images, cax = made
    fig.colorbar(images[0], cax=cax)
    return fig


def _gram(arrays: dict[str, np.ndarray], k: int) -> np.ndarray:
    W = arrays["W"][k].astype(np.float64)  # (m, n)
    if "W2" in arrays:
        return arrays["W2"][k].astype(np.float64) @ W  # (n, m) @ (m, n) -> (n, n)
    return W.T @ W  # (n, n)


@results_only
def superposition_bars(claim: Claim, run: ClaimRun) -> Figure | None:
    """||W_i|| per feature, coloured by its superposition sum_{j!=i} (W_hat_i . W_j)^2 (zroe1's bars)."""
    arms = _arms(run)
    if not arms:
        return None
    threshold = float(arms[0][1][0].params.get("represented_threshold", 0.5))
    norm = Normalize(0.0, 1.0)
    cmap = matplotlib.colormaps["plasma"]
    longest = max(float(np.nanmax(seed_arrays(rs[0]).get("norms", np.zeros(1)), initial=0.0)) for _, rs in arms)

    def draw(ax: Any, arrays: dict[str, np.ndarray], k: int, result: StoredResult) -> Any:
        norms = np.nan_to_num(arrays["norms"][k].astype(np.float64))  # (n,)
        superposition = np.nan_to_num(arrays["superposition"][k].astype(np.float64))  # (n,)
        # One collection of rectangles rather than n bar patches: a fraction of the drawing time.
        rectangles = [
            ((0.0, i - 0.4), (length, i - 0.4), (length, i + 0.4), (0.0, i + 0.4)) for i, length in enumerate(norms)
        ]
        ax.add_collection(
            PolyCollection(rectangles, facecolors=cmap(norm(np.clip(superposition, 0.0, 1.0))), linewidths=0)
        )
        ax.axvline(threshold, color="#808080", linestyle=":", linewidth=0.8)
        ax.set_xlim(0.0, max(longest, threshold) * 1.05)
        ax.set_ylim(norms.size - 0.5, -0.5)  # feature 0 (most important) on top
        # Few fixed ticks: building tick objects is most of a grid's drawing time.
        ax.set_yticks(range(0, norms.size, max(1, math.ceil(norms.size / 5))))
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.set_xlabel(r"$\|W_i\|$")
        return None

    made = _per_model(run, draw, "Feature norms coloured by superposition", (1.4, 2.2), needs="norms")
    if made is None:
        return None
    fig, _, cax = made
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=cmap), cax=cax, label=r"$\sum_{j \neq i} (\hat{W}_i \cdot W_j)^2$, clipped at 1"
    )
    return fig


@results_only
def feature_vectors_2d(claim: Claim, run: ClaimRun) -> Figure | None:
    """The columns W_i of a model with two hidden dimensions, as arrows in the plane (the intro picture)."""
    arms = _arms(run)
    if not arms or int(arms[0][1][0].params.get("n_hidden", 0)) != 2:
        return None
    cmap = matplotlib.colormaps["viridis"]
    weights = [seed_arrays(rs[0]).get("W", np.zeros((1, 2, 1))) for _, rs in arms]
    longest = max(float(np.nanmax(np.linalg.norm(w, axis=1), initial=0.0)) for w in weights)
    reach = max(longest, 0.1) * 1.15  # one scale for every panel: lengths compare across sparsities

    def draw(ax: Any, arrays: dict[str, np.ndarray], k: int, result: StoredResult) -> Any:
        W = np.nan_to_num(arrays["W"][k].astype(np.float64))  # (2, n)
        n = W.shape[1]
        for i in range(n):
            colour = cmap(i / max(n - 1, 1))
            ax.plot([0.0, W[0, i]], [0.0, W[1, i]], color=colour, linewidth=1.4)
            ax.plot([W[0, i]], [W[1, i]], "o", color=colour, markersize=3)
        ax.set_xlim(-reach, reach)
        ax.set_ylim(-reach, reach)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        return None

    title = "Feature directions $W_i$ in the 2-D hidden space (colour: importance rank)"
    made = _per_model(run, draw, title, (1.6, 1.6), colorbar=False)
    return None if made is None else made[0]


# -- sweep curves across seeds -------------------------------------------------------------------------


def _single_axes(right: float) -> Figure:
    """A 5.6 x 3.4 in figure with fixed margins (inches): no layout engine, so it is drawn once."""
    width, height, left, top, bottom = 5.6, 3.4, 0.75, 0.4, 0.55
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height)
    return fig


def _mean_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and its 95 % t interval per sweep point; (n_seeds, K) in, three (K,) out."""
    finite = np.isfinite(values)
    count = finite.sum(0)  # (K,)
    filled = np.where(finite, values, 0.0)
    mean = np.divide(filled.sum(0), count, out=np.full(count.shape, np.nan), where=count > 0)
    squares = np.where(finite, (values - mean) ** 2, 0.0).sum(0)
    sd = np.sqrt(np.divide(squares, count - 1, out=np.full(count.shape, np.nan), where=count > 1))
    t = np.where(count > 1, stats.t.ppf(0.975, np.maximum(count - 1, 1)), np.nan)
    half = t * sd / np.sqrt(np.maximum(count, 1))
    return mean, mean - half, mean + half


def _sweep_curves(run: ClaimRun) -> list[tuple[str, list[StoredResult], np.ndarray]] | None:
    """Arms whose sweep has more than two points, with x = 1 / (1 - S), sorted by x."""
    arms = [(arm, results, _sweep(results[0])) for arm, results in _arms(run)]
    arms = [(arm, results, sweep) for arm, results, sweep in arms if sweep.size > 2 and np.all(sweep > 0)]
    return arms or None


def _metric_block(results: list[StoredResult], metric: str, k: int) -> np.ndarray:
    rows = []
    for result in results:
        value = result.metrics.get(metric)
        rows.append(value if isinstance(value, list) and len(value) == k else [math.nan] * k)
    return np.asarray(rows, dtype=float)  # (n_seeds, K)


def _curve_axes(ax: Any, claim: Claim) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("1 / (1 − S)   (sparser →)")
    if claim.at is not None and claim.at > 0:
        ax.axvline(1.0 / claim.at, color="#808080", linestyle=":", linewidth=1.0, label=f"claim at {claim.at:g}")


@draws_from("at", "metric", "assertion")
def represented_vs_sparsity(claim: Claim, run: ClaimRun) -> Figure | None:
    """Features with ||W_i|| above the threshold against sparsity: mean over seeds with a 95 % band."""
    arms = _sweep_curves(run)
    if arms is None:
        return None
    fig = _single_axes(right=0.25)
    ax = fig.subplots()
    params = arms[0][1][0].params
    for colour, (arm, results, sweep) in zip(ARM_COLOURS, arms, strict=False):
        order = np.argsort(sweep, kind="stable")[::-1]  # densest first: x = 1/p increasing
        mean, low, high = (a[order] for a in _mean_band(_metric_block(results, "n_represented", sweep.size)))
        x = 1.0 / sweep[order]
        label = f"{'' if arm == 'main' else arm + ': '}mean of {len(results)} seeds, 95% band"
        ax.plot(x, mean, color=colour, marker="o", markersize=3, label=label)
        ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
    ax.axhline(params.get("n_features", math.nan), color="#808080", linewidth=0.8, linestyle="--", label="n (all)")
    ax.axhline(params.get("n_hidden", math.nan), color="#808080", linewidth=0.8, linestyle="-.", label="m (hidden)")
    threshold = getattr(claim.assertion, "threshold", None)
    if claim.metric == "n_represented" and threshold is not None:
        ax.axhline(threshold, color="#b03030", linewidth=1.0, linestyle="--", label=f"claim threshold {threshold:g}")
    _curve_axes(ax, claim)
    ax.set_ylabel(r"represented features ($\|W_i\| >$ threshold)")
    ax.legend(loc="best", frameon=False)
    fig.suptitle("Represented features against sparsity")
    return fig


@draws_from("at")
def dimensionality_vs_sparsity(claim: Claim, run: ClaimRun) -> Figure | None:
    """Dimensions per feature m / ||W||_F^2 and each feature's D_i against 1/(1-S), with the sticky fractions."""
    arms = _sweep_curves(run)
    if arms is None:
        return None
    fig = _single_axes(right=0.45)  # room for the sticky-fraction labels
    ax = fig.subplots()
    for value, label in STICKY:
        ax.axhline(value, color="#c0c0c0", linewidth=0.8, linestyle="--", zorder=1)
        ax.annotate(label, (1.0, value), xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7, color="#606060")  # fmt: skip
    for colour, (arm, results, sweep) in zip(ARM_COLOURS, arms, strict=False):
        x_all = 1.0 / sweep  # (K,)
        for result in results:
            dimensionality = seed_arrays(result).get("dimensionality")  # (K, n)
            if dimensionality is None or dimensionality.shape[0] != sweep.size:
                continue
            shown = np.isfinite(dimensionality) & (dimensionality > 0)  # unrepresented features hold 0
            xs = np.broadcast_to(x_all[:, None], dimensionality.shape)[shown]
            # A raster layer inside the SVG: every seed's every feature as a vector dot would dwarf the page.
            ax.scatter(
                xs, dimensionality[shown], s=5, color=colour, alpha=0.25, linewidths=0, zorder=2, rasterized=True
            )
        order = np.argsort(sweep, kind="stable")[::-1]
        mean, low, high = (a[order] for a in _mean_band(_metric_block(results, "dims_per_feature", sweep.size)))
        prefix = "" if arm == "main" else f"{arm}: "
        label = f"{prefix}$m / \\|W\\|_F^2$, mean of {len(results)} seeds"
        ax.plot(x_all[order], mean, color=colour, linewidth=1.8, label=label)
        ax.fill_between(x_all[order], low, high, color=colour, alpha=0.2, linewidth=0)
    _curve_axes(ax, claim)
    ax.set_ylim(0.0, 1.1)
    ax.set_ylabel(r"dimensions per feature; dots: $D_i$")
    ax.legend(loc="upper right", frameon=False)
    fig.suptitle("Dimensionality against sparsity (sticky fractions dashed)")
    return fig


FIGURES: dict[str, Callable[[Claim, ClaimRun], Figure | None]] = {
    "W^T W and bias": wtw_heatmaps,
    "superposition per feature": superposition_bars,
    "2-D feature vectors": feature_vectors_2d,
    "represented features vs sparsity": represented_vs_sparsity,
    "dimensions per feature vs sparsity": dimensionality_vs_sparsity,
}

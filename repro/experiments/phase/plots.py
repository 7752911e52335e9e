"""Figures of ``phase.one_neuron`` claims for the report: ``FIGURES`` is the experiment's figure mapping.

Each function takes (claim, run), a :class:`repro.judge.ClaimRun` with the stored per-seed results,
and returns a matplotlib ``Figure`` (object API, no pyplot) or None when there is nothing to draw.
Stored arrays per seed (K cells, r-major): r, density, model_class, theory_class (K,), W (K, 1, 2),
b (K, 2), loss (K,), far (K,) bool. The grid is log-spaced on both axes, so each diagram is one
image on axes in log10 units (an image of one pixel per cell stays a small PNG inside the SVG;
10^5 cells drawn as polygons would not), with the theory's boundary drawn on top:
s*(r) = 4 min(1, r) / (2 (1 + r) + 3 min(1, r)), and the line r = 1 above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from repro.claim import Claim
from repro.experiments.phase.experiment import CLASSES
from repro.plotting import results_only, seed_arrays

if TYPE_CHECKING:
    from repro.judge import ClaimRun

__all__ = ["FIGURES", "disagreement_diagram", "empirical_diagram", "theory_diagram"]

MAX_ARMS = 3
NO_MAJORITY = len(CLASSES)  # code of a cell where no class has more than half of the seeds
CLASS_COLOURS = ("#c8c8c8", "#1f4e79", "#d08a2c", "#3f8f4f", "#ffffff")  # CLASSES, then no majority
CLASS_LABELS = ("other", "only feature 1", "only feature 2", "antipodal", "no majority")
#: disagreement codes: agree, disagree near the boundary, disagree far from it
AGREEMENT_COLOURS = ("#e8e8e8", "#f0b37e", "#b03030")
AGREEMENT_LABELS = ("empirical = theory", "differs, near the boundary", "differs, far from the boundary")


def _arms(run: ClaimRun) -> list[tuple[str, list[dict[str, np.ndarray]]]]:
    """(arm, each seed's arrays) for arms whose results carry the phase arrays."""
    arms = []
    for arm, results in run.results.items():
        loaded = [a for a in (seed_arrays(r) for r in results) if "model_class" in a and "r" in a]
        if loaded:
            arms.append((arm, loaded))
    return arms[:MAX_ARMS]


def _axes_of(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The grid's distinct r (n_r,) and densities (n_density,), from the r-major cell arrays."""
    n_density = int(np.count_nonzero(arrays["r"] == arrays["r"][0]))
    return arrays["r"][::n_density], arrays["density"][:n_density]


def _extent(values: np.ndarray) -> tuple[float, float]:
    """Edges in log10 of a log-spaced axis: half a step beyond the first and last centres."""
    logs = np.log10(values)
    half = (logs[-1] - logs[0]) / (2 * (logs.size - 1)) if logs.size > 1 else np.log10(2.0) / 2
    return float(logs[0] - half), float(logs[-1] + half)


def _majority(codes: np.ndarray) -> np.ndarray:
    """(n_seeds, K) class codes -> (K,) the class of more than half of the seeds, else NO_MAJORITY."""
    counts = np.stack([(codes == c).sum(0) for c in range(len(CLASSES))])  # (classes, K)
    return np.where(counts.max(0) * 2 > codes.shape[0], counts.argmax(0), NO_MAJORITY)


def _figure(n_panels: int, legend_rows: int) -> tuple[Figure, list[Any]]:
    """Panels of 3.2 x 2.8 in side by side, at least 5.6 in wide (room for the title and legend, which
    sits below); fixed margins in inches, so no layout engine draws the figure twice."""
    w, h, left, gap, top = 3.2, 2.8, 0.7, 0.35, 0.5
    bottom = 0.65 + 0.2 * legend_rows
    width = max(5.6, left + n_panels * w + (n_panels - 1) * gap + 0.2)
    right = width - left - n_panels * w - (n_panels - 1) * gap
    height = top + h + bottom
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height, wspace=gap / w)  # fmt: skip
    axes = fig.subplots(1, n_panels, squeeze=False, sharex=True, sharey=True)[0]
    return fig, list(axes)


def _draw(ax: Any, grid: np.ndarray, arrays: dict[str, np.ndarray], colours: tuple[str, ...], title: str) -> None:
    """One diagram: grid (n_r, n_density) of codes into ``colours``, density up, r across."""
    r, density = _axes_of(arrays)
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(len(colours) + 1) - 0.5, len(colours))
    ax.imshow(grid.T, origin="lower", cmap=cmap, norm=norm, aspect="auto", interpolation="none",
              extent=(*_extent(r), *_extent(density)))  # fmt: skip
    _boundary(ax, r, density)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("importance r of feature 2 (log)")
    ticks = [t for t in range(-4, 4) if _extent(r)[0] <= t <= _extent(r)[1]]
    ax.set_xticks(ticks, [f"{10.0**t:g}" for t in ticks])
    ticks = [t for t in range(-5, 1) if _extent(density)[0] <= t <= _extent(density)[1] + 1e-9]
    ax.set_yticks(ticks, [f"{10.0**t:g}" for t in ticks])


def _boundary(ax: Any, r: np.ndarray, density: np.ndarray) -> None:
    """The theory's phase boundaries, in log10 units: s*(r), and r = 1 from s*(1) up."""
    rs = np.logspace(*_extent(r), 400)
    low = np.minimum(rs, 1.0)
    ax.plot(np.log10(rs), np.log10(4 * low / (2 * (1 + rs) + 3 * low)), color="black", linewidth=1.0)
    top = _extent(density)[1]
    if _extent(r)[0] < 0 < _extent(r)[1] and np.log10(4 / 7) < top:
        ax.plot([0.0, 0.0], [np.log10(4 / 7), top], color="black", linewidth=1.0)
    ax.set_xlim(*_extent(r))
    ax.set_ylim(*_extent(density))


def _legend(fig: Figure, colours: tuple[str, ...], labels: tuple[str, ...], columns: int) -> None:
    handles = [
        Patch(facecolor=c, edgecolor="#606060", linewidth=0.5, label=t) for c, t in zip(colours, labels, strict=True)
    ]
    handles.append(Patch(facecolor="none", edgecolor="black", label="theory's boundary"))
    fig.legend(handles=handles, loc="lower center", ncol=columns, frameon=False, fontsize=8)


def _arm_title(arm: str, n_seeds: int, what: str) -> str:
    return f"{'' if arm == 'main' else arm + ': '}{what}, {n_seeds} seed{'s' if n_seeds > 1 else ''}"


@results_only
def theory_diagram(claim: Claim, run: ClaimRun) -> Figure | None:
    """The closed-form theory's cheapest solution per cell of the run's grid."""
    arms = _arms(run)
    if not arms:
        return None
    arrays = arms[0][1][0]
    n_r = _axes_of(arrays)[0].size
    fig, (ax,) = _figure(1, legend_rows=2)
    _draw(ax, arrays["theory_class"].reshape(n_r, -1), arrays, CLASS_COLOURS, "theory (closed-form losses)")
    ax.set_ylabel("feature density 1 − S (log)")
    _legend(fig, CLASS_COLOURS[:-1], CLASS_LABELS[:-1], columns=3)
    fig.suptitle("Theoretical phase diagram, n = 2, m = 1")
    return fig


@results_only
def empirical_diagram(claim: Claim, run: ClaimRun) -> Figure | None:
    """The class of more than half of the seeds' models per cell (zroe1's colouring rule)."""
    arms = _arms(run)
    if not arms:
        return None
    fig, axes = _figure(len(arms), legend_rows=2)
    for ax, (arm, seeds) in zip(axes, arms, strict=True):
        n_r = _axes_of(seeds[0])[0].size
        codes = np.stack([a["model_class"] for a in seeds])  # (n_seeds, K)
        _draw(ax, _majority(codes).reshape(n_r, -1), seeds[0], CLASS_COLOURS, _arm_title(arm, len(seeds), "majority"))
    axes[0].set_ylabel("feature density 1 − S (log)")
    _legend(fig, CLASS_COLOURS, CLASS_LABELS, columns=3)
    fig.suptitle("Empirical phase diagram: trained models classified by their weights")
    return fig


@results_only
def disagreement_diagram(claim: Claim, run: ClaimRun) -> Figure | None:
    """Cells whose majority class differs from the theory's, split by distance from the boundary."""
    arms = _arms(run)
    if not arms:
        return None
    fig, axes = _figure(len(arms), legend_rows=2)
    for ax, (arm, seeds) in zip(axes, arms, strict=True):
        n_r = _axes_of(seeds[0])[0].size
        majority = _majority(np.stack([a["model_class"] for a in seeds]))  # (K,)
        differs = majority != seeds[0]["theory_class"]
        codes = np.where(differs, np.where(seeds[0]["far"], 2, 1), 0)
        share = differs[seeds[0]["far"]].mean() if seeds[0]["far"].any() else np.nan
        title = _arm_title(arm, len(seeds), f"majority differs in {share:.0%} of far cells")
        _draw(ax, codes.reshape(n_r, -1), seeds[0], AGREEMENT_COLOURS, title)
    axes[0].set_ylabel("feature density 1 − S (log)")
    _legend(fig, AGREEMENT_COLOURS, AGREEMENT_LABELS, columns=2)
    fig.suptitle("Where the empirical majority differs from the theory")
    return fig


FIGURES: dict[str, Callable[[Claim, ClaimRun], Figure | None]] = {
    "theoretical phase diagram": theory_diagram,
    "empirical phase diagram": empirical_diagram,
    "empirical vs theory": disagreement_diagram,
}

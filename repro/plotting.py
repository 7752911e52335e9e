"""What figure functions read, and how they say so: below both the report and the experiments.

A figure function takes (claim, run), a :class:`repro.judge.ClaimRun` with the stored per-seed
results, and returns a matplotlib Figure or None. The experiments' ``plots.py`` modules use the
helpers here to read a run's stored seeds and mark what they draw from (the report caches a figure
by exactly that: :mod:`repro.report.cache`). Nothing here imports the store, the runner, the judge
or the report, so experiment code never does either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from repro.judge import ClaimRun
    from repro.store import StoredResult

__all__ = ["arms_with_results", "draws_from", "results_only", "seed_arrays"]

F = TypeVar("F", bound=Callable[..., Any])


def draws_from(*claim: str, verdict: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Mark a figure function that reads the stored results and only these fields of the claim and verdict.

    Claims that share a setting share results, so such a figure is drawn once per distinct input in a
    report (the other claims link to it) and cached under that input alone. A function without the
    mark is taken to read the whole claim, its verdict and the scale.
    """

    def mark(function: F) -> F:
        setattr(function, "figure_reads", {"claim": tuple(claim), "verdict": tuple(verdict)})  # noqa: B010
        return function

    return mark


#: A figure function that draws from the stored results alone, never from the claim.
results_only = draws_from()


@functools.lru_cache(maxsize=64)
def _load_arrays(path: Path, mtime_ns: int) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def seed_arrays(result: StoredResult) -> dict[str, np.ndarray]:
    """A stored seed's arrays ({} when it kept none), cached by file and modification time.

    Several figures of a report read the same seed; the cache loads each .npz once.
    """
    npz = result.path.with_suffix(".npz")
    return _load_arrays(npz, npz.stat().st_mtime_ns) if npz.exists() else {}


def arms_with_results(run: ClaimRun, limit: int = 3) -> list[tuple[str, list[StoredResult]]]:
    """(arm, its stored seeds) for the first ``limit`` arms that have any: what a figure draws."""
    return [(arm, results) for arm, results in run.results.items() if results][:limit]

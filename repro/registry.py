"""Experiment name -> (params model, run function, metric names, figure functions).

Every registration happens in one visible place, :mod:`repro.experiments`; a second registration
of a name is refused. An experiment's run function takes validated params, a list of replicate
seeds and a torch device, and returns one :class:`SeedResult` per seed. It may (and the toy models
do) train all seeds at once; each seed's result must not depend on which other seeds share the run.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from repro import numerics
from repro.errors import UnknownExperimentError

__all__ = ["Experiment", "SeedResult", "default_method", "get", "names", "register"]


@dataclass
class SeedResult:
    """What one replicate seed of one experiment produced.

    metrics: name -> float, or list of floats aligned with ``sweep`` (one value per sweep point).
    sweep: the experiment's sweep axis, {axis name: values}; empty when there is none.
    arrays: named arrays kept for figures (saved as .npz, never pickled).
    """

    seed: int
    metrics: dict[str, float | list[float]]
    sweep: dict[str, list[float]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


RunFunction = Callable[[Any, Sequence[int], Any], list[SeedResult]]
#: A figure function takes (claim, judge.ClaimRun) and returns a matplotlib Figure, or None when
#: it has nothing to draw for that claim. The report only lays figures out.
FigureFunction = Callable[..., Any]


@dataclass(frozen=True)
class Experiment:
    name: str
    params: type[BaseModel]
    run: RunFunction
    metrics: tuple[str, ...]
    figures: Mapping[str, FigureFunction] = field(default_factory=dict)
    description: str = ""
    #: Further modules (dotted names) whose code shapes the results, e.g. a shared trainer.
    depends_on: tuple[str, ...] = ()
    #: metric -> "continuous" | "count" | "fraction" | "skewed" (repro.experiments.kinds): the default test.
    metric_kinds: Mapping[str, str] = field(default_factory=dict)

    @property
    def code_version(self) -> str:
        """Hash of the run function's module, its declared dependencies and the numerics level.

        Editing any of them invalidates cached results; a report or figure change does not.
        """
        digest = hashlib.sha256(self.name.encode())
        digest.update(numerics.fingerprint().encode())  # pinned and native results never share a key
        module_names = [self.run.__module__, *self.depends_on]
        for name in module_names:
            digest.update(inspect.getsource(importlib.import_module(name)).encode())
        return digest.hexdigest()[:16]


_REGISTRY: dict[str, Experiment] = {}

#: kind -> (location / paired-difference method, unpaired-difference method)
_DEFAULT_METHODS = {
    "continuous": ("t", "t"),
    "count": ("sign", "permutation"),
    "fraction": ("sign", "permutation"),
    "skewed": ("sign", "permutation"),
}


def default_method(kind: str, *, paired: bool = True) -> str:
    """The test a metric of this kind gets when its claim names none (see repro.experiments.kinds)."""
    location, unpaired = _DEFAULT_METHODS[kind]
    return location if paired else unpaired


def register(experiment: Experiment) -> Experiment:
    if experiment.name in _REGISTRY:
        raise ValueError(f"experiment '{experiment.name}' is registered twice")
    if len(set(experiment.metrics)) != len(experiment.metrics):
        raise ValueError(f"experiment '{experiment.name}' lists a metric twice")
    unkinded = set(experiment.metrics) ^ set(experiment.metric_kinds)
    if unkinded:
        raise ValueError(
            f"experiment '{experiment.name}': metric kinds must cover exactly its metrics: {sorted(unkinded)}"
        )
    bad = {k: v for k, v in experiment.metric_kinds.items() if v not in _DEFAULT_METHODS}
    if bad:
        raise ValueError(f"experiment '{experiment.name}': unknown metric kinds {bad}; use {sorted(_DEFAULT_METHODS)}")
    _REGISTRY[experiment.name] = experiment
    return experiment


def _ensure_loaded() -> None:
    importlib.import_module("repro.experiments")


def get(name: str) -> Experiment:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownExperimentError(f"unknown experiment '{name}' (registered: {known})") from None


def names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)

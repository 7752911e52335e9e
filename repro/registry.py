"""Experiment name -> (params model, run function, metric names, figure functions), from every source.

Experiments come from three places, all seen the same way by the CLI, the pytest plugin, the local
pool, pytest-xdist workers and SLURM jobs (each process discovers them itself):

1. **Entry points** in the group ``repro.experiments``, each naming an :class:`Experiment` object::

       [project.entry-points."repro.experiments"]
       "mypaper.logreg" = "mypaper.experiment:EXPERIMENT"

   The entry's name is the experiment's name. An entry is imported only when its experiment is first
   asked for. This package's own families are entries of the same group (``pyproject.toml``); where an
   installation's metadata lacks them (a checkout put on ``sys.path`` by hand) :data:`BUILTIN` stands in.
   Two distributions offering one name is an error naming both.
2. **A project's own modules**, for a paper's repository that is not installed: ``experiments`` in the
   ``[tool.repro]`` table of its ``pyproject.toml`` (:mod:`repro.project`), and ``REPRO_EXPERIMENTS``
   (set by the CLI's ``--experiments`` for the processes it starts). Each spec is ``module:attribute``
   (an Experiment, or a list of them) or ``module`` (whose import calls :func:`register`, or which
   has ``EXPERIMENT`` / ``EXPERIMENTS``).
3. :func:`register`, called by code that is already running.

Registering the same object again is harmless, and so is a reload of the module that defines it (a
notebook re-running its cell); a different experiment under a taken name is refused with both origins.

An experiment's run function takes validated params, a list of replicate seeds and a torch device,
and returns one :class:`SeedResult` per seed. It may (and the toy models do) train all seeds at once;
each seed's result must not depend on which other seeds share the run. ``repro check-experiment``
(:mod:`repro.check_experiment`) checks this contract; docs/writing-an-experiment.md explains it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from repro import numerics, project
from repro.errors import ExperimentRegistrationError, UnknownExperimentError

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Experiment",
    "Origin",
    "SeedResult",
    "SweepAxis",
    "default_method",
    "unpaired_allowed",
    "get",
    "names",
    "origin",
    "register",
]

ENTRY_POINT_GROUP = "repro.experiments"
#: This package's families, exactly as ``pyproject.toml`` declares them in the entry-point group (a
#: test checks that the two agree). Used only where the installed metadata offers none of them.
BUILTIN: dict[str, str] = {
    "calibration.normal": "repro.experiments.calibration:EXPERIMENT",
    "tms.train": "repro.experiments.tms:EXPERIMENT",
    "phase.one_neuron": "repro.experiments.phase:EXPERIMENT",
    "sae.mnist": "repro.experiments.sae:EXPERIMENT",
    "stall.active_learning": "repro.experiments.stall:EXPERIMENT",
    "subnetworks.split": "repro.experiments.subnetworks:EXPERIMENT",
}
_THIS_DISTRIBUTION = "repro-claims"
DEVICES = ("cpu", "cuda")


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


@dataclass(frozen=True)
class SweepAxis:
    """An experiment's sweep axis, as its results name it, and the params that set its points.

    The loader checks a claim's ``at`` and trend against it before anything runs.
    """

    name: str  # the key of SeedResult.sweep
    fields: tuple[str, ...]  # the params that set the points
    meaning: str  # what a point is, in words
    #: The points from the validated params; None where they are known only once the experiment runs.
    points: Callable[[Any], list[float]] | None
    #: The metrics that hold one value per point (lists); every other metric holds one value per seed.
    per_point: frozenset[str]


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
    #: The devices its full scale runs on, preferred first: ("cuda",) needs a GPU; ("cpu", "cuda") runs
    #: anywhere. The pytest plugin runs a ``[full]`` item where one of them is present, and skips it otherwise.
    devices: tuple[str, ...] = ("cpu", "cuda")
    #: A tiny setting (params) on which ``repro check-experiment`` runs it in seconds on a CPU.
    check_params: Mapping[str, Any] = field(default_factory=dict)
    #: Its sweep axis, so that the loader checks ``at`` and trends before a run (None: not checked).
    sweep: SweepAxis | None = None

    @property
    def code_version(self) -> str:
        """Hash of the run function's module, its declared dependencies and the numerics level.

        Editing any of them invalidates cached results; a report or figure change does not.
        """
        digest = hashlib.sha256(self.name.encode())
        digest.update(numerics.fingerprint().encode())  # pinned and native results never share a key
        module_names = [self.run.__module__, *self.depends_on]
        for name in module_names:
            module = sys.modules.get(name) or importlib.import_module(name)
            digest.update(inspect.getsource(module).encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Origin:
    """Where an experiment came from: the distribution (and version) or module that provides it."""

    how: str  # "entry point", "built-in", "[tool.repro] in PATH", "REPRO_EXPERIMENTS", "register()"
    target: str  # "module:attribute", or the module that called register()
    distribution: str | None = None
    version: str | None = None

    def describe(self) -> str:
        dist = f"{self.distribution} {self.version or ''}".strip() if self.distribution else None
        return f"{dist} ({self.target})" if dist else f"{self.target} ({self.how})"

    def as_dict(self) -> dict[str, str | None]:
        return {"how": self.how, "target": self.target, "distribution": self.distribution, "version": self.version}


_REGISTRY: dict[str, Experiment] = {}
_ORIGINS: dict[str, Origin] = {}
#: name -> the origins that offer it and are not imported yet (more than one: a clash).
_OFFERED: dict[str, list[Origin]] = {}


class _State:
    discovered = False
    local: tuple[str, ...] = ()


#: kind -> (location / paired-difference method, unpaired-difference method)
#: kind -> (the default test, the default unpaired test); None: an unpaired comparison of that kind is
#: refused at load (no unpaired test holds its size on such arms of different shape; docs/statistics.md).
_DEFAULT_METHODS: dict[str, tuple[str, str | None]] = {
    "continuous": ("t", "t"),
    "count": ("sign", None),
    "fraction": ("sign", None),
    "skewed": ("sign", None),
}


def default_method(kind: str, *, paired: bool = True) -> str | None:
    """The test a metric of this kind gets when its claim names none (see repro.experiments.kinds); None for
    an unpaired comparison of a kind that the loader refuses unpaired."""
    location, unpaired = _DEFAULT_METHODS[kind]
    return location if paired else unpaired


def unpaired_allowed(kind: str) -> bool:
    """Whether a metric of this kind may be compared unpaired (a continuous one only)."""
    return _DEFAULT_METHODS[kind][1] is not None


def _validate(experiment: object, where: str) -> Experiment:
    if not isinstance(experiment, Experiment):
        raise ExperimentRegistrationError(f"{where}: not a repro.Experiment but {type(experiment).__name__}")
    name = experiment.name
    if not isinstance(name, str) or not name.strip():
        raise ExperimentRegistrationError(f"{where}: an experiment needs a non-empty name")
    if not (isinstance(experiment.params, type) and issubclass(experiment.params, BaseModel)):
        raise ExperimentRegistrationError(f"experiment '{name}' ({where}): params must be a pydantic BaseModel class")
    if not callable(experiment.run):
        raise ExperimentRegistrationError(f"experiment '{name}' ({where}): run must be callable")
    if not experiment.metrics or len(set(experiment.metrics)) != len(experiment.metrics):
        raise ExperimentRegistrationError(f"experiment '{name}' ({where}): metrics must be non-empty and distinct")
    unkinded = set(experiment.metrics) ^ set(experiment.metric_kinds)
    if unkinded:
        raise ExperimentRegistrationError(
            f"experiment '{name}' ({where}): metric_kinds must give a kind for exactly its metrics "
            f"(one of {sorted(_DEFAULT_METHODS)}); differs on {sorted(unkinded)}"
        )
    bad = {k: v for k, v in experiment.metric_kinds.items() if v not in _DEFAULT_METHODS}
    if bad:
        raise ExperimentRegistrationError(
            f"experiment '{name}' ({where}): unknown metric kinds {bad}; use {sorted(_DEFAULT_METHODS)}"
        )
    devices = tuple(experiment.devices)
    if not devices or set(devices) - set(DEVICES):
        raise ExperimentRegistrationError(
            f"experiment '{name}' ({where}): devices must be some of {list(DEVICES)}, not {list(devices)}"
        )
    return experiment


def _same_code(a: Experiment, b: Experiment) -> bool:
    """The same experiment, possibly from a reloaded module (new function objects, same definitions)."""

    def where(obj: Any) -> tuple[str, str]:
        return getattr(obj, "__module__", ""), getattr(obj, "__qualname__", "")

    return a.name == b.name and where(a.run) == where(b.run) and where(a.params) == where(b.params)


def _caller_module() -> str:
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return str(frame.f_globals.get("__name__", "?")) if frame is not None else "?"


def _add(experiment: Experiment, source: Origin) -> Experiment:
    name = experiment.name
    held = _REGISTRY.get(name)
    if held is not None:
        if held is experiment or held == experiment:
            return held
        if _same_code(held, experiment):  # a reload of the defining module
            _REGISTRY[name] = experiment
            return experiment
        raise ExperimentRegistrationError(
            f"experiment '{name}' is registered twice: by {_describe(name)} and by {source.describe()}"
        )
    offered = [o for o in _OFFERED.get(name, ()) if o.target != source.target]
    if offered:
        raise ExperimentRegistrationError(
            f"experiment '{name}' is registered twice: by {offered[0].describe()} and by {source.describe()}"
        )
    _REGISTRY[name] = experiment
    _ORIGINS[name] = source
    return experiment


def _describe(name: str) -> str:
    held = _ORIGINS.get(name)
    return held.describe() if held is not None else "an earlier registration"


def register(experiment: Experiment) -> Experiment:
    """Register an experiment object (the same object again, or a reload of its module, is harmless)."""
    return _add(_validate(experiment, "register()"), Origin("register()", _caller_module()))


def _offer(name: str, source: Origin) -> None:
    known = _OFFERED.setdefault(name, [])
    if all(o.target != source.target or o.distribution != source.distribution for o in known):
        known.append(source)


def _discover() -> None:
    """Read the entry points (without importing them) and the project's module specs (importing them)."""
    if _State.discovered:
        return
    _State.discovered = True
    ours = False
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(entry, "dist", None)
        dist_name = dist.name if dist is not None else None
        ours |= dist_name == _THIS_DISTRIBUTION
        _offer(entry.name, Origin("entry point", entry.value, dist_name, dist.version if dist is not None else None))
    if not ours:
        from repro._version import __version__

        for name, target in BUILTIN.items():
            _offer(name, Origin("built-in", target, _THIS_DISTRIBUTION, __version__))


def _import(spec: str, how: str, paths: Iterable[str]) -> None:
    for path in paths:
        if path not in sys.path:
            sys.path.insert(0, path)
    module_name, _, attribute = spec.partition(":")
    try:
        before = set(_REGISTRY)
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownExperimentError(f"{how}: cannot import '{module_name}' for experiments: {exc}") from None
    found: Any
    if attribute:
        try:
            found = getattr(module, attribute)
        except AttributeError:
            raise UnknownExperimentError(f"{how}: module '{module_name}' has no attribute '{attribute}'") from None
    else:
        found = getattr(module, "EXPERIMENTS", None) or getattr(module, "EXPERIMENT", None)
        if found is None and set(_REGISTRY) == before:
            raise UnknownExperimentError(
                f"{how}: module '{module_name}' registers no experiment and has no EXPERIMENT or EXPERIMENTS; "
                f"name one as '{module_name}:ATTRIBUTE'"
            )
    items = found if isinstance(found, list | tuple) else [] if found is None else [found]
    for item in items:
        experiment = _validate(item, f"{how}: {spec}")
        _add(experiment, Origin(how, spec if attribute else f"{module_name}:{_attr_name(module, item)}"))


def _attr_name(module: Any, item: object) -> str:
    for key, value in vars(module).items():
        if value is item:
            return key
    return "?"


def _load_local() -> None:
    """Import the project's ``[tool.repro] experiments`` and ``REPRO_EXPERIMENTS`` once per set of specs."""
    here = project.current()
    specs = [(s, f"[tool.repro] in {here.pyproject}", [str(p) for p in here.python_path]) for s in here.experiments]
    specs += [(s, project.ENV_EXPERIMENTS, [str(Path.cwd())]) for s in project.env_specs()]
    key = tuple(s for s, _, _ in specs)
    if key == _State.local:
        return
    _State.local = key
    for spec, how, paths in specs:
        _import(spec, how, paths)


def _ensure_loaded() -> None:
    _discover()
    _load_local()  # cheap when nothing changed; --experiments may set its variable after the first look


def _load_offered(name: str) -> Experiment:
    offered = _OFFERED[name]
    if len(offered) > 1:
        raise ExperimentRegistrationError(
            f"experiment '{name}' is offered by two distributions: {offered[0].describe()} and "
            f"{offered[1].describe()}; uninstall one"
        )
    source = offered[0]
    module_name, _, attribute = source.target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise UnknownExperimentError(
            f"experiment '{name}': its entry point {source.describe()} cannot be loaded: {exc}"
        ) from None
    experiment = _validate(obj, f"entry point {source.describe()}")
    if experiment.name != name:
        raise ExperimentRegistrationError(
            f"entry point '{name}' of {source.describe()} names an experiment called '{experiment.name}': "
            "the entry's name must be the experiment's name"
        )
    _OFFERED.pop(name)
    return _add(experiment, source)


def get(name: str) -> Experiment:
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _OFFERED:
        return _load_offered(name)
    known = names()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownExperimentError(
        f"unknown experiment '{name}'{hint} (registered: {', '.join(known) or 'none'}; an experiment of your own "
        "is an entry point in the 'repro.experiments' group, a [tool.repro] experiments entry, or --experiments)"
    )


def names() -> list[str]:
    """Every experiment name on offer, loaded or not (nothing is imported to list them)."""
    _ensure_loaded()
    return sorted(set(_REGISTRY) | set(_OFFERED))


def origin(name: str) -> Origin | None:
    """Where a (loaded or offered) experiment comes from."""
    _ensure_loaded()
    if name in _ORIGINS and name in _REGISTRY:
        return _ORIGINS[name]
    offered = _OFFERED.get(name)
    return offered[0] if offered else None

"""Run claims x seeds on a device, fill the store, and judge each claim from the store.

A claim at one scale is (arms x replicate seeds) results. ``run_claim`` computes the missing ones
(all of an arm's missing seeds in one experiment call, so batched experiments train them as one
tensor), stores each seed as soon as its call returns, and then calls :func:`evaluate`, which
reads only the store. A killed run therefore resumes where it stopped, and the report and the
pytest items judge exactly what is stored.

:func:`compute` is the unit every executor runs (:mod:`repro.executors`: in-process, a local
process pool, SLURM); it takes each result's store lock first, so runners sharing a store never
compute a result twice.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from repro import provenance, registry, stats
from repro.claim import Claim, Trend
from repro.errors import DeviceUnavailableError
from repro.load import resolve_params
from repro.store import Store, StoredResult, result_key

__all__ = ["ClaimRun", "Computed", "compute", "evaluate", "replicate_seeds", "resolve_device", "run_claim"]

log = logging.getLogger(__name__)
#: Distinct warnings kept in one call's provenance.
MAX_WARNINGS = 20


def replicate_seeds(root: int, n: int) -> list[int]:
    """Replicate seeds from numpy's SeedSequence.spawn: seed i does not change when n grows."""
    children = np.random.SeedSequence(root).spawn(n)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in children]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailableError("--device cuda asked for, but torch sees no CUDA device")
    return device


@dataclass
class ClaimRun:
    """A claim judged at one scale: the verdict and the stored results it rests on."""

    claim: Claim
    scale: str
    verdict: stats.Verdict
    seeds: list[int]
    results: dict[str, list[StoredResult]] = field(default_factory=dict)
    computed: int = 0
    wall_s: float = 0.0

    @classmethod
    def failed(cls, claim: Claim, scale: str, message: str, *, wall_s: float = 0.0, computed: int = 0) -> ClaimRun:
        """The claim judged 'error' without reading the store: a failed experiment or job, or a skipped scale."""
        seeds = replicate_seeds(claim.seed, claim.n_seeds(scale))
        verdict = stats.error_verdict(claim.assertion, message)
        return cls(claim, scale, verdict, seeds, wall_s=wall_s, computed=computed)

    @property
    def skipped(self) -> str | None:
        """Why the claim is not run at this scale (declared ``skip``), or None."""
        return self.claim.skipped(self.scale)

    @property
    def expected(self) -> str:
        return self.claim.expected(self.scale)

    @property
    def as_expected(self) -> bool:
        """The verdict equals the expected one; a declared skip expects nothing and is never a failure."""
        return self.skipped is not None or self.verdict.outcome == self.expected

    @property
    def complete(self) -> bool:
        return all(len(r) == len(self.seeds) for r in self.results.values()) and bool(self.results)

    @property
    def runtime_s(self) -> float:
        """Compute time behind the stored results (each call's wall time shared by its seeds)."""
        total = 0.0
        for results in self.results.values():
            for r in results:
                n_in_call = max(1, len(r.provenance.get("seeds_in_call", [r.seed])))
                total += r.provenance.get("call_wall_time_s", r.runtime_s) / n_in_call
        return total

    def failure_text(self) -> str:
        v = self.verdict
        ci = "n/a" if v.ci_low is None else f"[{v.ci_low:.4g}, {v.ci_high:.4g}] ({v.ci_level:.0%} {v.ci_method})"
        p = "n/a" if v.p_value is None else f"{v.p_value:.3g}"
        est = "n/a" if v.estimate is None else f"{v.estimate:.4g}"
        return (
            f"{self.claim.id} [{self.scale}]: expected {self.expected}, got {v.outcome}\n"
            f"  statement: {self.claim.statement}\n"
            f"  metric:    {self.claim.metric}" + (f" at {self.claim.at:g}" if self.claim.at is not None else "") + "\n"
            f"  estimate:  {est}  CI {ci}  threshold {v.threshold}\n"
            f"  test:      {v.test}  p = {p}  alpha = {v.alpha}  n = {v.n}\n"
            f"  why:       {v.message}"
        )


def _keys(claim: Claim, scale: str, seeds: Sequence[int]) -> dict[str, tuple[object, list[str]]]:
    experiment = registry.get(claim.experiment)
    version = experiment.code_version
    keyed = {}
    for arm in claim.arm_names():
        params = resolve_params(claim, scale, arm)
        dumped = params.model_dump(mode="json")
        keyed[arm] = (params, [result_key(experiment.name, version, dumped, s) for s in seeds])
    return keyed


def _select(claim: Claim, result: StoredResult) -> float | list[float]:
    value = result.metrics[claim.metric]
    if claim.at is None or not isinstance(value, list):
        return value
    if len(result.sweep) != 1:
        raise ValueError(f"claim {claim.id}: 'at' needs an experiment with one sweep axis, got {list(result.sweep)}")
    axis, points = next(iter(result.sweep.items()))
    matches = [i for i, x in enumerate(points) if math.isclose(x, claim.at, rel_tol=1e-9, abs_tol=1e-12)]
    if len(matches) != 1:
        raise ValueError(f"claim {claim.id}: at = {claim.at} is not a point of the sweep {axis} = {points}")
    return value[matches[0]]


def observations(
    claim: Claim, results: dict[str, list[StoredResult]]
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-arm arrays for stats.decide: (n_seeds,) scalars, or (n_seeds, K) along the sweep."""
    values: dict[str, np.ndarray] = {}
    sweep = None
    for arm, arm_results in results.items():
        rows = [_select(claim, r) for r in arm_results]
        array = np.asarray(rows, dtype=float)
        if array.ndim == 2 and array.shape[1] == 1 and not isinstance(claim.assertion, Trend):
            array = array[:, 0]
        values[arm] = array
        if arm_results and arm_results[0].sweep:
            sweep = np.asarray(next(iter(arm_results[0].sweep.values())), dtype=float)
    return values, sweep


def evaluate(claim: Claim, scale: str, store: Store, *, wall_s: float = 0.0, computed: int = 0) -> ClaimRun:
    """Judge a claim from stored results alone; missing seeds make it 'error' (not run).

    A claim whose scale declares ``skip`` is judged on nothing: its verdict says why it is not run.
    """
    if claim.skipped(scale):
        message = f"skipped at scale {scale}: {claim.skipped(scale)}"
        return ClaimRun.failed(claim, scale, message, wall_s=wall_s, computed=computed)
    seeds = replicate_seeds(claim.seed, claim.n_seeds(scale))
    keyed = _keys(claim, scale, seeds)
    results: dict[str, list[StoredResult]] = {}
    for arm, (_, keys) in keyed.items():
        loaded = [store.load(claim.experiment, k) for k in keys]
        results[arm] = [r for r in loaded if r is not None]
    run = ClaimRun(claim, scale, verdict=None, seeds=seeds, results=results, computed=computed, wall_s=wall_s)  # type: ignore[arg-type]
    missing = sum(len(seeds) - len(r) for r in results.values())
    if missing:
        run.verdict = stats.error_verdict(
            claim.assertion, f"not run: {missing} of {len(seeds) * len(results)} results missing at scale {scale}"
        )
        return run
    try:
        values, sweep = observations(claim, results)
        run.verdict = stats.decide(claim.assertion, values, sweep)
    except (ValueError, KeyError) as exc:
        run.verdict = stats.error_verdict(claim.assertion, str(exc))
    return run


@dataclass
class Computed:
    """What one call of :func:`compute` did: results stored, and the experiment's crash if any."""

    computed: int = 0
    error: str | None = None


def _compute_batch(
    experiment: registry.Experiment,
    params: object,
    todo: list[tuple[int, str]],
    done: Computed,
    *,
    store: Store,
    device: str,
    label: str,
    on_progress: Callable[[str], None] | None,
) -> None:
    """One experiment call for these (seed, key)s, counted into ``done``; each seed is stored as soon
    as the call returns, and a crash is recorded in ``done.error``."""
    if on_progress:
        on_progress(f"{label}: {len(todo)} seed(s) on {device}")
    call_started = time.perf_counter()
    try:
        # A warning (a corrupt EXIF header in one ImageNet JPEG, a DataLoader hint) must not turn a
        # two-hour run into an error, even under pytest's warnings-as-errors: it is recorded with the
        # results instead, where the report shows it.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            produced = experiment.run(params, [s for s, _ in todo], device)
    except Exception as exc:  # an experiment crash is a verdict, not a traceback for the user
        log.debug("experiment %s crashed:\n%s", experiment.name, traceback.format_exc())
        done.error = f"{experiment.name} raised {type(exc).__name__}: {exc}"
        return
    call_wall = time.perf_counter() - call_started
    prov = provenance.collect(device, [s for s, _ in todo], call_wall)
    if caught:
        seen = dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)
        prov["warnings"] = [text[:500] for text in list(seen)[:MAX_WARNINGS]]
    if len(produced) != len(todo):
        raise RuntimeError(f"{experiment.name} returned {len(produced)} results for {len(todo)} seeds")
    dumped = params.model_dump(mode="json")  # type: ignore[attr-defined]
    for (seed, key), result in zip(todo, produced, strict=True):
        if result.seed != seed:
            raise RuntimeError(f"{experiment.name} returned seed {result.seed} where {seed} was asked")
        store.save(
            experiment.name,
            key,
            params=dumped,
            seed=seed,
            metrics=result.metrics,
            sweep=result.sweep,
            arrays=result.arrays,
            provenance=prov,
            runtime_s=call_wall / len(todo),
        )
    done.computed += len(todo)


def compute(
    claim: Claim,
    scale: str,
    *,
    store: Store,
    device: str = "auto",
    seeds: Sequence[int] | None = None,
    force: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> Computed:
    """Store what the store lacks for these replicate seeds of the claim (all, by default).

    Safe with other runners on the same store: an arm's missing seeds whose locks are free are
    computed in one experiment call; seeds another runner holds are waited for, and computed here
    only if that runner died before storing them. ``force`` recomputes the seeds this runner locks.
    """
    device = resolve_device(device)
    experiment = registry.get(claim.experiment)
    all_seeds = replicate_seeds(claim.seed, claim.n_seeds(scale))
    if seeds is not None:
        unknown = set(seeds) - set(all_seeds)
        if unknown:
            raise ValueError(f"claim {claim.id} at scale {scale} has no replicate seed(s) {sorted(unknown)}")
        chosen = set(seeds)
        all_seeds = [s for s in all_seeds if s in chosen]
    done = Computed()
    if claim.skipped(scale):  # declared not runnable at this scale: nothing to compute
        return done
    for arm, (params, keys) in _keys(claim, scale, all_seeds).items():
        todo = [(s, k) for s, k in zip(all_seeds, keys, strict=True) if force or not store.has(experiment.name, k)]
        if not todo:
            continue
        label = claim.id if arm == "main" else f"{claim.id} arm {arm}"
        batch = functools.partial(
            _compute_batch, experiment, params, done=done, store=store, device=device, label=label,
            on_progress=on_progress,
        )  # fmt: skip
        # Pass 1: the seeds no other runner is computing.
        with store.locked(experiment.name, [k for _, k in todo], wait=False) as held:
            mine = [(s, k) for s, k in todo if k in held and (force or not store.has(experiment.name, k))]
            if mine:
                batch(mine)
        # Pass 2: wait for the runners that hold the rest; compute what a crashed one left.
        others = [(s, k) for s, k in todo if k not in held]
        if others and not done.error:
            if on_progress:
                on_progress(f"{label}: waiting for another runner on {len(others)} seed(s)")
            with store.locked(experiment.name, [k for _, k in others], wait=True):
                left = [(s, k) for s, k in others if not store.has(experiment.name, k)]
                if left:
                    batch(left)
        if done.error:
            return done
    return done


def run_claim(
    claim: Claim,
    scale: str,
    *,
    store: Store,
    device: str = "auto",
    force: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> ClaimRun:
    """Compute what the store lacks for this claim (or everything, with force), then evaluate.

    In-process, on one device; :func:`repro.executors.run_claims` spreads many claims over a
    process pool or a SLURM cluster.
    """
    started = time.perf_counter()
    done = compute(claim, scale, store=store, device=device, force=force, on_progress=on_progress)
    if done.error:
        return ClaimRun.failed(claim, scale, done.error, wall_s=time.perf_counter() - started, computed=done.computed)
    return evaluate(claim, scale, store, wall_s=time.perf_counter() - started, computed=done.computed)

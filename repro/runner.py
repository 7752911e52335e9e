"""Run claims x seeds on a device and fill the store; judging is :mod:`repro.judge`'s.

A claim at one scale is (arms x replicate seeds) results. ``run_claim`` computes the missing ones
(all of an arm's missing seeds in one experiment call, so batched experiments train them as one
tensor), stores each seed as soon as its call returns, and then calls :func:`repro.judge.evaluate`,
which reads only the store. A killed run therefore resumes where it stopped, and the report and the
pytest items judge exactly what is stored.

:func:`compute` is the unit every executor runs (:mod:`repro.executors`: in-process, a local
process pool, SLURM); it takes each result's store lock first, so runners sharing a store never
compute a result twice.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from repro import numerics, provenance, registry
from repro.claim import Claim
from repro.errors import DeviceUnavailableError
from repro.judge import ClaimRun, evaluate, keys_of, replicate_seeds, sequential_state
from repro.store import Store
from repro.workers import cores

__all__ = ["Computed", "compute", "resolve_device", "run_claim"]

log = logging.getLogger(__name__)
#: Distinct warnings kept in one call's provenance.
MAX_WARNINGS = 20


def resolve_device(device: str, devices: Sequence[str] = ("cpu", "cuda")) -> str:
    """'auto' is CUDA where torch sees it and the experiment runs there (its ``devices``), else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() and "cuda" in devices else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailableError("--device cuda asked for, but torch sees no CUDA device")
    return device


@dataclass
class Computed:
    """What one call of :func:`compute` did: results stored, and the experiment's crash if any."""

    computed: int = 0
    error: str | None = None


def _compute_batch(
    experiment: registry.Experiment,
    params: BaseModel,
    todo: list[tuple[int, str]],
    done: Computed,
    *,
    store: Store,
    device: str,
    label: str,
    on_progress: Callable[[str], None] | None,
    claims_file: str | None = None,
) -> None:
    """One experiment call for these (seed, key)s, counted into ``done``; each seed is stored as soon
    as the call returns, and a crash is recorded in ``done.error``."""
    if on_progress:
        on_progress(f"{label}: {len(todo)} seed(s) on {device}")
    call_started = time.perf_counter()
    try:
        numerics.check()  # the kernels every CPU of the pinned level runs, or a clear error
        # A warning (a corrupt EXIF header in one ImageNet JPEG, a DataLoader hint) must not turn a
        # two-hour run into an error, even under pytest's warnings-as-errors: it is recorded with the
        # results instead, where the report shows it. On a CPU the call runs one intra-op thread and
        # spreads its seeds over this worker's share of the cores (under pytest -n N, with those of
        # workers that have finished), so its results do not depend on the thread count.
        with (
            warnings.catch_warnings(record=True) as caught,
            numerics.computing(cores(), device.split(":")[0]),
        ):
            warnings.simplefilter("always")
            produced = experiment.run(params, [s for s, _ in todo], device)
    except Exception as exc:  # an experiment crash is a verdict, not a traceback for the user
        log.debug("experiment %s crashed:\n%s", experiment.name, traceback.format_exc())
        done.error = f"{experiment.name} raised {type(exc).__name__}: {exc}"
        return
    call_wall = time.perf_counter() - call_started
    prov = provenance.collect(device, [s for s, _ in todo], call_wall)
    prov.update(provenance.user_code(experiment.name, claims_file))
    if caught:
        seen = dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)
        prov["warnings"] = [text[:500] for text in list(seen)[:MAX_WARNINGS]]
    if len(produced) != len(todo):
        raise RuntimeError(f"{experiment.name} returned {len(produced)} results for {len(todo)} seeds")
    dumped = params.model_dump(mode="json")
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
    family_size: int = 1,
) -> Computed:
    """Store what the store lacks for these replicate seeds of the claim (all, by default).

    A sequential claim without explicit ``seeds`` is computed a batch at a time until its verdict
    (within a family of ``family_size``) is decided or its seeds are spent.

    Safe with other runners on the same store: an arm's missing seeds whose locks are free are
    computed in one experiment call; seeds another runner holds are waited for, and computed here
    only if that runner died before storing them. ``force`` recomputes the seeds this runner locks.
    """
    experiment = registry.get(claim.experiment)
    device = resolve_device(device, experiment.devices)
    if claim.sequential is not None and seeds is None and not claim.skipped(scale):
        return _compute_sequential(claim, scale, store=store, device=device, force=force, on_progress=on_progress,
                                   family_size=family_size)  # fmt: skip
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
    for arm, (params, keys) in keys_of(claim, scale, all_seeds).items():
        todo = [(s, k) for s, k in zip(all_seeds, keys, strict=True) if force or not store.has(experiment.name, k)]
        if not todo:
            continue
        label = claim.id if arm == "main" else f"{claim.id} arm {arm}"
        batch = functools.partial(
            _compute_batch, experiment, params, done=done, store=store, device=device, label=label,
            on_progress=on_progress, claims_file=claim.declared_in,
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


def _compute_sequential(claim: Claim, scale: str, *, store: Store, device: str, force: bool,
                        on_progress: Callable[[str], None] | None, family_size: int) -> Computed:  # fmt: skip
    """Batches of a sequential claim's seeds until :attr:`repro.judge.SequentialState.wanted` asks for no more.

    ``force`` recomputes the seeds already stored once, then the run goes on from the fresh ones.
    """
    cap = replicate_seeds(claim.seed, claim.n_seeds(scale))
    total = Computed()
    state = sequential_state(claim, scale, store, family_size)
    if force and state.stored:
        total = compute(claim, scale, store=store, device=device, seeds=cap[: state.stored], force=True,
                        on_progress=on_progress)  # fmt: skip
        state = sequential_state(claim, scale, store, family_size)
    while not total.error and state.wanted > state.stored:  # undecided, seeds left
        if on_progress:
            on_progress(f"{claim.id}: sequential, {state.stored} seeds undecided; up to {state.wanted} of {len(cap)}")
        step = compute(claim, scale, store=store, device=device, seeds=cap[: state.wanted], on_progress=on_progress)
        total = Computed(total.computed + step.computed, step.error)
        before, state = state.stored, sequential_state(claim, scale, store, family_size)
        if state.stored <= before:  # nothing landed: never spin
            break
    return total


def run_claim(
    claim: Claim,
    scale: str,
    *,
    store: Store,
    device: str = "auto",
    force: bool = False,
    on_progress: Callable[[str], None] | None = None,
    family_size: int = 1,
) -> ClaimRun:
    """Compute what the store lacks for this claim (or everything, with force), then evaluate.

    In-process, on one device; :func:`repro.executors.run_claims` spreads many claims over a
    process pool or a SLURM cluster.
    """
    started = time.perf_counter()
    done = compute(claim, scale, store=store, device=device, force=force, on_progress=on_progress,
                   family_size=family_size)  # fmt: skip
    if done.error:
        return ClaimRun.failed(claim, scale, done.error, wall_s=time.perf_counter() - started, computed=done.computed)
    return evaluate(claim, scale, store, wall_s=time.perf_counter() - started, computed=done.computed,
                    family_size=family_size)  # fmt: skip

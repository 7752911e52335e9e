"""The job, and the executor that runs jobs on this machine (see :mod:`repro.executors`).

:class:`Job` (some replicate seeds of one claim at one scale), :class:`JobOutcome`, the
:class:`Executor` protocol, :func:`run_job` (the unit of work on any executor: compute the job's
missing results into the store) and :class:`LocalExecutor`: in this process on one device, or a
spawned process pool with one worker per device. These are what runs a job anywhere: in this
process, in a pool worker, and on a SLURM node (which spreads its seeds over its GPUs with the same
pool). Planning jobs and talking to SLURM are in :mod:`repro.executors`, which re-exports every
name here.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from repro import runner
from repro.claim import Claim
from repro.errors import ReproError
from repro.store import Store
from repro.workers import environment_for_workers, set_cores

__all__ = ["Executor", "Job", "JobOutcome", "LocalExecutor", "run_job"]

Progress = Callable[[str], None]
Done = Callable[["JobOutcome"], None]


@dataclass(frozen=True)
class Job:
    """Some replicate seeds of one claim at one scale (every arm of those seeds)."""

    claim: Claim
    scale: str
    seeds: tuple[int, ...]
    force: bool = False

    @property
    def label(self) -> str:
        return f"{self.claim.id} [{self.scale}] {len(self.seeds)} seed(s)"


@dataclass
class JobOutcome:
    job: Job
    computed: int = 0
    error: str | None = None
    wall_s: float = 0.0


class Executor(Protocol):
    name: str

    def run(
        self, jobs: Sequence[Job], store: Store, *, on_progress: Progress | None = None, on_done: Done | None = None
    ) -> list[JobOutcome]:
        """Run every job to the end (stored, or failed with a message); outcomes in job order."""
        ...


def run_job(job: Job, store_root: str | Path, device: str | None = None, on_progress: Progress | None = None):
    """The unit of work on any executor: compute the job's missing results into the store."""
    started = time.perf_counter()
    done = runner.compute(
        job.claim,
        job.scale,
        store=Store(store_root),
        device=device or _WORKER_DEVICE or "auto",
        seeds=job.seeds,
        force=job.force,
        on_progress=on_progress,
    )
    return JobOutcome(job, computed=done.computed, error=done.error, wall_s=time.perf_counter() - started)


# -- local -------------------------------------------------------------------------------------------

_WORKER_DEVICE: str | None = None


def _init_worker(devices: Any, threads: int) -> None:
    """Process-pool initializer: take one device for the life of this worker."""
    global _WORKER_DEVICE
    import torch

    _WORKER_DEVICE = devices.get()
    if _WORKER_DEVICE.startswith("cuda:"):
        torch.cuda.set_device(int(_WORKER_DEVICE.split(":")[1]))
    set_cores(threads)  # spread over a call's seeds (repro.numerics.computing), not torch's intra-op threads


class LocalExecutor:
    """This machine: in-process on one device; a process pool with one worker per device otherwise.

    ``device`` "auto" or "cuda" with several GPUs visible gives one worker per GPU. ``workers`` sets
    the pool size (on the CPU, or several workers sharing GPUs round robin); 1 means in-process.
    """

    name = "local"

    def __init__(self, device: str = "auto", workers: int | None = None):
        if workers is not None and workers < 1:
            raise ValueError("workers must be at least 1")
        self.device = device
        self.workers = workers

    def devices(self) -> list[str]:
        import torch

        device = runner.resolve_device(self.device)
        n_gpus = torch.cuda.device_count() if device == "cuda" else 0
        if n_gpus > 1:
            return [f"cuda:{i % n_gpus}" for i in range(self.workers or n_gpus)]
        return [device] * (self.workers or 1)

    def run(
        self, jobs: Sequence[Job], store: Store, *, on_progress: Progress | None = None, on_done: Done | None = None
    ) -> list[JobOutcome]:
        devices = self.devices()
        if len(devices) == 1 or len(jobs) <= 1:
            outcomes = []
            for job in jobs:  # in-process: exceptions reach the caller, as with run_claim
                outcomes.append(run_job(job, store.root, devices[0], on_progress))
                if on_done:
                    on_done(outcomes[-1])
            return outcomes
        return self._pool(jobs, store, devices, on_progress, on_done)

    def _pool(self, jobs, store, devices, on_progress, on_done) -> list[JobOutcome]:
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        queue = context.Queue()
        for device in devices:
            queue.put(device)
        workers = min(len(devices), len(jobs))
        threads = max(1, (os.cpu_count() or 1) // workers)
        outcomes: list[JobOutcome | None] = [None] * len(jobs)
        root = str(Path(store.root).resolve())
        if on_progress:
            on_progress(f"{len(jobs)} jobs on {workers} workers ({', '.join(devices[:workers])})")
        with (
            environment_for_workers(workers),
            concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(queue, threads)
            ) as pool,
        ):
            futures = {pool.submit(run_job, job, root): i for i, job in enumerate(jobs)}
            for future in concurrent.futures.as_completed(futures):
                index = futures[future]
                try:
                    outcome = future.result()
                except ReproError:
                    raise
                except Exception as exc:  # a worker that died (OOM, a signal) or a bug: this job fails
                    outcome = JobOutcome(
                        jobs[index], error=f"job failed on the local pool: {type(exc).__name__}: {exc}"
                    )
                outcomes[index] = outcome
                if on_done:
                    on_done(outcome)
        return [o for o in outcomes if o is not None]

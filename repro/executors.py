"""Where (claim, scale, seeds) jobs run: in this process, a local process pool, or a SLURM cluster.

A job computes what the store lacks for some replicate seeds of one claim at one scale and
writes each result into the store itself (:func:`repro.runner.compute`). The store is the only
place jobs meet: nothing is sent back but a count and an error message, a finished result is never
computed again (every job checks the store under the result's file lock), and a crashed or
pre-empted job is simply run again. After the jobs, every claim is judged from the store alone.

Executors:

``local`` (default)
    One device (the CPU, or one GPU): every job in this process, one after another, which is
    exactly :func:`repro.runner.run_claim`. Several GPUs (or ``workers > 1``): a process pool
    with one worker per device, each worker pinned to its device.
``slurm``
    One SLURM job per job through submitit (one job array), each on ``gpus_per_job`` GPUs; a job
    that gets several GPUs spreads its seeds over them with the local pool. Pre-empted jobs are
    requeued (submitit checkpointing) and resume from the store. Job states come from squeue, so a
    cluster without accounting storage works too. ``cluster="local"`` runs the same path with
    submitit's local executor, which is how it is tested without a cluster.

This module plans jobs, runs them and judges the claims (:func:`run_claims`), and holds the SLURM
executor; :class:`Job`, :func:`run_job` and :class:`LocalExecutor` are in
:mod:`repro.executors_local`, re-exported here.
"""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import submitit

from repro import judge, stats
from repro.claim import Claim
from repro.errors import ReproError
from repro.executors_local import Done, Executor, Job, JobOutcome, LocalExecutor, Progress, run_job
from repro.registry import get as get_experiment
from repro.store import Store

__all__ = [
    "ClusterUnavailableError",
    "Executor",
    "Job",
    "JobOutcome",
    "LocalExecutor",
    "SlurmExecutor",
    "plan_jobs",
    "run_claims",
    "run_job",
]

log = logging.getLogger(__name__)


class ClusterUnavailableError(ReproError):
    """--executor slurm on a machine that is not a SLURM login node (no srun / sbatch)."""

    exit_code = 2


# -- planning ----------------------------------------------------------------------------------------


def plan_jobs(
    claims: Sequence[Claim],
    scale: str,
    store: Store,
    *,
    seeds_per_job: int = 0,
    force: bool = False,
    wanted: dict[str, int] | None = None,
) -> tuple[list[Job], dict[str, list[int]]]:
    """Jobs for the seeds the store lacks (every seed, with force), and for each claim the jobs it waits on.

    Claims that share a setting share results: a seed whose results an earlier job already computes
    gets no second job, and the later claim waits on the earlier job. ``seeds_per_job`` 0 puts all of
    a claim's seeds in one job (batched experiments train them as one tensor); 1 is one job per seed.
    ``wanted``: claim id -> how many of its seeds (a prefix) to plan for; all of them by default.
    """
    if seeds_per_job < 0:
        raise ValueError("seeds_per_job must be 0 (all of a claim's seeds in one job) or more")
    jobs: list[Job] = []
    owner: dict[tuple[str, str], int] = {}  # (experiment, key) -> index of the job that computes it
    waits_on: dict[str, list[int]] = {}
    for claim in claims:
        if claim.skipped(scale):  # declared not runnable at this scale: no job, judged as skipped
            waits_on[claim.id] = []
            continue
        experiment = get_experiment(claim.experiment).name
        seeds = judge.replicate_seeds(claim.seed, claim.n_seeds(scale))
        if wanted is not None and claim.id in wanted:
            seeds = seeds[: wanted[claim.id]]
        keyed = judge.keys_of(claim, scale, seeds)
        needed: dict[int, list[tuple[str, str]]] = {}
        depends: set[int] = set()
        for _, keys in keyed.values():
            for seed, key in zip(seeds, keys, strict=True):
                item = (experiment, key)
                if item in owner:
                    depends.add(owner[item])
                elif force or not store.has(experiment, key):
                    needed.setdefault(seed, []).append(item)
        todo = [s for s in seeds if s in needed]
        size = seeds_per_job or max(1, len(todo))
        own = []
        for start in range(0, len(todo), size):
            batch = tuple(todo[start : start + size])
            index = len(jobs)
            jobs.append(Job(claim, scale, batch, force))
            own.append(index)
            for seed in batch:
                for item in needed[seed]:
                    owner[item] = index
        waits_on[claim.id] = own + sorted(depends - set(own))
    return jobs, waits_on


def _wanted(claim: Claim, scale: str, store: Store, sizes: dict[str, int], force: bool) -> int:
    """A sequential claim's first round: its next batch, or (force) the prefix stored now, recomputed."""
    state = judge.sequential_state(claim, scale, store, sizes.get(claim.id, 1))
    if force:
        return state.stored or min(state.batch, len(state.seeds))
    return state.wanted


def run_claims(
    claims: Sequence[Claim],
    scale: str,
    *,
    store: Store,
    executor: Executor | None = None,
    force: bool = False,
    seeds_per_job: int = 0,
    on_plan: Callable[[list[Job]], None] | None = None,
    on_progress: Progress | None = None,
    on_done: Done | None = None,
    family_sizes: dict[str, int] | None = None,
) -> list[judge.ClaimRun]:
    """Plan the missing jobs, run them on the executor, then judge every claim from the store.

    Sequential claims take rounds: each round plans their next batch of seeds (within their family
    of ``family_sizes[id]``, 1 by default), until each is decided, spent or failed.
    """
    executor = executor or LocalExecutor()
    sizes = family_sizes or {}
    sequential = [c for c in claims if c.sequential is not None and not c.skipped(scale)]
    wanted = {c.id: _wanted(c, scale, store, sizes, force) for c in sequential}
    jobs, waits_on = plan_jobs(claims, scale, store, seeds_per_job=seeds_per_job, force=force, wanted=wanted)
    if on_plan:
        on_plan(jobs)
    outcomes = executor.run(jobs, store, on_progress=on_progress, on_done=on_done) if jobs else []
    mine_of = {c.id: [outcomes[i] for i in waits_on[c.id]] for c in claims}
    while sequential:  # the next batch of each sequential claim not yet decided, spent or failed
        sequential = [c for c in sequential if not any(o.error for o in mine_of[c.id])]
        wanted = {c.id: judge.seeds_wanted(c, scale, store, sizes.get(c.id, 1)) for c in sequential}
        jobs, waits_on = plan_jobs(sequential, scale, store, seeds_per_job=seeds_per_job, wanted=wanted)
        if not jobs:
            break
        if on_plan:
            on_plan(jobs)
        outcomes = executor.run(jobs, store, on_progress=on_progress, on_done=on_done)
        for c in sequential:
            mine_of[c.id] += [outcomes[i] for i in waits_on[c.id]]
    runs = []
    for claim in claims:
        mine = mine_of[claim.id]
        own = [o for o in mine if o.job.claim.id == claim.id]
        wall = sum(o.wall_s for o in own)
        computed = sum(o.computed for o in own)
        errors = [o.error for o in own if o.error]
        if errors:
            runs.append(judge.ClaimRun.failed(claim, scale, errors[0], wall_s=wall, computed=computed))
            continue
        run = judge.evaluate(claim, scale, store, wall_s=wall, computed=computed, family_size=sizes.get(claim.id, 1))
        shared_errors = [f"{o.job.claim.id}: {o.error}" for o in mine if o.error]
        if run.verdict.outcome == "error" and shared_errors:  # a job it shares results with failed
            run.verdict = stats.error_verdict(claim.assertion, f"{run.verdict.message}; {shared_errors[0]}")
        runs.append(run)
    return runs


# -- SLURM through submitit ----------------------------------------------------------------------------


def _submitit_job(job: Job, store_root: str, device: str) -> JobOutcome:
    """Runs on the cluster node. Several GPUs allocated: split the seeds over them with the local pool."""
    import torch

    n_gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    if n_gpus > 1 and len(job.seeds) > 1:
        per = -(-len(job.seeds) // n_gpus)
        parts = [Job(job.claim, job.scale, job.seeds[i : i + per], job.force) for i in range(0, len(job.seeds), per)]
        outcomes = LocalExecutor("cuda", workers=min(n_gpus, len(parts))).run(parts, Store(store_root))
        errors = [o.error for o in outcomes if o.error]
        computed, wall_s = sum(o.computed for o in outcomes), max(o.wall_s for o in outcomes)
        return JobOutcome(job, computed=computed, error=errors[0] if errors else None, wall_s=wall_s)
    return run_job(job, store_root, device)


def _last_line(exc: BaseException) -> str:
    """The exception line of a failed job's traceback (submitit wraps it between dashed rules)."""
    text = str(exc)
    parts = text.split("-" * 22)
    trace = parts[1] if len(parts) > 2 else text
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class _ReproJob(submitit.helpers.Checkpointable):
    """On pre-emption or timeout submitit requeues the same call; it resumes from the store."""

    def __call__(self, job: Job, store_root: str, device: str) -> JobOutcome:
        return _submitit_job(job, store_root, device)


@dataclass(kw_only=True)
class SlurmExecutor:
    """One SLURM job per :class:`Job` (a job array), submitted with submitit.

    ``folder`` holds submitit's pickles and each job's stdout/stderr (default: ``<store>/jobs``).
    ``cluster`` "slurm" on a cluster; "local" runs the same jobs as local subprocesses (tests).
    Waiting, it asks the queue (:func:`_queue_states`) after 1, 2, 4, ... s, then every ``poll_s``: a
    job over without a result for ``result_grace_s`` is an error naming its log.
    """

    name = "slurm"
    partition: str | None = None
    gpus_per_job: int = 1
    timeout_min: int = 240
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    max_parallel: int | None = None
    folder: str | Path | None = None
    device: str = "auto"
    cluster: str = "slurm"
    poll_s: float = 15.0
    result_grace_s: float = 15.0  # how long a finished job's result may take to reach the shared file system
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.gpus_per_job < 0:
            raise ValueError("gpus_per_job must be 0 or more")

    def _executor(self, store: Store):
        folder = Path(self.folder) if self.folder else Path(store.root) / "jobs"
        try:
            executor = submitit.AutoExecutor(folder=folder.resolve() / "%j", cluster=self.cluster)
        except RuntimeError as exc:  # submitit: no srun/sbatch here
            raise ClusterUnavailableError(f"--executor {self.name}: {exc}") from None
        params: dict[str, Any] = {"name": "repro", "timeout_min": self.timeout_min, "gpus_per_node": self.gpus_per_job}
        params["tasks_per_node"] = 1
        optional = {"cpus_per_task": self.cpus_per_job, "mem_gb": self.mem_gb, "slurm_partition": self.partition}
        optional["slurm_array_parallelism"] = self.max_parallel
        params.update({key: value for key, value in optional.items() if value}, **self.extra)
        executor.update_parameters(**params)
        return executor

    def submit(self, jobs: Sequence[Job], store: Store) -> list[Any]:
        """Submit every job (one array) and return submitit's job handles without waiting."""
        executor = self._executor(store)
        root = str(Path(store.root).resolve())
        device = self.device if self.gpus_per_job or self.device != "auto" else "cpu"
        task = _ReproJob()
        with executor.batch():
            handles = [executor.submit(task, job, root, device) for job in jobs]
        return handles

    def run(
        self, jobs: Sequence[Job], store: Store, *, on_progress: Progress | None = None, on_done: Done | None = None
    ) -> list[JobOutcome]:
        handles = self.submit(jobs, store)
        if on_progress and handles:
            on_progress(f"{len(handles)} {self.cluster} jobs submitted ({handles[0].job_id.split('_')[0]})")
        outcomes: list[JobOutcome | None] = [None] * len(jobs)
        ended_at: dict[int, float]  # job index -> when the queue first reported it ended
        waiting, ended_at, delay = dict(enumerate(handles)), {}, min(1.0, self.poll_s)
        while waiting:
            states = _queue_states() if self.cluster == "slurm" else None
            for i, handle in list(waiting.items()):
                state = None if states is None else states.get(handle.job_id, "GONE")
                if handle.paths.result_pickle.exists() or (self.cluster != "slurm" and handle.done()):
                    outcomes[i] = self._outcome(jobs[i], handle)
                elif state not in _ENDED:  # queued, running or requeued (None: the queue did not answer)
                    if state:
                        ended_at.pop(i, None)
                    continue
                elif time.monotonic() - ended_at.setdefault(i, time.monotonic()) < self.result_grace_s:
                    continue  # over: its result may still be on its way through the shared file system
                else:
                    outcomes[i] = self._outcome(jobs[i], handle, ended=state)
                del waiting[i]
                if on_done:
                    on_done(cast(JobOutcome, outcomes[i]))  # set by whichever branch reached here
            if waiting:
                time.sleep(delay)
                delay = min(self.poll_s, 2 * delay)
        return [o for o in outcomes if o is not None]

    def _outcome(self, job: Job, handle: Any, ended: str | None = None) -> JobOutcome:
        """The job's own outcome; an error naming its log when it failed, or ``ended`` without a result."""
        name, log_path = f"{self.cluster} job {handle.job_id}", Path(handle.paths.stderr)
        if ended is None:
            try:
                return handle.result()
            except Exception as exc:  # crashed, cancelled, out of time or memory: run again to resume
                return JobOutcome(job, error=f"{name} failed: {_last_line(exc)} (log: {log_path})")
        text = log_path.read_text(errors="replace") if log_path.is_file() else ""
        lines = [x.strip() for x in text.splitlines() if x.strip()]  # SLURM's "*** JOB 7 ON n1 CANCELLED AT ..."
        why = next((f": {x}" for x in reversed(lines) if "***" in x), f": {lines[-1]}" if lines else "")
        state = "no longer in the queue" if ended == "GONE" else ended
        why = f"({state}: cancelled, out of time or memory, or its node lost){why}"
        return JobOutcome(job, error=f"{name} ended without a result {why} (log: {log_path})")


#: squeue states of a job that is over (GONE: no longer listed); a requeued job is PENDING or REQUEUED again.
_ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "GONE", "NODE_FAIL", "OUT_OF_MEMORY"}
_ENDED |= {"PREEMPTED", "REVOKED", "TIMEOUT"}


def _queue_states() -> dict[str, str] | None:
    """This user's jobs in SLURM's queue, job id -> state (ended ones for MinJobAge); None: no answer.

    Not sacct (submitit's way): without accounting storage it fails, and a job that wrote no result never ends.
    """
    user = pwd.getpwuid(os.getuid()).pw_name
    command = ["squeue", f"--user={user}", "--noheader", "--array", "--states=all", "--format=%i|%T"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("squeue gave no job states (%s); waiting for it", exc)
        return None
    return dict(line.strip().split("|", 1) for line in out.splitlines() if "|" in line)

"""Executors: jobs planned from the store, run in-process, on a process pool, or through submitit
(its local executor stands in for SLURM); two runners sharing one store never duplicate a result."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from repro import registry
from repro.cli import app
from repro.executors import (
    ClusterUnavailableError,
    Job,
    JobOutcome,
    LocalExecutor,
    SlurmExecutor,
    plan_jobs,
    run_claims,
)
from repro.judge import evaluate, replicate_seeds
from repro.load import load_claims
from repro.runner import run_claim
from repro.store import Store

from .helpers import SOURCES, claim_text, write_claims

REPO = Path(__file__).resolve().parents[1]


def _results(root: Path) -> list[Path]:
    return [p for p in root.glob("results/*/*/*.json") if not p.name.startswith(".tmp-")]


@pytest.fixture
def claim(tmp_path):
    return load_claims(write_claims(tmp_path / "claims", claim_text())).get("demo.mean-positive")


@pytest.fixture
def twins(tmp_path):
    """Two claims on the same setting (their results are shared), one on another."""
    body = (
        claim_text()
        + claim_text().replace("demo.mean-positive", "demo.twin")
        + claim_text(mean=2.0).replace("demo.mean-positive", "demo.other")
    )
    return list(load_claims(write_claims(tmp_path / "claims", body)))


# -- planning ----------------------------------------------------------------------------------------


def test_plan_covers_missing_seeds_once(twins, tmp_path):
    store = Store(tmp_path / "s")
    jobs, waits_on = plan_jobs(twins, "ci", store)
    assert [j.claim.id for j in jobs] == ["demo.mean-positive", "demo.other"]  # the twin shares the first's
    assert all(len(j.seeds) == 10 for j in jobs)
    assert waits_on == {"demo.mean-positive": [0], "demo.twin": [0], "demo.other": [1]}

    per_seed, _ = plan_jobs(twins, "ci", store, seeds_per_job=4)
    assert [len(j.seeds) for j in per_seed] == [4, 4, 2, 4, 4, 2]
    assert sorted(s for j in per_seed[:3] for s in j.seeds) == sorted(replicate_seeds(0, 10))

    run_claim(twins[0], "ci", store=store, device="cpu")
    jobs, waits_on = plan_jobs(twins, "ci", store)
    assert [j.claim.id for j in jobs] == ["demo.other"]  # finished results get no job
    assert waits_on["demo.twin"] == []
    full, _ = plan_jobs(twins[:1], "full", store)
    assert [len(j.seeds) for j in full] == [2]  # full's first 10 seeds are ci's
    forced, _ = plan_jobs(twins, "ci", store, force=True)
    assert [len(j.seeds) for j in forced] == [10, 10]
    with pytest.raises(ValueError):
        plan_jobs(twins, "ci", store, seeds_per_job=-1)


def test_in_process_is_run_claim(twins, tmp_path):
    store, reference = Store(tmp_path / "s"), Store(tmp_path / "ref")
    done = []
    runs = run_claims(twins, "ci", store=store, executor=LocalExecutor("cpu"), seeds_per_job=3, on_done=done.append)
    assert len(done) == 8 and all(o.error is None for o in done)
    assert [r.computed for r in runs] == [10, 0, 10]
    for run in runs:
        alone = run_claim(run.claim, "ci", store=reference, device="cpu")
        assert run.verdict == alone.verdict and run.as_expected
    again = run_claims(twins, "ci", store=store, on_plan=lambda jobs: done.append(len(jobs)))
    assert done[-1] == 0 and [r.computed for r in again] == [0, 0, 0]
    assert [r.verdict for r in again] == [r.verdict for r in runs]


def test_failed_job_fails_its_claims_and_a_rerun_finishes_only_the_rest(twins, tmp_path, monkeypatch):
    store = Store(tmp_path / "s")
    original = registry.get("calibration.normal")
    calls = []

    def flaky(params, seeds, device):
        calls.append(list(seeds))
        if len(calls) == 2:
            raise RuntimeError("node lost")
        return original.run(params, seeds, device)

    monkeypatch.setitem(registry._REGISTRY, "calibration.normal", dataclasses.replace(original, run=flaky))
    runs = run_claims(twins[:2], "ci", store=store, seeds_per_job=4)
    assert [r.verdict.outcome for r in runs] == ["error", "error"]
    assert "node lost" in runs[0].verdict.message and "node lost" in runs[1].verdict.message  # the twin says why
    assert len(_results(store.root)) == 6  # jobs 1 and 3 finished; job 2 crashed
    calls.clear()
    rerun = run_claims(twins[:2], "ci", store=store, seeds_per_job=4)
    assert [r.verdict.outcome for r in rerun] == ["reproduced", "reproduced"]
    assert calls == [replicate_seeds(0, 10)[4:8]]  # only the crashed job's seeds
    assert len(_results(store.root)) == 10


def test_seeds_outside_the_claim_are_refused(claim, tmp_path):
    from repro.executors import run_job

    with pytest.raises(ValueError, match="no replicate seed"):
        run_job(Job(claim, "ci", (12345,)), tmp_path / "s", "cpu")


# -- local process pool ------------------------------------------------------------------------------


def test_local_pool_one_worker_per_device(twins, tmp_path):
    store = Store(tmp_path / "s")
    executor = LocalExecutor("cpu", workers=2)
    assert executor.devices() == ["cpu", "cpu"]
    done = []
    runs = run_claims(twins, "ci", store=store, executor=executor, seeds_per_job=5, on_done=done.append)
    assert len(done) == 4 and all(o.error is None for o in done)
    assert all(r.as_expected for r in runs) and [r.computed for r in runs] == [10, 0, 10]
    pids = {json.loads(p.read_text())["provenance"].get("pid") for p in _results(store.root)}
    assert len(_results(store.root)) == 20
    assert os.getpid() not in pids  # computed in the workers, not here
    with pytest.raises(ValueError):
        LocalExecutor("cpu", workers=0)


def test_local_devices_one_per_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert LocalExecutor("auto").devices() == ["cuda:0", "cuda:1", "cuda:2"]
    assert LocalExecutor("cuda", workers=4).devices() == ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]
    assert LocalExecutor("cuda:1").devices() == ["cuda:1"]  # one named device: in-process
    assert LocalExecutor("cpu").devices() == ["cpu"]


# -- SLURM through submitit (its local executor) ---------------------------------------------------------


def test_slurm_path_with_submitit_local_executor(twins, tmp_path):
    store = Store(tmp_path / "s")
    executor = SlurmExecutor(cluster="local", gpus_per_job=0, timeout_min=5, poll_s=0.5, folder=tmp_path / "jobs")
    runs = run_claims(twins, "ci", store=store, executor=executor, seeds_per_job=5)
    assert all(r.as_expected for r in runs), [r.verdict.message for r in runs]
    assert [r.computed for r in runs] == [10, 0, 10]
    assert len(_results(store.root)) == 20
    logs = list((tmp_path / "jobs").glob("*/*_log.out"))
    assert len(logs) == 4  # one folder per job, with its log
    record = json.loads(_results(store.root)[0].read_text())
    assert record["provenance"]["pid"] != os.getpid()
    planned = []
    again = run_claims(twins, "ci", store=store, executor=executor, on_plan=planned.append)
    assert planned == [[]] and [r.verdict for r in again] == [r.verdict for r in runs]  # nothing resubmitted


def test_slurm_job_failure_is_an_error_and_a_rerun_resumes(claim, tmp_path):
    store = Store(tmp_path / "s")
    broken = SlurmExecutor(cluster="local", gpus_per_job=0, device="cuda", timeout_min=5, poll_s=0.5)
    if __import__("torch").cuda.is_available():
        pytest.skip("needs a machine without CUDA to make a job fail on its device")
    (run,) = run_claims([claim], "ci", store=store, executor=broken)
    assert run.verdict.outcome == "error" and "local job" in run.verdict.message and "failed" in run.verdict.message
    assert "CUDA" in run.verdict.message
    fixed = SlurmExecutor(cluster="local", gpus_per_job=0, timeout_min=5, poll_s=0.5)
    (run,) = run_claims([claim], "ci", store=store, executor=fixed)
    assert run.verdict.outcome == "reproduced" and run.computed == 10


def test_cli_slurm_executor(tmp_path, monkeypatch):
    claims = write_claims(tmp_path / "claims", claim_text())
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("COLUMNS", "200")
    common = ["run", "--claims", str(claims), "--executor", "slurm", "--submitit-cluster", "local"]
    common += ["--gpus-per-job", "0", "--seeds-per-job", "5", "--poll-s", "1"]
    # --no-wait in its own process, as on a login node: it submits and exits, the jobs run on.
    env = {**os.environ, "REPRO_HOME": str(tmp_path / "store"), "COLUMNS": "200"}
    submitted = subprocess.run(
        [sys.executable, "-m", "repro", *common, "--no-wait"], env=env, capture_output=True, text=True, timeout=120
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "submitted 2 jobs" in submitted.stdout
    deadline = time.monotonic() + 240
    while len(_results(tmp_path / "store")) < 10 and time.monotonic() < deadline:
        time.sleep(0.5)
    result = CliRunner().invoke(app, common)
    assert result.exit_code == 0, result.output
    assert "1 of 1 claims as expected" in result.output and "(0 seed results computed" in result.output
    bad = CliRunner().invoke(app, ["run", "--claims", str(claims), "--executor", "nope"])
    assert bad.exit_code == 2


class _FakeSlurmJob:
    """A submitit job handle as the waiting loop sees it: a job id, its paths, its result."""

    def __init__(self, folder: Path, job_id: str, job: Job):
        self.job_id = job_id
        self.paths = SimpleNamespace(result_pickle=folder / f"{job_id}_result.pkl", stderr=folder / f"{job_id}_log.err")
        self.outcome = JobOutcome(job, computed=len(job.seeds))

    def done(self):
        raise AssertionError("on SLURM a job's state comes from squeue, not from submitit's sacct")

    def result(self):
        assert self.paths.result_pickle.exists()
        return self.outcome


def test_slurm_wait_ends_jobs_the_queue_shows_over_without_a_result(claim, tmp_path, monkeypatch):
    """Without accounting storage submitit never learns that a job is over: the queue tells."""
    from repro import executors

    jobs = [Job(claim, "ci", (seed,)) for seed in replicate_seeds(0, 4)]
    handles = [_FakeSlurmJob(tmp_path, f"7_{i}", job) for i, job in enumerate(jobs)]
    cancelled = "slurmstepd: error: *** JOB 9 ON node1 CANCELLED AT 2024-05-01T12:00:00 ***"
    handles[2].paths.stderr.write_text(f"some output\n{cancelled}\nsrun: error: node1: task 0: Killed\n\n")
    handles[3].paths.stderr.write_text("Traceback (most recent call last):\nMemoryError\n")
    # Per poll (one a second): the queue's answer, and which results have appeared by then.
    timeline = {
        0: ({"7_0": "RUNNING", "7_1": "RUNNING", "7_2": "RUNNING", "7_3": "PENDING"}, []),
        1: ({"7_0": "RUNNING", "7_1": "PENDING", "7_2": "CANCELLED", "7_3": "RUNNING"}, []),  # 7_1 requeued
        2: ({"7_0": "COMPLETED", "7_1": "RUNNING", "7_2": "CANCELLED"}, [0]),  # 7_3 purged from the queue
        3: (None, []),  # squeue did not answer
        4: ({"7_1": "COMPLETED", "7_2": "CANCELLED"}, []),
        5: ({"7_1": "COMPLETED", "7_2": "CANCELLED"}, [1]),  # 7_1's result reaches the file system late
    }
    clock = SimpleNamespace(now=0.0)

    def queue_states():
        states, finished = timeline[min(int(clock.now), 5)]
        for i in finished:
            handles[i].paths.result_pickle.touch()
        return states

    def sleep(seconds):
        assert clock.now < 60, "the wait must end"
        clock.now += seconds

    monkeypatch.setattr(executors, "time", SimpleNamespace(monotonic=lambda: clock.now, sleep=sleep))
    monkeypatch.setattr(executors, "_queue_states", queue_states)
    executor = SlurmExecutor(gpus_per_job=0, poll_s=1.0, result_grace_s=2.5)
    monkeypatch.setattr(executor, "submit", lambda jobs, store: handles)
    finished_at = {}
    outcomes = executor.run(
        jobs, Store(tmp_path / "s"), on_done=lambda o: finished_at.setdefault(o.job.seeds, clock.now)
    )
    assert [o.error is None for o in outcomes] == [True, True, False, False]
    assert [finished_at[j.seeds] for j in jobs] == [2, 5, 4, 5]  # the requeued job is never given up on
    assert outcomes[1].computed == 1
    assert outcomes[2].error == (
        f"slurm job 7_2 ended without a result (CANCELLED: cancelled, out of time or memory, or its node lost): "
        f"{cancelled} (log: {handles[2].paths.stderr})"
    )
    assert outcomes[3].error.startswith("slurm job 7_3 ended without a result (no longer in the queue:")
    assert f"lost): MemoryError (log: {handles[3].paths.stderr})" in outcomes[3].error


def test_queue_states_come_from_squeue(tmp_path, monkeypatch, caplog):
    from repro.executors import _queue_states

    fake = tmp_path / "bin"
    fake.mkdir()
    squeue = fake / "squeue"
    squeue.write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/args\nprintf "12_0|RUNNING\\n12_1|PENDING\\n13|CANCELLED\\n"\n'
    )
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert _queue_states() == {"12_0": "RUNNING", "12_1": "PENDING", "13": "CANCELLED"}
    args = (tmp_path / "args").read_text().split()
    assert {"--array", "--states=all", "--noheader", "--format=%i|%T"} <= set(args)  # every array task, ended ones too
    assert any(a.startswith("--user=") for a in args)
    squeue.write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n")
    assert _queue_states() is None  # no answer: the caller keeps waiting
    assert "squeue gave no job states" in caplog.text


# -- two runners on one store ------------------------------------------------------------------------

RACER = """
import os, sys, time
from pathlib import Path
from pydantic import BaseModel, ConfigDict
from repro import registry
from repro.registry import Experiment, SeedResult

LOG = Path(os.environ["RACE_LOG"])


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mean: float = 1.0


def run(params, seeds, device):
    with LOG.open("a") as log:
        for seed in seeds:
            log.write(f"{os.getpid()} {seed}\\n")
    time.sleep(float(os.environ.get("RACE_SLEEP", "1")))
    return [SeedResult(seed=s, metrics={"value": params.mean + (s % 5) / 10}) for s in seeds]


registry.register(Experiment("race.count", Params, run, metrics=("value",), metric_kinds={"value": "continuous"}))
go = Path(os.environ["RACE_GO"])
while not go.exists():
    time.sleep(0.01)
from repro.cli import app
app(sys.argv[1:])
"""

RACE_CLAIMS = """
[[claim]]
id = "race.{name}"
source = "test"
statement = "Values have mean above 0"
evidence = "By construction"
experiment = "race.count"
metric = "value"
seeds = 8
assertion = {{ test = "greater", threshold = 0.0, method = "sign" }}
params = {{ mean = 1.0 }}
[claim.scales.ci]
seeds = 8
"""


def _racers(tmp_path, n, *, sleeps, extra=()):
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    claims = write_claims(tmp_path / "claims", RACE_CLAIMS.format(name="a") + RACE_CLAIMS.format(name="b"))
    env = {
        **os.environ,
        "REPRO_HOME": str(tmp_path / "store"),
        "RACE_LOG": str(tmp_path / "computed.log"),
        "RACE_GO": str(tmp_path / "go"),
        "COLUMNS": "200",
    }
    command = [sys.executable, str(script), "run", "--claims", str(claims), "--device", "cpu", *extra]
    return [
        subprocess.Popen(
            command,
            env={**env, "RACE_SLEEP": str(sleeps[i])},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(n)
    ]


def test_two_runners_racing_on_one_claim_compute_each_result_once(tmp_path):
    racers = _racers(tmp_path, 2, sleeps=[1, 1], extra=["--seeds-per-job", "3"])
    time.sleep(3.0)  # both have imported repro and wait at the barrier
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=300)[0] for p in racers]
    assert [p.returncode for p in racers] == [0, 0], outputs
    lines = (tmp_path / "computed.log").read_text().split()
    seeds = lines[1::2]
    assert sorted(seeds) == sorted(str(s) for s in replicate_seeds(0, 8))  # every seed computed exactly once
    stored = _results(tmp_path / "store")
    assert len(stored) == 8
    for path in stored:
        json.loads(path.read_text())
    assert not list((tmp_path / "store").rglob("*.partial"))
    counts = sorted(int(o.split("(")[-1].split()[0]) for o in outputs)
    assert sum(counts) == 8 and all("2 of 2 claims as expected" in o for o in outputs)


def test_a_killed_runner_leaves_no_lock_behind(tmp_path):
    log = tmp_path / "computed.log"
    (tmp_path / "go").touch()
    (holder,) = _racers(tmp_path, 1, sleeps=[600])  # locks all eight seeds, then hangs in the experiment
    deadline = time.monotonic() + 120
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().split()[0] == str(holder.pid)
    (waiter,) = _racers(tmp_path, 1, sleeps=[0])
    time.sleep(8.0)  # the second runner imports repro and waits on the first one's locks
    assert waiter.poll() is None and not _results(tmp_path / "store")
    os.kill(holder.pid, signal.SIGKILL)  # the kernel drops its locks
    holder.communicate()
    output = waiter.communicate(timeout=120)[0]
    assert waiter.returncode == 0, output
    assert "(8 seed results computed" in output
    assert len(_results(tmp_path / "store")) == 8


# -- pytest-xdist ------------------------------------------------------------------------------------


def test_pytest_xdist_shares_the_store(pytester, tmp_path, monkeypatch):
    folder = pytester.mkdir("claims")
    shutil.copy(REPO / "claims" / "calibration.toml", folder)
    shutil.copy(REPO / "claims" / "sources.toml", folder)
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "shared"))
    claim_set = load_claims(folder / "calibration.toml")
    result = pytester.runpytest_subprocess("claims", "-n", "auto", "-m", "not gpu", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(claim_set))
    result.stdout.fnmatch_lines(["*workers*"])
    store = Store(tmp_path / "shared")
    for claim in claim_set:  # every worker wrote into the one store: each claim is complete there
        run = evaluate(claim, "ci", store)
        assert run.complete and run.as_expected, claim.id
    assert not list(store.root.rglob("*.partial"))


def test_pytest_xdist_workers_racing_compute_each_result_once(pytester, tmp_path, monkeypatch):
    pytester.makeconftest(RACER.split("go = Path")[0])
    folder = pytester.mkdir("claims")
    (folder / "sources.toml").write_text(textwrap.dedent(SOURCES))
    (folder / "race.toml").write_text(textwrap.dedent(RACE_CLAIMS.format(name="a")))
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "shared"))
    monkeypatch.setenv("RACE_LOG", str(tmp_path / "computed.log"))
    monkeypatch.setenv("RACE_GO", str(tmp_path / "unused"))
    # --dist each runs every item on both workers: they race on the same eight results.
    result = pytester.runpytest_subprocess(
        "claims", "-n", "2", "--dist", "each", "-m", "not gpu", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    seeds = (tmp_path / "computed.log").read_text().split()[1::2]
    assert sorted(seeds) == sorted(str(s) for s in replicate_seeds(0, 8))
    assert len(_results(tmp_path / "shared")) == 8


def test_xdist_workers_take_one_gpu_each(monkeypatch):
    import torch

    from repro.pytest_plugin import _device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert _device() == "auto"
    for worker, device in [("gw0", "cuda:0"), ("gw1", "cuda:1"), ("gw2", "cuda:0")]:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        assert _device() == device
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert _device() == "auto"


def test_slurm_parameters_reach_sbatch(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("srun", "sbatch"):
        (fake / tool).write_text("#!/bin/sh\nexit 1\n")
        (fake / tool).chmod(0o755)
    store = Store(tmp_path / "s")
    executor = SlurmExecutor(partition="gpu", gpus_per_job=2, timeout_min=90, cpus_per_job=8, mem_gb=32, max_parallel=5)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no srun, as on a machine that is not a login node
    with pytest.raises(ClusterUnavailableError, match="srun"):
        executor._executor(store)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{path}")  # these first, on a login node too
    script = executor._executor(store)._executor._make_submission_file_text("python -m submitit.core._submit x", "u")
    for line in ("--partition=gpu", "--gpus-per-node=2", "--time=90", "--cpus-per-task=8", "--mem=32GB"):
        assert f"#SBATCH {line}" in script, script
    assert "#SBATCH --job-name=repro" in script and str(store.root.resolve() / "jobs") in script


# -- workers sharing a CPU -------------------------------------------------------------------------


def test_worker_environment_gives_each_worker_its_share_of_the_cores_and_passive_waits():
    from repro.workers import worker_environment

    assert worker_environment(2, cpus=2) == {
        "OMP_WAIT_POLICY": "PASSIVE",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    assert worker_environment(3, cpus=16)["OMP_NUM_THREADS"] == "5"
    assert worker_environment(8, cpus=2)["OMP_NUM_THREADS"] == "1"  # never zero threads


def test_environment_for_workers_keeps_what_the_user_set_and_restores(monkeypatch):
    from repro.workers import environment_for_workers

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with environment_for_workers(2, cpus=2) as applied:
        assert os.environ["OMP_NUM_THREADS"] == "7" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert "OMP_NUM_THREADS" not in applied
    assert "OMP_WAIT_POLICY" not in os.environ and os.environ["OMP_NUM_THREADS"] == "7"


def _omp_environment() -> tuple[str | None, str | None]:
    return os.environ.get("OMP_WAIT_POLICY"), os.environ.get("OMP_NUM_THREADS")


def test_pool_workers_start_with_passive_openmp_waits(monkeypatch):
    """The spawned pool's workers see the environment before they import torch."""
    from repro.workers import environment_for_workers

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    context = multiprocessing.get_context("spawn")
    with environment_for_workers(2, cpus=2), concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        seen = pool.submit(_omp_environment).result()
    assert seen == ("PASSIVE", "1")


def test_pytest_xdist_workers_get_passive_waits_and_a_share_of_the_cores(pytester, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pytester.makepyfile(
        """
        import os
        def test_env():
            assert os.environ["PYTEST_XDIST_WORKER"].startswith("gw")
            assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
            assert int(os.environ["OMP_NUM_THREADS"]) == max(1, (os.cpu_count() or 1) // 2)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_peers_count_the_live_workers_and_share_the_cores(tmp_path):
    from repro.workers import Peers

    peers = Peers(tmp_path / "peers", cpus=4)
    peers.join()
    assert peers.alive() == 1 and peers.threads() == 4
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "peers" / f"{dead.stdout.strip()}.pid").write_text(dead.stdout.strip())  # a worker that exited
    (tmp_path / "peers" / "half.pid").write_text("")  # a peer still writing its file
    assert peers.alive() == 1
    (tmp_path / "peers" / "parent.pid").write_text(str(os.getppid()))  # a live peer
    assert peers.alive() == 2 and peers.threads() == 2
    assert Peers(tmp_path / "peers", cpus=1).threads() == 1  # never zero threads
    peers.leave()
    assert not peers.path.exists()


def test_the_last_busy_xdist_worker_takes_the_cores_of_the_workers_that_left(pytester, monkeypatch):
    """Two items on two workers: the short one's worker is shut down (nothing left to hand out), and the
    long one's next experiment call (repro.workers.cores, which the runner reads) spreads its seeds over
    both shares."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pytester.makepyfile(
        test_short="def test_short():\n    pass\n",
        test_long="""
        import os, time
        import torch
        from repro import workers

        def test_long():
            cpus = os.cpu_count() or 1
            assert torch.get_num_threads() == max(1, cpus // 2)  # its share while the other worker lives
            assert workers.cores() == max(1, cpus // 2)
            deadline = time.monotonic() + 60
            while workers._peers.alive() > 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert workers.cores() == cpus
        """,
    )
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_workers_keep_the_thread_count_a_user_set(pytester, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pytester.makepyfile(
        """
        import os
        from repro import workers

        def test_no_peers():
            assert workers._peers is None and "REPRO_PEERS" not in os.environ
        """
    )
    pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider").assert_outcomes(passed=1)

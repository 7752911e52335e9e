"""`repro run --executor slurm` on a real single-node SLURM cluster started for this module.

The cluster is Debian's slurm-wlm (slurmctld, slurmd, munge) with no accounting storage, so
`sacct` fails there as on many small clusters: the executor must learn from the queue that a job
is over. The daemons run from a private folder (configuration, state, spool, logs, a munge key and
socket, free ports) and are stopped at the end; installing the packages needs root and apt-get.
Without them, or when the daemons do not come up, every test here is skipped with the reason.

Jobs are made to run long enough to cancel or requeue the honest way: the test holds the store's
locks of half a claim's seeds, as another runner computing them would. The job stores the other
half, then waits for those locks.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from repro import registry
from repro.judge import keys_of, replicate_seeds
from repro.load import load_claims
from repro.store import Store

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
CLAIMS = REPO / "claims" / "calibration.toml"  # sources.toml lies beside it
PACKAGES = ("slurmctld", "slurmd", "munge", "slurm-client")
COMMANDS = ("munged", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "scontrol")
TWO_CLAIMS = ("calibration.greater.positive", "calibration.greater.negative")  # 20 ci seeds each
HALF_HELD = "calibration.greater.positive"
#: The runs here poll the queue and wait for a result this often and this long (the defaults, 15 s
#: each, are for a shared cluster's scheduler and file system); the cancel test's bound depends on them.
POLL_S, GRACE_S = 2.0, 3.0


class _NotStarted(Exception):
    pass


def _which(name: str) -> str | None:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin{os.pathsep}/sbin")


def _missing_packages() -> str | None:
    """Install SLURM and munge with apt-get when they are missing; the reason it cannot, or None."""
    if os.geteuid() != 0:
        return "starting SLURM's daemons needs root"
    if all(_which(c) for c in COMMANDS):
        return None
    if not _which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    output = ""
    for command in (install, ["apt-get", "update"], install):  # the package lists may be missing or stale
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command[:2])} failed: {exc}"
        output = done.stdout + done.stderr
        if command is install and done.returncode == 0:
            break
    missing = [c for c in COMMANDS if not _which(c)]
    return f"apt-get could not install {missing}: {output[-500:]}" if missing else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(condition: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"waited {timeout_s:.0f}s for {what}")


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]

    def run(self, *command: str, timeout_s: float = 60) -> str:
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout_s, check=True
        ).stdout

    def jobs(self) -> dict[str, str]:
        """Job id -> state of every job this cluster knows (finished ones stay five minutes)."""
        out = self.run("squeue", "--noheader", "--array", "--states=all", "--format=%i|%T")
        return dict(line.split("|", 1) for line in out.split())

    def running_job(self) -> str:
        running = _wait_for(lambda: [j for j, s in self.jobs().items() if s == "RUNNING"], 120, "a running job")
        assert len(running) == 1, running
        return running[0]

    def log_tail(self) -> str:
        return "\n".join(f"{p.name}: {p.read_text(errors='replace')[-400:]}" for p in sorted(self.root.glob("*.log")))


def _start(root: Path, started: list[subprocess.Popen]) -> Cluster:
    """munged, slurmctld and slurmd, each configured to keep every file under root."""
    try:
        munge = pwd.getpwnam("munge")
    except KeyError:
        raise _NotStarted("there is no munge user") from None
    root.chmod(0o755)  # munged, as the munge user, must reach its socket folder
    (munge_dir := root / "munge").mkdir(mode=0o755)
    os.chown(munge_dir, munge.pw_uid, munge.pw_gid)
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o400)
    os.chown(key, munge.pw_uid, munge.pw_gid)
    sock = munge_dir / "munge.sock"
    for name in ("state", "spool"):
        (root / name).mkdir()

    def daemon(log: str, command: list[str], **kwargs) -> None:
        with (root / log).open("w") as out:
            started.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs))

    files = [f"--{name}-file={munge_dir}/munged.{name}" for name in ("pid", "seed", "log")]
    command = [_which("munged"), "--foreground", f"--socket={sock}", f"--key-file={key}", *files]
    daemon("munged.log", command, user=munge.pw_uid, group=munge.pw_gid, extra_groups=[])

    def munge_works() -> bool:
        credential = subprocess.run(["munge", "-n", "-S", str(sock)], capture_output=True, timeout=10)
        return (
            subprocess.run(["unmunge", "-S", str(sock)], input=credential.stdout, capture_output=True).returncode == 0
        )

    try:
        _wait_for(munge_works, 15, "munged")
        node = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
        node = node.splitlines()[0]
    except (OSError, subprocess.SubprocessError, TimeoutError, IndexError) as exc:
        raise _NotStarted(f"{type(exc).__name__}: {exc}") from None
    host = re.search(r"NodeName=(\S+)", node).group(1)
    memory = int(re.search(r"RealMemory=(\d+)", node).group(1))
    node = re.sub(r"RealMemory=\d+", f"RealMemory={int(memory * 0.9)}", node)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""
ClusterName=repro-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock},cred_expire=10
MailProg={shutil.which("true")}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}  # not this job's, if in one
    env["SLURM_CONF"] = str(conf)
    daemon("slurmctld.log", [_which("slurmctld"), "-D", "-f", str(conf)], env=env)
    daemon("slurmd.log", [_which("slurmd"), "-D", "-f", str(conf)], env=env)
    cluster = Cluster(root, env)

    def idle() -> bool:
        if any(p.poll() is not None for p in started):
            raise _NotStarted("a daemon exited")
        with contextlib.suppress(subprocess.SubprocessError):
            return cluster.run("sinfo", "--noheader", "--format=%t", timeout_s=10).strip() == "idle"
        return False

    try:
        _wait_for(idle, 60, "the node to be idle")
    except (_NotStarted, TimeoutError) as exc:
        raise _NotStarted(f"{exc}\n{cluster.log_tail()}") from None
    return cluster


def _stop(started: list[subprocess.Popen], cluster: Cluster | None) -> None:
    """Cancel what is left of the jobs, then stop the daemons this module started."""
    if cluster is not None:
        with contextlib.suppress(subprocess.SubprocessError, TimeoutError):
            cluster.run("scancel", f"--user={pwd.getpwuid(os.getuid()).pw_name}")
            active = {"RUNNING", "COMPLETING", "PENDING", "CONFIGURING", "REQUEUED"}
            _wait_for(lambda: not active & set(cluster.jobs().values()), 30, "the cancelled jobs to end")
    for process in reversed(started):  # slurmd, slurmctld, munged
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = _missing_packages()
    if reason:
        pytest.skip(f"no SLURM cluster: {reason}")
    root = Path(tempfile.mkdtemp(prefix="repro-slurm-"))
    started: list[subprocess.Popen] = []
    running = None
    try:
        try:
            running = _start(root, started)
        except (_NotStarted, OSError, subprocess.SubprocessError, AttributeError, ValueError) as exc:
            pytest.skip(f"the SLURM daemons did not start: {type(exc).__name__}: {exc}")
        yield running
    finally:
        _stop(started, running)
        shutil.rmtree(root, ignore_errors=True)


# -- running repro on it -------------------------------------------------------------------------------


def _command(store: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    command = [sys.executable, "-m", "repro", "run", *args, "--claims", str(CLAIMS), "--executor", "slurm"]
    timing = ("--poll-s", str(POLL_S), "--result-grace-s", str(GRACE_S))
    return [*command, "--gpus-per-job", "0", *timing], {"REPRO_HOME": str(store), "COLUMNS": "200"}


def _repro(cluster: Cluster, store: Path, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess:
    command, env = _command(store, *args)
    done = subprocess.run(command, env={**cluster.env, **env}, capture_output=True, text=True, timeout=timeout_s)
    done.stdout += done.stderr
    return done


def _start_repro(cluster: Cluster, store: Path, *args: str) -> subprocess.Popen:
    command, env = _command(store, *args)
    return subprocess.Popen(
        command, env={**cluster.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _results(store: Path) -> list[Path]:
    return sorted(p for p in store.glob("results/*/*/*.json") if not p.name.startswith(".tmp-"))


def _job_folders(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "jobs").glob("*_*") if p.is_dir())


@contextlib.contextmanager
def _holding_half(store: Path) -> Iterator[None]:
    """Hold the store's locks of the second half of HALF_HELD's seeds, as a runner computing them would."""
    claim = load_claims(CLAIMS).get(HALF_HELD)
    seeds = replicate_seeds(claim.seed, claim.n_seeds("ci"))
    ((_, keys),) = keys_of(claim, "ci", seeds).values()
    with Store(store).locked(registry.get(claim.experiment).name, keys[10:], wait=False) as held:
        assert len(held) == 10
        yield


@contextlib.contextmanager
def _finally_killed(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# -- the tests -----------------------------------------------------------------------------------------


def test_job_arrays_fill_the_shared_store_and_a_second_run_submits_nothing(cluster, tmp_path):
    store = tmp_path / "store"
    first = _repro(cluster, store, *TWO_CLAIMS, "--seeds-per-job", "10")
    assert first.returncode == 0, first.stdout
    assert "2 of 2 claims as expected" in first.stdout and "(40 seed results computed" in first.stdout
    folders = _job_folders(store)
    array = folders[0].split("_")[0]
    assert folders == [f"{array}_{i}" for i in range(4)]  # one array of four jobs, two per claim
    _wait_for(lambda: {cluster.jobs()[f"{array}_{i}"] for i in range(4)} == {"COMPLETED"}, 60, "the jobs to end")
    records = [json.loads(p.read_text()) for p in _results(store)]
    assert len(records) == 40
    assert len({r["provenance"]["pid"] for r in records}) == 4  # each job wrote its own results
    queued = set(cluster.jobs())
    second = _repro(cluster, store, *TWO_CLAIMS, "--seeds-per-job", "10")
    assert second.returncode == 0, second.stdout
    assert "2 of 2 claims as expected" in second.stdout and "(0 seed results computed" in second.stdout
    assert set(cluster.jobs()) == queued and _job_folders(store) == folders  # nothing submitted


def test_a_cancelled_job_is_an_error_naming_its_log_and_a_rerun_resumes(cluster, tmp_path):
    store, verdicts = tmp_path / "store", tmp_path / "verdicts.json"
    with _holding_half(store), _finally_killed(_start_repro(cluster, store, HALF_HELD, "--json", str(verdicts))) as run:
        _wait_for(lambda: len(_results(store)) == 10, 180, "the job to store the free half")
        job = cluster.running_job()  # now waiting for the held half
        cluster.run("scancel", job)
        cancelled = time.monotonic()
        output = run.communicate(timeout=120)[0]  # a bounded wait: no accounting, yet no hang
        waited = time.monotonic() - cancelled
    assert run.returncode == 1, output
    # two polls and the grace for its result, with room for a loaded machine (at the default 15 s
    # polls and grace it takes 15 to 45 s)
    assert waited < 2 * POLL_S + GRACE_S + 10, waited
    (verdict,) = json.loads(verdicts.read_text())
    log = store / "jobs" / job / f"{job}_0_log.err"
    assert verdict["outcome"] == "error"
    assert f"slurm job {job} ended without a result (CANCELLED" in verdict["message"]
    assert re.search(rf"\*\*\* (JOB|STEP) {job}\S* ON \S+ CANCELLED AT", verdict["message"])  # SLURM's line
    assert f"(log: {log})" in verdict["message"] and log.is_file()
    assert len(_results(store)) == 10
    rerun = _repro(cluster, store, HALF_HELD)
    assert rerun.returncode == 0, rerun.stdout
    assert "1 of 1 claims as expected" in rerun.stdout and "(10 seed results computed" in rerun.stdout


def test_a_requeued_job_resumes_from_the_store_and_completes(cluster, tmp_path):
    store = tmp_path / "store"
    with _finally_killed(_start_repro(cluster, store, HALF_HELD)) as run:
        with _holding_half(store):
            _wait_for(lambda: len(_results(store)) == 10, 180, "the job to store the free half")
            job = cluster.running_job()
            first_half = {p: p.read_bytes() for p in _results(store)}
            cluster.run("scontrol", "requeue", job)  # SLURM kills it and queues it again
            log = store / "jobs" / job / f"{job}_0_log.out"
            _wait_for(lambda: log.read_text().count("Starting with") == 2, 150, "the job to start again")
        output = run.communicate(timeout=120)[0]  # the locks are free: the job, started again, finishes
    assert run.returncode == 0, output
    assert "1 of 1 claims as expected" in output and "(10 seed results computed" in output
    assert len(_results(store)) == 20
    assert {p: p.read_bytes() for p in first_half} == first_half  # the stored half was not computed again
    _wait_for(lambda: cluster.jobs()[job] == "COMPLETED", 60, "the job to leave COMPLETING")
    assert "Restarts=1" in cluster.run("scontrol", "show", "job", job)


def test_no_wait_submits_and_a_later_run_collects(cluster, tmp_path):
    store = tmp_path / "store"
    claim = "calibration.less.negative-sign"  # 10 ci seeds
    submitted = _repro(cluster, store, claim, "--seeds-per-job", "5", "--no-wait")
    assert submitted.returncode == 0, submitted.stdout
    assert "submitted 2 jobs" in submitted.stdout
    jobs = re.findall(r"\b\d+_\d\b", submitted.stdout)
    assert len(jobs) == 2
    _wait_for(lambda: {cluster.jobs()[j] for j in jobs} == {"COMPLETED"}, 180, "the submitted jobs")
    assert len(_results(store)) == 10
    later = _repro(cluster, store, claim, "--seeds-per-job", "5")
    assert later.returncode == 0, later.stdout
    assert "1 of 1 claims as expected" in later.stdout and "(0 seed results computed" in later.stdout
    assert _job_folders(store) == sorted(jobs)  # it collected, submitting nothing


def test_a_user_distribution_s_experiment_runs_as_slurm_jobs(cluster, tmp_path):
    """examples/ridge-paper: its entry point registers its experiment in every job too, from its own folder."""
    store, example = tmp_path / "store", REPO / "examples" / "ridge-paper"
    command = [sys.executable, "-m", "repro", "run", "--scale", "ci", "--executor", "slurm", "--gpus-per-job", "0",
               "--seeds-per-job", "5", "--poll-s", str(POLL_S), "--result-grace-s", str(GRACE_S)]  # fmt: skip
    done = subprocess.run(command, cwd=example, env={**cluster.env, "REPRO_HOME": str(store), "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 of 3 claims as expected" in done.stdout and "(30 seed results computed" in done.stdout
    records = [json.loads(p.read_text()) for p in _results(store)]
    assert {r["provenance"]["experiment_origin"]["distribution"] for r in records} == {"ridge-paper"}
    assert len({r["provenance"]["pid"] for r in records}) == 6  # six jobs of five seeds, none in this process

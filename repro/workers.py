"""The environment of worker processes that share a CPU (the local pool, pytest-xdist, SLURM jobs)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "PEERS_VARIABLE",
    "Peers",
    "cores",
    "environment_for_workers",
    "set_cores",
    "share_cores",
    "worker_environment",
]


#: What worker processes sharing a CPU need before torch loads: OpenMP threads that sleep at a barrier
#: instead of spinning (spinning threads of two processes on the same cores made a training step 30x
#: slower: benchmarks/README.md, "CPU contention"), and each worker's share of the cores.
def worker_environment(workers: int, cpus: int | None = None) -> dict[str, str]:
    """Environment for one of ``workers`` processes sharing ``cpus`` cores (default: this machine's)."""
    threads = str(max(1, (cpus or os.cpu_count() or 1) // max(1, workers)))
    return {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


@contextlib.contextmanager
def environment_for_workers(workers: int, cpus: int | None = None) -> Iterator[dict[str, str]]:
    """Set :func:`worker_environment` in os.environ while workers start (they inherit it), then restore.

    Values the user set already win: an explicit OMP_NUM_THREADS is never overridden.
    """
    wanted = {k: v for k, v in worker_environment(workers, cpus).items() if k not in os.environ}
    os.environ.update(wanted)
    try:
        yield wanted
    finally:
        for key in wanted:
            os.environ.pop(key, None)


#: Set by the parent (pytest -n N) beside :func:`worker_environment`, where it chose the thread counts:
#: the directory its workers register in, so that one may take a larger share of the cores when the
#: others are gone (see :class:`Peers`).
PEERS_VARIABLE = "REPRO_PEERS"


class Peers:
    """Worker processes sharing one machine's cores, each registered as a file holding its pid.

    pytest-xdist hands work out group by group and stops a worker once nothing is left to hand out;
    the last worker busy with a long group would then keep the one thread it started with while the
    other cores idle (benchmarks/README.md, "Workers on a shared CPU"). Before each experiment call a
    worker counts the peers still alive and spreads the call's seeds over ``cpus // alive`` threads.
    """

    def __init__(self, directory: Path, cpus: int) -> None:
        self.directory, self.cpus = directory, max(1, cpus)
        self.path = directory / f"{os.getpid()}.pid"

    def join(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path.write_text(str(os.getpid()), encoding="ascii")

    def leave(self) -> None:
        self.path.unlink(missing_ok=True)

    def alive(self) -> int:
        """Registered workers whose process still runs (this one included)."""
        count = 0
        for entry in self.directory.glob("*.pid"):
            try:
                pid = int(entry.read_text(encoding="ascii"))
                os.kill(pid, 0)
            except (OSError, ValueError):  # gone, or a file half written by a starting peer
                continue
            count += 1
        return max(1, count)

    def threads(self) -> int:
        return max(1, self.cpus // self.alive())


_peers: Peers | None = None
_cores: int | None = None


def share_cores(peers: Peers | None) -> None:
    """Make ``peers`` (or nobody, with None) the set :func:`cores` reads in this process."""
    global _peers
    _peers = peers


def set_cores(count: int | None) -> None:
    """This process's share of the cores, as a pool that started it decided (None: work it out)."""
    global _cores
    _cores = None if count is None else max(1, count)


def _available() -> int:
    try:
        return len(os.sched_getaffinity(0))  # a SLURM job's or a container's CPU set
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cores() -> int:
    """Before an experiment call: how many cores this process may spread the call's seeds over.

    A worker that joined peers (pytest -n N) takes its share among the peers still alive, so that the
    last one busy takes the cores of those that have left; a pool worker takes what its pool gave it;
    otherwise OMP_NUM_THREADS where set, else the cores this process may run on. The count only says
    how many seeds are computed side by side (repro.numerics.parallel_width): a seed's result is the
    same whatever it is.
    """
    if _peers is not None:
        return _peers.threads()
    if _cores is not None:
        return _cores
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return _available()

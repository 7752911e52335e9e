"""The environment of worker processes that share a CPU (the local pool, pytest-xdist, SLURM jobs)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PEERS_VARIABLE", "Peers", "environment_for_workers", "rebalance", "share_cores", "worker_environment"]


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
    worker counts the peers still alive and takes ``cpus // alive`` threads.
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


def share_cores(peers: Peers | None) -> None:
    """Make ``peers`` (or nobody, with None) the set :func:`rebalance` reads in this process."""
    global _peers
    _peers = peers


def rebalance() -> None:
    """Before an experiment call: this worker's share of the cores among the peers still alive.

    A no-op outside a worker that joined peers, and when torch is not loaded yet (it then starts at
    the environment's thread count).
    """
    if _peers is None or "torch" not in sys.modules:
        return
    import torch

    wanted = _peers.threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)

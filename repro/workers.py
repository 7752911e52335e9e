"""The environment of worker processes that share a CPU (the local pool, pytest-xdist, SLURM jobs)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["environment_for_workers", "worker_environment"]


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

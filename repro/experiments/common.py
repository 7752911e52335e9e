"""Small pieces every trained-network family shares: per-purpose random streams and CPU threading.

A module of its own, listed in each user's ``depends_on``, so that an edit here invalidates the
stored results of every experiment it shapes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["single_threaded", "stream"]


def stream(seed: int, purpose: int, *more: int) -> int:
    """A 63-bit seed for one purpose of one replicate seed (numpy SeedSequence over the tuple).

    Streams of different purposes (init, batch order, query draw, ...) are independent, and each
    depends only on its own tuple, never on the other seeds that share a run.
    """
    return int(np.random.SeedSequence([int(seed), purpose, *more]).generate_state(1, dtype=np.uint64)[0] >> 1)


@contextlib.contextmanager
def single_threaded(device: torch.device) -> Iterator[None]:
    """On a CPU, one thread for torch and for BLAS / OpenMP, restored afterwards; elsewhere nothing.

    The small networks of the ci scale (16 units, batches of 32 to 128) gain nothing from intra-op
    threads, and on a CPU that other processes share, threads spinning at each op's barrier made
    the same run 20 to 100 times slower (measured on the 2-core ci machine).
    """
    if device.type != "cpu":
        yield
        return
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)

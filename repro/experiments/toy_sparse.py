"""The sparse sampler of the toy models' data: only the present entries, drawn on the host.

:class:`_SparseDraws` is what ``FeatureSampler(method="sparse")`` of :mod:`repro.experiments.toy_data`
draws with (the CPU default for sparse enough data); tests/test_toy_sampler.py checks its law. A
module of its own so that the sampler's interface and its stream layout each stay readable; both are
in the ``depends_on`` of every experiment that trains toy models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from repro import numerics

__all__ = ["SPARSE_CHUNK_ENTRIES", "SPARSE_PASS_DRAWS"]

#: The sparse sampler cuts each seed's (K, B, n) block into runs of whole instances of about this many
#: entries, each with its own random stream (see :class:`_SparseDraws`). It fixes the streams: changing
#: it changes every batch.
SPARSE_CHUNK_ENTRIES = 2**16

#: The sparse sampler handles consecutive runs in vectorised passes of at most this many draws (one run
#: may exceed it): it bounds the temporary arrays and spreads the work over threads; it does not change
#: what is drawn.
SPARSE_PASS_DRAWS = 2**16


@dataclass
class _Run:
    """A seed's run of consecutive instances, drawn from its own stream (see :class:`_SparseDraws`)."""

    stream: np.random.Generator
    first: int  # its first draw slot in the pass
    end: int  # end of its slots
    blocks: list[tuple[int, int]]  # flat ranges of x of instances whose every p is 1: values only
    full_columns: np.ndarray  # flat offsets in x of the other columns with p = 1 (row 0 of each)


@dataclass
class _Pass:
    """Consecutive runs drawn in one vectorised pass.

    Segment arrays are concatenated over the pass's runs. A segment is every column (instance k,
    feature i) of one run that has the same p, 0 < p < 1, walked column by column: virtual index
    v = column * B + row over the pass's columns, whose flat offsets in x are ``colbase``.
    """

    runs: list[_Run]
    seg_draws: np.ndarray  # (S,) int64, first-round gaps (and values) drawn per segment
    seg_len: np.ndarray  # (S,) int64, entries per segment
    seg_p: np.ndarray  # (S,) float64
    seg_inv_rate: np.ndarray  # (S,) float64, 1 / -log(1 - p)
    seg_vstart: np.ndarray  # (S,) int64, the segment's first virtual index
    seg_run: np.ndarray  # (S,) int64, index into ``runs``
    colbase: np.ndarray  # (columns,) int64, flat offset in x of each column's row 0
    lo: int  # x.view(-1)[lo:hi] is every entry of the pass's runs
    hi: int
    work: int  # numbers drawn: gaps and their values, and values of p = 1 entries

    def __post_init__(self) -> None:
        self.draws = self.runs[-1].end
        self.seg_last = np.cumsum(self.seg_draws) - 1  # (S,), each segment's last slot
        self.slot_inv_rate = np.repeat(self.seg_inv_rate, self.seg_draws)  # (draws,)
        # Gaps are capped here: a longer one only ends its segment, and the sums stay well inside int64.
        self.max_gap = float(self.seg_len.max()) + 1.0 if self.seg_len.size else 1.0


class _SparseDraws:
    """The present entries of independent sparse data, drawn as the gaps between them, on the host.

    Within a segment of L entries with one probability p (see :class:`_Pass`), the entries are
    i.i.d. Bernoulli(p) exactly when the gaps between consecutive present entries are i.i.d.
    geometric on {1, 2, ...}: gap = floor(E / lambda) + 1 with E ~ Exp(1) (float64), lambda =
    -log(1 - p), since P(gap > k) = P(E >= k lambda) = (1 - p)^k. Each gap comes with its own
    U[0, 1) float32 value (numpy's 24-bit grid, as torch.rand's), drawn apart from the gaps, so the
    present entries' values are i.i.d. U[0, 1) whichever are kept. A first round draws mean + 4 sd + 4
    gaps per segment; a segment whose gaps fall short of its end (rare) draws more until they pass
    it, so the law is exact (up to float64 rounding in E / lambda) whatever the margin. p = 0 entries
    are never present; p = 1 entries are all present and need only their values (drawn straight into
    x where whole instances have p = 1). Per-instance and per-feature p (phase diagrams' (K, n)
    grids) are honoured: a run has one segment per distinct p.

    Streams: a seed's K instances are cut into runs of max(1, SPARSE_CHUNK_ENTRIES // (B n))
    instances, the same cut for every seed, and run c of a seed draws from
    ``PCG64(SeedSequence(key, spawn_key=(c,)))``, ``key`` being two 63-bit integers drawn from the
    seed's torch generator when the sampler is made (so a new sampler on the same generators, as
    tms's sequential stages make, draws fresh streams). A seed's batches therefore depend on its
    generator, p, B and n only: not on the other seeds, on how runs are grouped into passes, nor on
    the thread count. The runs let one seed's draws use several cores.
    """

    def __init__(self, generators: Sequence[torch.Generator], p: np.ndarray, batch: int, scale_by_p: bool):
        K, n = p.shape
        self.batch, self.n_features, self.scale_by_p = batch, n, scale_by_p
        block, run = K * batch * n, max(1, SPARSE_CHUNK_ENTRIES // (batch * n))  # entries a seed, instances a run
        layouts = [_run_layout(p[k0 : k0 + run], batch) for k0 in range(0, K, run)]
        runs: list[tuple[np.random.Generator, int, dict]] = []  # (stream, flat offset in x, layout)
        for g, gen in enumerate(generators):
            key = torch.randint(0, 2**63 - 1, (2,), generator=gen, device=gen.device).tolist()
            for c, layout in enumerate(layouts):
                stream = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key, spawn_key=(c,))))
                runs.append((stream, g * block + c * run * batch * n, layout))
        # Consecutive runs into passes of about equal work, at least one pass per thread when there
        # are enough runs: the grouping changes only how the work is shared, not what is drawn.
        work = [layout["draws"] + layout["full"] for _, _, layout in runs]
        total, threads = sum(work), numerics.parallel_width()
        n_passes = min(len(runs), max(math.ceil(total / SPARSE_PASS_DRAWS), threads))
        self.passes: list[_Pass] = []
        group: list[tuple[np.random.Generator, int, dict]] = []
        done = 0
        for i, item in enumerate(runs):
            group.append(item)
            done += work[i]
            if done >= total * (len(self.passes) + 1) / n_passes or i == len(runs) - 1:
                self.passes.append(self._make_pass(group))
                group = []
        workers = max(1, min(len(self.passes), threads))
        self.workers: list[list[_Pass]] = [[] for _ in range(workers)]
        load = [0] * workers
        for pass_ in sorted(self.passes, key=lambda q: -q.work):  # largest first onto the least loaded
            w = load.index(min(load))
            self.workers[w].append(pass_)
            load[w] += pass_.work
        size = max(pass_.draws for pass_ in self.passes)
        # Per worker: gaps (float64), their sums (int64) and the values (float32).
        self._buffers = [(np.empty(size), np.empty(size, np.int64), np.empty(size, np.float32)) for _ in self.workers]
        self._rows = np.arange(batch, dtype=np.int64) * n  # flat offset of each row in a column

    def _make_pass(self, group: list[tuple[np.random.Generator, int, dict]]) -> _Pass:
        runs, slot, columns = [], 0, 0
        parts: dict[str, list[np.ndarray]] = {name: [] for name in ("draws", "len", "p", "inv", "vstart", "run")}
        colbase = []
        for r, (stream, offset, layout) in enumerate(group):
            blocks = [(offset + lo, offset + hi) for lo, hi in layout["blocks"]]
            runs.append(_Run(stream, slot, slot + layout["draws"], blocks, layout["full_columns"] + offset))
            parts["draws"].append(layout["seg_draws"])
            parts["len"].append(layout["seg_len"])
            parts["p"].append(layout["seg_p"])
            parts["inv"].append(layout["seg_inv_rate"])
            parts["vstart"].append((layout["seg_cstart"] + columns) * self.batch)
            parts["run"].append(np.full(len(layout["seg_p"]), r, dtype=np.int64))
            colbase.append(layout["colbase"] + offset)
            slot += layout["draws"]
            columns += len(layout["colbase"])
        return _Pass(
            runs=runs,
            seg_draws=np.concatenate(parts["draws"]),
            seg_len=np.concatenate(parts["len"]),
            seg_p=np.concatenate(parts["p"]),
            seg_inv_rate=np.concatenate(parts["inv"]),
            seg_vstart=np.concatenate(parts["vstart"]),
            seg_run=np.concatenate(parts["run"]),
            colbase=np.concatenate(colbase),
            lo=group[0][1],
            hi=group[-1][1] + group[-1][2]["entries"],
            work=sum(layout["draws"] + layout["full"] for _, _, layout in group),
        )

    def fill(self, x: Tensor) -> None:
        """Overwrite x (G, K, B, n) with a fresh batch."""
        flat = x.view(-1)
        host = flat.numpy() if flat.device.type == "cpu" else np.zeros(flat.numel(), np.float32)
        jobs = [(w, host) for w in range(len(self.workers))]
        if len(jobs) == 1:
            self._work(jobs[0])
        else:
            list(_rng_pool(len(jobs)).map(self._work, jobs))
        if flat.device.type != "cpu":  # another device: drawn on the host, copied over
            flat.copy_(torch.from_numpy(host))

    def _work(self, job: tuple[int, np.ndarray]) -> None:
        """Draw worker w's passes into ``host``, x's memory (or its copy on the host)."""
        w, host = job
        for pass_ in self.workers[w]:
            host[pass_.lo : pass_.hi] = 0.0
            for positions, values in self._draw(pass_, host, *self._buffers[w]):
                host[positions] = values

    def _draw(
        self, pass_: _Pass, host: np.ndarray, gaps: np.ndarray, ends: np.ndarray, values: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """One pass: writes the p = 1 blocks into ``host``, returns the other (flat positions, values)."""
        D, draws = pass_.draws, pass_.seg_draws
        gaps, ends, values = gaps[:D], ends[:D], values[:D]
        found = []
        for run in pass_.runs:  # per stream: the gaps, their values, then the p = 1 entries' values
            stream = run.stream
            stream.standard_exponential(out=gaps[run.first : run.end])
            stream.random(out=values[run.first : run.end], dtype=np.float32)
            for lo, hi in run.blocks:
                stream.random(out=host[lo:hi], dtype=np.float32)
            if run.full_columns.size:
                found.append(
                    (
                        (run.full_columns[:, None] + self._rows[None, :]).reshape(-1),
                        stream.random(run.full_columns.size * self.batch, dtype=np.float32),
                    )
                )
        if not D:
            return found
        np.multiply(gaps, pass_.slot_inv_rate, out=gaps)  # E / lambda
        np.minimum(gaps, pass_.max_gap, out=gaps)
        np.copyto(ends, gaps, casting="unsafe")  # floor (truncation of non-negatives)
        ends += 1
        np.cumsum(ends, out=ends)  # position of each present entry, counted over the whole pass
        seg_end = ends[pass_.seg_last]  # (S,)
        before = np.concatenate([[0], seg_end[:-1]])  # positions used by the segments before each
        keep = ends <= np.repeat(before + pass_.seg_len, draws)
        ends -= np.repeat(before + 1 - pass_.seg_vstart, draws)  # now the virtual index
        virtual, kept = ends[keep], values[keep]
        if self.scale_by_p:  # seed002: x = u where u <= p, i.e. U[0, p] where present (U[0, 1] at p = 1)
            kept *= np.repeat(pass_.seg_p.astype(np.float32), draws)[keep]
        short = np.flatnonzero(seg_end - before < pass_.seg_len)
        if short.size:  # rare: a segment's first-round gaps ended before its last entry
            more = [self._top_up(pass_, int(s), int(seg_end[s] - before[s])) for s in short]
            virtual = np.concatenate([virtual, *(m[0] for m in more)])
            kept = np.concatenate([kept, *(m[1] for m in more)])
        column = virtual // self.batch  # np.divmod is 20x slower than // by a scalar
        virtual -= column * self.batch  # now the row
        virtual *= self.n_features
        virtual += pass_.colbase[column]  # now the flat position in x
        found.append((virtual, kept))
        return found

    def _top_up(self, pass_: _Pass, s: int, reached: int) -> tuple[np.ndarray, np.ndarray]:
        """Virtual indices and values of segment s's present entries after position ``reached``."""
        stream = pass_.runs[int(pass_.seg_run[s])].stream
        p, length, inv_rate = float(pass_.seg_p[s]), int(pass_.seg_len[s]), float(pass_.seg_inv_rate[s])
        virtual, kept = [], []
        while reached < length:
            count = _first_round(length - reached, p)
            gaps = np.minimum(stream.standard_exponential(count) * inv_rate, pass_.max_gap)
            values = stream.random(count, dtype=np.float32)
            ends = reached + np.cumsum(gaps.astype(np.int64) + 1)
            keep = ends <= length
            virtual.append(ends[keep] - 1 + int(pass_.seg_vstart[s]))
            kept.append(values[keep] * np.float32(p) if self.scale_by_p else values[keep])
            reached = int(ends[-1])
        return np.concatenate(virtual), np.concatenate(kept)


def _first_round(length: int, p: float) -> int:
    """Gaps drawn at first for a segment of ``length`` entries: mean + 4 sd + 4, at most ``length``."""
    mean = length * p
    return int(min(length, math.ceil(mean + 4.0 * math.sqrt(mean * (1.0 - p)) + 4.0)))


def _run_layout(p: np.ndarray, batch: int) -> dict:
    """How a run of instances with probabilities p (k, n) is drawn; flat offsets from the run's start.

    One segment per distinct p in (0, 1); instances whose every p is 1 as blocks of values; other
    p = 1 columns as full columns; p = 0 columns not at all.
    """
    k, n = p.shape
    flat_p = p.reshape(-1).astype(np.float64)  # per column (instance, feature), instance-major
    colbase = (np.arange(k)[:, None] * batch * n + np.arange(n)[None, :]).reshape(-1)
    whole = (p >= 1).all(1)  # (k,)
    blocks: list[tuple[int, int]] = []
    for kk in np.flatnonzero(whole):
        lo, hi = int(kk) * batch * n, (int(kk) + 1) * batch * n
        if blocks and blocks[-1][1] == lo:
            blocks[-1] = (blocks[-1][0], hi)
        else:
            blocks.append((lo, hi))
    full_columns = colbase[(flat_p >= 1) & ~np.repeat(whole, n)]
    levels = np.unique(flat_p[(flat_p > 0) & (flat_p < 1)])
    columns = [np.flatnonzero(flat_p == level) for level in levels]
    seg_cols = np.array([len(c) for c in columns], dtype=np.int64)
    seg_len = seg_cols * batch
    seg_draws = np.array([_first_round(int(L), q) for L, q in zip(seg_len, levels, strict=True)], dtype=np.int64)
    return {
        "seg_draws": seg_draws,
        "seg_len": seg_len,
        "seg_p": levels,
        "seg_inv_rate": 1.0 / -np.log1p(-levels),  # 1 / lambda
        "seg_cstart": np.cumsum(seg_cols) - seg_cols,  # first column of each segment
        "colbase": colbase[np.concatenate(columns)] if columns else np.zeros(0, np.int64),
        "blocks": blocks,
        "full_columns": full_columns,
        "draws": int(seg_draws.sum()),
        "full": int(whole.sum()) * batch * n + full_columns.size * batch,  # entries drawn as values only
        "entries": k * batch * n,
    }


_RNG_POOLS: dict[int, ThreadPoolExecutor] = {}


def _one_intra_op_thread() -> None:
    """OpenMP's thread count is per calling thread: a pool thread sets its own (repro.numerics)."""
    torch.set_num_threads(1)


def _rng_pool(workers: int) -> ThreadPoolExecutor:
    """Threads for the CPU draws and runs; torch releases the GIL inside its kernels."""
    if workers not in _RNG_POOLS:
        _RNG_POOLS[workers] = ThreadPoolExecutor(
            workers, thread_name_prefix="toy-rng", initializer=_one_intra_op_thread
        )
    return _RNG_POOLS[workers]

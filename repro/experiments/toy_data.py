"""The toy models' data: the feature samplers the trainer in :mod:`repro.experiments.toy` draws from.

Each seed's batches come from that seed's streams alone, whatever the other seeds in the call:
its ``torch.Generator`` (``FeatureSampler(method="torch")``, the reference path and the GPU's
default), or on a CPU by default numpy PCG64 streams keyed by two numbers drawn from it
(``method="sparse"``, :mod:`repro.experiments.toy_sparse`), which draw only the present entries of sparse data.
tests/test_toy_sampler.py checks the law (presence, values, independence across features, rows,
instances and seeds) and that a seed's batches do not depend on the seeds beside it.

A module of its own so that the trainer and the samplers each stay readable; both are in the
``depends_on`` of every experiment that trains toy models, so editing either recomputes their results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import torch
from torch import Tensor

from repro import numerics
from repro.experiments.toy_sparse import _rng_pool, _SparseDraws

__all__ = ["DataKind", "FeatureSampler", "Sampler", "SamplerMethod", "default_method"]

DataKind = Literal["paper", "seed002", "batch_mask"]
SamplerMethod = Literal["torch", "sparse"]

#: Below this feature probability the "paper" sampler draws the mask and the values separately.
#: Above it one uniform u gives both (x = u / p where u < p): given u < p, u / p is uniform on
#: [0, 1) on a grid of step 2^-24 / p, i.e. at least 4096 levels. This halves the random numbers,
#: which dominate a CPU step (torch's CPU generator is serial, ~3 ns per number).
SINGLE_DRAW_MIN_PROBABILITY = 2.0**-12


#: The sparse sampler is the CPU default where the mean over the entries of p [p < 1] is at most this:
#: its cost per present entry is about 4x torch's per entry (see :func:`default_method`).
SPARSE_MAX_DRAWN_FRACTION = 0.25

#: ... and where a seed has at least this many entries a batch (K B n): below it the sparse sampler's
#: fixed cost a step exceeds torch's draw (measured: 1,280 entries 20 vs 14 us, 12,800 27 vs 58 us).
SPARSE_MIN_ENTRIES = 2**12


class Sampler(Protocol):
    """What the trainer reads of a sampler: FeatureSampler, or any with its interface (phase's SharedMaskSampler)."""

    batch: int  # rows per instance in a call

    def __call__(self) -> Tensor: ...


class FeatureSampler:
    """Draws one batch per instance per call, each seed from its own random stream(s).

    data:
      paper       x_i = 0 with probability 1 - p_i, else U[0, 1], independently (Elhage et al.)
      seed002     u ~ U[0, 1]; x_i = u where u <= p_i else 0; then each row L2-normalised
                  (sklearn ``normalize``; all-zero rows stay zero), seed 002's generate_x.py
      batch_mask  one Bernoulli(p) mask of shape (n,) per step and instance, shared by every row of
                  the batch, values U[0, 1] (zroe1's demonstrating-superposition notebook)

    feature_probability: (K, n), p_i of each of the K instances per seed. The draws per seed and step
    have shape (K, B, n), instance-major, so that the buffer is already the (I, B, n) the model takes.

    method (None: :func:`default_method`, i.e. ``sparse`` on a CPU for sparse enough paper and
    seed002 data, else ``torch``):
      torch   every entry from the seed's ``torch.Generator``, on the device: B n uniforms per
              instance and step (one where p >= SINGLE_DRAW_MIN_PROBABILITY, else two). On CPU the
              seeds' draws are spread over torch's thread count (torch's CPU generator is serial).
              The reference path: the trainer's only sampler before the sparse one.
      sparse  only the present entries, on the host, from numpy PCG64 streams (:class:`_SparseDraws`):
              about 2 p B n numbers instead of B n, spread over torch's thread count even for one seed.
    Both draw the law above, to float32's grid of values (torch's single draw to a grid of step
    2^-24 / p); they draw different numbers, so a seed's results differ between them.
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        feature_probability: Tensor,
        batch: int,
        data: DataKind = "paper",
        method: SamplerMethod | None = None,
    ):
        self.generators = list(generators)
        device = self.generators[0].device
        p = torch.as_tensor(feature_probability, dtype=torch.float32, device=device)
        if p.ndim != 2:
            raise ValueError(f"feature_probability must have shape (K, n_features), got {tuple(p.shape)}")
        self.method: SamplerMethod = default_method(device, data, p, batch) if method is None else method
        if self.method == "sparse" and data == "batch_mask":
            raise ValueError("the sparse sampler draws independent entries; batch_mask shares one mask per batch")
        self.n_per_seed, n = p.shape[0], p.shape[1]
        self.batch, self.data = batch, data
        self.p = p.unsqueeze(1)  # (K, 1, n), broadcasts over (G, K, B, n)
        #: the torch method draws one uniform per entry (else two); kept for either method
        self.single_draw = bool(p.min() >= SINGLE_DRAW_MIN_PROBABILITY)
        G = len(self.generators)
        shape = (G, self.n_per_seed, batch, n)
        self._x = torch.empty(shape, device=device)  # (G, K, B, n), reused every step
        self._u: Tensor | None = None  # the mask's uniforms where they are a separate draw
        self._gap: Tensor | None = None
        self._sparse: _SparseDraws | None = None
        if self.method == "sparse":
            self._sparse = _SparseDraws(self.generators, p.cpu().numpy(), batch, scale_by_p=data == "seed002")
            return
        if data == "paper" and not self.single_draw:
            self._u = torch.empty(shape, device=device)  # (G, K, B, n)
        elif data == "batch_mask":
            self._u = torch.empty((G, self.n_per_seed, 1, n), device=device)  # (G, K, 1, n)
        self._gap = torch.empty(shape, device=device) if data == "paper" and self.single_draw else None
        workers = min(G, numerics.parallel_width()) if device.type == "cpu" else 1
        self._chunks = [range(w, G, workers) for w in range(workers)]  # seeds per worker

    @property
    def n_features(self) -> int:
        return self._x.shape[-1]

    def _draw_seeds(self, seeds: range) -> None:
        for g in seeds:
            gen = self.generators[g]
            torch.rand(self._x.shape[1:], generator=gen, out=self._x[g])  # (K, B, n)
            if self._u is not None:
                torch.rand(self._u.shape[1:], generator=gen, out=self._u[g])

    @torch.no_grad()
    def __call__(self) -> Tensor:
        """A fresh batch, (I, B, n); the returned tensor is overwritten by the next call."""
        x, p = self._x, self.p  # (G, K, B, n), (K, 1, n)
        if self._sparse is not None:
            self._sparse.fill(x)
            if self.data == "seed002":
                _normalise_rows(x)
            return x.view(-1, x.shape[-2], x.shape[-1])
        if len(self._chunks) == 1:
            self._draw_seeds(self._chunks[0])
        else:
            list(_rng_pool(len(self._chunks)).map(self._draw_seeds, self._chunks))
        # Zeroing where u >= p by comparing with a broadcast p into a bool mask costs 3x the
        # arithmetic on CPU; instead relu's backward kernel keeps x where p - u > 0 (exactly u < p).
        if self.data == "paper" and self.single_draw:
            assert self._gap is not None  # allocated for the paper's single draw
            torch.sub(p, x, out=self._gap)
            x.div_(p)  # given u < p, u / p ~ U[0, 1)
            _keep_where_positive(x, self._gap)
        elif self.data == "paper":
            assert self._u is not None  # a separate draw of the mask's uniforms
            _keep_where_positive(x, self._u.neg_().add_(p))  # p - u
        elif self.data == "seed002":
            x.masked_fill_(x > p, 0.0)
            _normalise_rows(x)
        else:  # batch_mask: (G, K, 1, n) mask broadcast over the batch rows
            assert self._u is not None
            x.mul_(self._u < p)
        return x.view(-1, x.shape[-2], x.shape[-1])


def default_method(
    device: torch.device | str, data: DataKind, feature_probability: Tensor | None = None, batch: int | None = None
) -> SamplerMethod:
    """``sparse`` on a CPU for independent entries (``paper``, ``seed002``) that are sparse enough, else ``torch``.

    On a CPU, torch's generator is a serial Mersenne Twister, and drawing every entry was most of a
    training step (10.4 of 18 ms for 100 models of n=20, batch 1024, p = 0.05). The sparse sampler
    costs about 9 ns per present entry of 0 < p < 1 (a float64 exponential, a float32 uniform, and
    the arithmetic that places them), against about 2.4 ns per entry for torch's single draw
    (measured on one core of the 2-core CPU of benchmarks/README.md), so it is the default when the
    mean over the entries of p [p < 1] is at most SPARSE_MAX_DRAWN_FRACTION (entries with p = 1 cost
    one uniform either way), and when a seed has at least SPARSE_MIN_ENTRIES entries (K B n) a
    batch: below that its fixed cost, some 30 numpy calls a step, exceeds torch's draw. Both
    depend on the (K, n) grid and B only, not on the seeds, so a seed's sampler does not change with
    the seeds beside it. On a GPU the device generator fills B n entries in microseconds, while the
    sparse sampler would draw on the host and copy: CUDA keeps ``torch`` (the sparse sampler was not
    measured there: no GPU was available). ``batch_mask`` shares one mask per batch, which the sparse
    sampler does not draw.
    """
    if torch.device(device).type != "cpu" or data not in ("paper", "seed002"):
        return "torch"
    if feature_probability is not None:
        p = torch.as_tensor(feature_probability, dtype=torch.float64)
        if float(torch.where(p < 1, p, 0.0).mean()) > SPARSE_MAX_DRAWN_FRACTION:
            return "torch"
        if batch is not None and p.numel() * batch < SPARSE_MIN_ENTRIES:
            return "torch"
    return "sparse"


def _normalise_rows(x: Tensor) -> None:
    """Each row (last axis) to unit L2 norm in place; all-zero rows stay zero (sklearn ``normalize``)."""
    norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # (..., 1)
    x.div_(norms.clamp_min_(1e-12))


def _keep_where_positive(x: Tensor, gate: Tensor) -> None:
    """x = x where gate > 0 else 0, in place, in one pass (aten's ReLU backward kernel)."""
    torch.ops.aten.threshold_backward.grad_input(x, gate, 0.0, grad_input=x)

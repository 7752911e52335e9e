"""Batched trainer for the toy models of Elhage et al. (2022): many small models as one tensor.

Every model is one *instance* of a batched weight tensor (the original notebook's ``n_instances``):
``W`` has shape (I, m, n) with I = n_seeds * K, seed-major (instance ``g * K + k`` is sweep point k
of seed g). Each instance's loss depends only on its own weights and data, the gradients are
computed per instance, and every optimizer here updates elementwise, so instances never interact:
training 10^6 one-neuron models costs one forward/backward over one tensor.

A seed's result does not depend on which other seeds share the call: initialisation comes from one
``torch.Generator`` per seed (on the device), seeded with the seed itself, and the data from that
seed's streams alone, drawn in the same order whatever the other seeds are: its torch generator
(``FeatureSampler(method="torch")``, the GPU's default), or on a CPU by default numpy PCG64 streams
keyed by two numbers drawn from it (``method="sparse"``); the samplers are in
:mod:`repro.experiments.toy_data`. Every computation after that is per instance. tests/test_tms.py and
tests/test_toy_sampler.py check it.

Used by :mod:`repro.experiments.tms.experiment`; usable for the one-neuron phase diagram (n=2, m=1, per-instance
importance and feature probability)::

    gens = make_generators(seeds, device)
    models = init_models(gens, n_per_seed=K, n_features=2, n_hidden=1, kind="relu_tied")
    sampler = FeatureSampler(gens, feature_probability, batch=64, data="paper")  # (K, n) probs
    train(models, sampler, importance, TrainSettings(steps=6000, lr=1e-2, optimizer="adam"))
    loss = loss_per_instance(models, sampler, importance)  # (I,)

The backward pass is written out by hand (checked against autograd in tests/test_tms.py): measured
on a 2-core CPU it is 1.2-2x faster than autograd for these shapes, because it skips the graph and
the loss value, neither of which training needs. On a CPU, :func:`train` computes it run by run of
instances on one thread per core (:class:`_RunGradients`, checked against :func:`gradients` in
tests/test_toy_sampler.py), and the sampler draws only the present entries of sparse data: for 100
models of n=20, m=5, batch 1024, p = 0.05 a step went from about 18 ms to 4-5 ms on 2 cores
(benchmarks/README.md).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from repro import numerics
from repro.experiments.toy_data import DataKind, FeatureSampler, Sampler, SamplerMethod, _rng_pool, default_method

__all__ = [
    "DataKind",
    "FeatureSampler",
    "ModelKind",
    "OptimizerKind",
    "SamplerMethod",
    "ToyModels",
    "TrainSettings",
    "batched_matmul",
    "default_method",
    "gradients",
    "init_models",
    "loss_per_instance",
    "loss_weight",
    "make_generators",
    "make_optimizer",
    "train",
]

ModelKind = Literal["linear", "relu_tied", "relu_untied"]
OptimizerKind = Literal["adamw", "adam", "sgd", "rmsprop"]
InitKind = Literal["xavier_normal", "normal"]
BiasInitKind = Literal["zeros", "normal"]

#: On a GPU, models with m * n at most this (the phase diagrams' n=2, m=1 and n=3, m=2) train with
#: broadcast products instead of batched GEMMs.
SMALL_MODEL_SIZE = 6

#: On a CPU, :func:`train` computes the gradients run by run of instances (:class:`_RunGradients`) when
#: x has at least this many entries. Measured on 2 cores, gradients of one step: 100 models of n=20,
#: m=5 at batch 1024 (2M entries) 1.7 ms by runs against 6.5 ms whole; 100 one-neuron models at
#: batch 64 (12,800 entries) 0.19 ms against 0.10 (the thread pool's hand-over dominates).
RUN_GRADIENTS_MIN_ENTRIES = 2**20


def make_generators(seeds: Sequence[int], device: torch.device | str) -> list[torch.Generator]:
    """One generator per seed, on ``device``, seeded with the seed itself."""
    return [torch.Generator(device=torch.device(device)).manual_seed(int(seed)) for seed in seeds]


@dataclass
class ToyModels:
    """I = n_seeds * n_per_seed models, seed-major.

    linear:      x' = W^T W x + b
    relu_tied:   x' = ReLU(W^T W x + b)
    relu_untied: x' = ReLU(W2 W1 x + b), ``W`` holds W1 (seed 002's two-weight net)
    """

    kind: ModelKind
    W: Tensor  # (I, m, n)
    b: Tensor  # (I, n)
    W2: Tensor | None  # (I, n, m) for relu_untied, else None
    n_seeds: int
    #: multiply by broadcasting instead of batched GEMMs (see :func:`batched_matmul`)
    small: bool = False

    @property
    def n_per_seed(self) -> int:
        return self.W.shape[0] // self.n_seeds

    def parameters(self) -> list[Tensor]:
        return [self.W, self.b] if self.W2 is None else [self.W, self.W2, self.b]

    def preactivation(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (I, B, n) -> (hidden, transposed, h^T (I, m, B); output before the ReLU (I, B, n)).

        The hidden layer is kept as h^T = W x^T: MKL's batched matmul is 2-3x faster writing long
        rows (I, m, B) than short ones (I, B, m) for m << B.
        """
        hT = batched_matmul(self.W, x.transpose(1, 2), self.small)  # (I, m, B)
        out_weight = self.W if self.W2 is None else self.W2.transpose(1, 2)  # (I, m, n)
        pre = batched_matmul(hT.transpose(1, 2), out_weight, self.small, add=self.b.unsqueeze(1))
        return hT, pre  # (I, m, B), (I, B, n)

    def forward(self, x: Tensor) -> Tensor:
        """x (I, B, n) -> reconstruction x' (I, B, n)."""
        _, pre = self.preactivation(x)
        return pre if self.kind == "linear" else torch.relu(pre)


def init_models(
    generators: Sequence[torch.Generator],
    n_per_seed: int,
    n_features: int,
    n_hidden: int,
    kind: ModelKind,
    init: InitKind = "xavier_normal",
    init_std: float = 1.0,
    bias_init: BiasInitKind = "zeros",
    bias_std: float = 1.0,
) -> ToyModels:
    """Draw each seed's K models from its own generator: W (K, m, n), then W2 (K, n, m), then b (K, n).

    xavier_normal is torch's ``xavier_normal_`` per model, std sqrt(2 / (m + n)) for W and W2 alike.
    On a GPU, models with m * n <= SMALL_MODEL_SIZE are marked ``small`` (broadcast products).
    """
    n, m, K = n_features, n_hidden, n_per_seed
    std = (2.0 / (m + n)) ** 0.5 if init == "xavier_normal" else init_std
    device = generators[0].device
    Ws, W2s, bs = [], [], []
    for gen in generators:
        Ws.append(torch.randn((K, m, n), generator=gen, device=device) * std)
        if kind == "relu_untied":
            W2s.append(torch.randn((K, n, m), generator=gen, device=device) * std)
        if bias_init == "normal":
            bs.append(torch.randn((K, n), generator=gen, device=device) * bias_std)
        else:
            bs.append(torch.zeros((K, n), device=device))
    return ToyModels(
        kind=kind,
        W=torch.cat(Ws),
        b=torch.cat(bs),
        W2=torch.cat(W2s) if W2s else None,
        n_seeds=len(generators),
        small=device.type != "cpu" and m * n <= SMALL_MODEL_SIZE,
    )


def _one_torch_thread() -> None:
    """No intra-op threads in this thread's torch kernels.

    OpenMP's thread count is per calling thread (torch.set_num_threads in the main thread does not
    reach a pool thread that already ran a parallel kernel), so each worker sets its own.
    """
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 10_000
    lr: float = 1e-3
    optimizer: OptimizerKind = "adamw"
    weight_decay: float = 0.01  # adamw only
    loss_reduction: Literal["mean", "sum"] = "mean"  # over the batch; features are always summed


def make_optimizer(params: list[Tensor], settings: TrainSettings) -> torch.optim.Optimizer:
    """Elementwise optimizers only, so that instances never interact.

    foreach, not fused: torch's fused CPU Adam rounds an element differently depending on where it
    falls in the vectorised loop, so a seed's weights would differ in the last bit with the number
    of seeds beside it; with foreach kernels they are bitwise the same (measured, torch 2.14).
    """
    lr = settings.lr
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=settings.weight_decay, foreach=True)
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, foreach=True)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, foreach=True)
    return torch.optim.RMSprop(params, lr=lr, foreach=True)


@torch.no_grad()
def gradients(models: ToyModels, x: Tensor, weight: Tensor) -> list[Tensor]:
    """Gradients of sum over instances of sum_rows sum_i weight_i (x_i - x'_i)^2 / 2, in
    ``models.parameters()`` order. x (I, B, n); weight (I, 1, n) (2 * importance / B for a batch mean).
    """
    hT, pre = models.preactivation(x)  # (I, m, B), (I, B, n)
    d = (pre - x).mul_(weight)  # dL/dpre where the ReLU passes, (I, B, n)
    if models.kind != "linear":
        # ReLU backward in one pass: d where pre > 0, else 0 (aten's own relu backward kernel).
        d = torch.ops.aten.threshold_backward(d, pre, 0.0)
    grad_b = d.sum(1)  # (I, n)
    small = models.small
    if models.W2 is None:
        # W is used twice: pre = h W + b with h = x W^T.
        grad_W = batched_matmul(hT, d, small)  # (I, m, n)
        dhT = batched_matmul(models.W, d.transpose(1, 2), small)  # dL/dh transposed, (I, m, B)
        grad_W += batched_matmul(dhT, x, small)
        return [grad_W, grad_b]
    grad_W2 = batched_matmul(hT, d, small).transpose(1, 2).contiguous()  # (I, n, m)
    dhT = batched_matmul(models.W2.transpose(1, 2), d.transpose(1, 2), small)  # (I, m, B)
    grad_W1 = batched_matmul(dhT, x, small)  # (I, m, n)
    return [grad_W1, grad_W2, grad_b]


def batched_matmul(a: Tensor, b: Tensor, small: bool, add: Tensor | None = None) -> Tensor:
    """a (I, p, q) @ b (I, q, r) (+ add) -> (I, p, r).

    small: multiply by broadcasting and sum over q instead of a batched GEMM. cuBLAS is slow for a
    million 1x2 @ 2x64 products: on an H100, the gradients of one n=2, m=1 step for 10^6 models
    (batch 64) took 21 ms with bmm and 7 ms broadcast. On a 2-core CPU bmm stays faster (24 vs
    35 ms for 2 x 10^4 such models), so CPU models never take this path.
    """
    if small:
        out = (a.unsqueeze(-1) * b.unsqueeze(1)).sum(2)  # (I, p, q, r) -> (I, p, r)
        return out if add is None else out.add_(add)
    if add is None:
        return torch.bmm(a, b)
    return torch.baddbmm(add, a, b)


def loss_weight(importance: Tensor, n_seeds: int, batch: int, reduction: str) -> Tensor:
    """importance (K, n) -> d(loss)/d(squared error) per instance and feature, (I, 1, n)."""
    scale = 2.0 / batch if reduction == "mean" else 2.0
    return (importance.repeat(n_seeds, 1) * scale).unsqueeze(1)


class _RunGradients:
    """The gradients of :func:`gradients`, computed run by run of instances into buffers kept across steps.

    For the CPU. The whole-tensor version makes about eight passes over (I, B, n) tensors (8 MB each
    for 100 models of n=20 at batch 1024), each from main memory, and allocates three such tensors
    per step; here each run of about RUN_ENTRIES entries (x, the output and its gradient) stays in
    cache from the forward to the last product, the bias's gradient comes out of the weight's GEMM
    (a row of ones under h^T), (pre - x) * weight is one kernel (aten's mse_loss_backward), and the
    runs go to ``workers`` threads with torch's own intra-op threads off (see :func:`train`).
    Runs hold whole seeds or parts of one seed, so no run mixes two seeds' instances unless both
    are whole.
    """

    #: entries of x per run: x, the output and its gradient of a run take about 3 x 2 MB
    RUN_ENTRIES = 2**19

    def __init__(self, models: ToyModels, batch: int, weight: Tensor, workers: int):
        instances, m, n = models.W.shape
        G, K, B = models.n_seeds, models.n_per_seed, batch
        entries = K * B * n  # per seed
        if entries >= self.RUN_ENTRIES or G < workers:  # each seed in parts of about equal size
            parts = math.ceil(entries / self.RUN_ENTRIES)
            if G < workers:  # one seed's parts go to different workers: as many as can share them evenly
                parts = math.ceil(parts * G / workers) * workers // G
            size = math.ceil(K / min(K, parts))
            starts = [g * K + k for g in range(G) for k in range(0, K, size)]
            ends = [min(s + size, (s // K + 1) * K) for s in starts]
        else:  # whole seeds, about 4 runs a worker (so that they share the seeds evenly) or more
            size = max(1, min(self.RUN_ENTRIES // entries, math.ceil(G / (4 * workers)))) * K
            starts = list(range(0, instances, size))
            ends = [min(s + size, instances) for s in starts]
        self.runs = [slice(s, e) for s, e in zip(starts, ends, strict=True)]
        self.models, self.workers = models, max(1, min(workers, len(self.runs)))
        self.half_weight = (weight / 2).expand(instances, 1, n)  # mse_loss_backward doubles
        longest = max(e - s for s, e in zip(starts, ends, strict=True))
        device = models.W.device
        self.out_weight = torch.empty((instances, m + 1, n), device=device)  # [W, or W2^T; b]
        self.grad_out = torch.empty((instances, m + 1, n), device=device)  # its gradient
        self.scratch = [
            (
                torch.empty((longest, m + 1, B), device=device).index_fill_(1, torch.tensor([m]), 1.0),  # [h^T; 1]
                torch.empty((longest, B, n), device=device),  # pre
                torch.empty((longest, B, n), device=device),  # d, dL/dpre
                torch.empty((longest, m, B), device=device),  # dL/dh, transposed
            )
            for _ in range(self.workers)
        ]
        self.grad_W = torch.empty_like(models.W)
        self.grad_W2 = None if models.W2 is None else torch.empty_like(models.W2)
        self.grad_b = torch.empty_like(models.b)
        self.assigned = [self.runs[w :: self.workers] for w in range(self.workers)]  # runs per worker
        self.x: Tensor | None = None

    def __call__(self, x: Tensor) -> list[Tensor]:
        models = self.models
        m = models.W.shape[1]
        self.out_weight[:, :m] = models.W if models.W2 is None else models.W2.transpose(1, 2)
        self.out_weight[:, m] = models.b
        self.x = x
        if self.workers == 1:
            self._work(0)
        else:
            list(_rng_pool(self.workers).map(self._pool_work, range(self.workers)))
        self.x = None
        self.grad_b.copy_(self.grad_out[:, m])
        if models.W2 is None:
            self.grad_W += self.grad_out[:, :m]  # W is used twice: in h = x W^T and in h W + b
            return [self.grad_W, self.grad_b]
        assert self.grad_W2 is not None  # allocated where models.W2 is
        self.grad_W2.copy_(self.grad_out[:, :m].transpose(1, 2))
        return [self.grad_W, self.grad_W2, self.grad_b]

    def _pool_work(self, w: int) -> None:
        _one_torch_thread()
        self._work(w)

    def _work(self, w: int) -> None:
        models, x = self.models, self.x
        assert x is not None  # set by __call__ around the work
        m = models.W.shape[1]
        hT_buf, pre_buf, d_buf, dhT_buf = self.scratch[w]
        for run in self.assigned[w]:
            C = run.stop - run.start
            xr, W = x[run], models.W[run]
            hT, pre, d, dhT = hT_buf[:C], pre_buf[:C], d_buf[:C], dhT_buf[:C]
            torch.bmm(W, xr.transpose(1, 2), out=hT[:, :m])  # (C, m, B)
            torch.bmm(hT.transpose(1, 2), self.out_weight[run], out=pre)  # h W + b, (C, B, n)
            torch.ops.aten.mse_loss_backward.grad_input(self.half_weight[run], pre, xr, 0, grad_input=d)
            if models.kind != "linear":
                torch.ops.aten.threshold_backward.grad_input(d, pre, 0.0, grad_input=d)
            torch.bmm(hT, d, out=self.grad_out[run])  # [h^T d; sum of d over rows], (C, m + 1, n)
            back = W if models.W2 is None else models.W2[run].transpose(1, 2)  # (C, m, n)
            torch.bmm(back, d.transpose(1, 2), out=dhT)  # (C, m, B)
            torch.bmm(dhT, xr, out=self.grad_W[run])  # (C, m, n)


@torch.no_grad()
def train(
    models: ToyModels,
    sampler: Sampler,
    importance: Tensor,
    settings: TrainSettings,
    by_runs: bool | None = None,
) -> None:
    """Train every instance in place for ``settings.steps`` steps with a fresh optimizer.

    importance: (K, n), the weight of each feature's squared error, per sweep point.

    by_runs (default: on a CPU when x has at least RUN_GRADIENTS_MIN_ENTRIES entries, unless the
    models are ``small``): compute each step's gradients run by run of instances on
    repro.numerics.parallel_width() Python threads (:class:`_RunGradients`), with torch's intra-op threads
    set to 1 meanwhile (restored after), so that the sampler's numpy draws and each run's kernels
    share the cores without OpenMP's spinning threads competing with them. Otherwise whole tensors
    with :func:`gradients` (the GPU's way, and the CPU's before; the same sums in another order, so
    the weights agree to float rounding, not bitwise).
    """
    params = models.parameters()
    optimizer = make_optimizer(params, settings)
    imp = torch.as_tensor(importance, dtype=torch.float32, device=models.W.device)
    weight = loss_weight(imp, models.n_seeds, sampler.batch, settings.loss_reduction)
    if by_runs is None:
        entries = models.W.shape[0] * sampler.batch * models.W.shape[2]  # of x
        by_runs = models.W.device.type == "cpu" and not models.small and entries >= RUN_GRADIENTS_MIN_ENTRIES
    threads = torch.get_num_threads()
    if by_runs:
        width = numerics.parallel_width()
        step_gradients: Callable[[Tensor], list[Tensor]] = _RunGradients(models, sampler.batch, weight, width)
    else:
        step_gradients = functools.partial(gradients, models, weight=weight)
    try:
        if by_runs:
            torch.set_num_threads(1)
        for _ in range(settings.steps):
            x = sampler()  # (I, B, n)
            for param, grad in zip(params, step_gradients(x), strict=True):
                param.grad = grad
            optimizer.step()
    finally:
        if by_runs:
            torch.set_num_threads(threads)


@torch.no_grad()
def loss_per_instance(models: ToyModels, sampler: Sampler, importance: Tensor, n_batches: int = 8) -> Tensor:
    """Mean over n_batches fresh batches' rows of sum_i I_i (x_i - x'_i)^2, per instance, (I,)."""
    imp = torch.as_tensor(importance, dtype=torch.float32, device=models.W.device)
    imp = imp.repeat(models.n_seeds, 1).unsqueeze(1)  # (I, 1, n)
    total = torch.zeros(models.W.shape[0], dtype=torch.float64, device=models.W.device)
    for _ in range(n_batches):
        x = sampler()  # (I, B, n)
        err = (models.forward(x) - x).square_().mul_(imp)  # (I, B, n)
        total += err.sum((1, 2), dtype=torch.float64)
    return total / (n_batches * sampler.batch)

"""Batched trainer for the toy models of Elhage et al. (2022): many small models as one tensor.

Every model is one *instance* of a batched weight tensor (the original notebook's ``n_instances``):
``W`` has shape (I, m, n) with I = n_seeds * K, seed-major (instance ``g * K + k`` is sweep point k
of seed g). Each instance's loss depends only on its own weights and data, the gradients are
computed per instance, and every optimizer here updates elementwise, so instances never interact:
training 10^6 one-neuron models costs one forward/backward over one tensor.

A seed's result does not depend on which other seeds share the call: initialisation and data come
from one ``torch.Generator`` per seed (on the device), seeded with the seed itself, drawn in the
same order whatever the other seeds are.

Used by :mod:`repro.experiments.tms`; usable for the one-neuron phase diagram (n=2, m=1, per-instance
importance and feature probability)::

    gens = make_generators(seeds, device)
    models = init_models(gens, n_per_seed=K, n_features=2, n_hidden=1, kind="relu_tied")
    sampler = FeatureSampler(gens, feature_probability, batch=64, data="paper")  # (K, n) probs
    train(models, sampler, importance, TrainSettings(steps=6000, lr=1e-2, optimizer="adam"))
    loss = loss_per_instance(models, sampler, importance)  # (I,)

The backward pass is written out by hand (checked against autograd in tests/test_tms.py): measured
on a 2-core CPU it is 1.2-2x faster than autograd for these shapes, because it skips the graph and
the loss value, neither of which training needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "DataKind",
    "FeatureSampler",
    "ModelKind",
    "OptimizerKind",
    "ToyModels",
    "TrainSettings",
    "batched_matmul",
    "gradients",
    "init_models",
    "loss_per_instance",
    "loss_weight",
    "make_generators",
    "make_optimizer",
    "train",
]

ModelKind = Literal["linear", "relu_tied", "relu_untied"]
DataKind = Literal["paper", "seed002", "batch_mask"]
OptimizerKind = Literal["adamw", "adam", "sgd", "rmsprop"]
InitKind = Literal["xavier_normal", "normal"]
BiasInitKind = Literal["zeros", "normal"]

#: On a GPU, models with m * n at most this (the phase diagrams' n=2, m=1 and n=3, m=2) train with
#: broadcast products instead of batched GEMMs.
SMALL_MODEL_SIZE = 6

#: Below this feature probability the "paper" sampler draws the mask and the values separately.
#: Above it one uniform u gives both (x = u / p where u < p): given u < p, u / p is uniform on
#: [0, 1) on a grid of step 2^-24 / p, i.e. at least 4096 levels. This halves the random numbers,
#: which dominate a CPU step (torch's CPU generator is serial, ~3 ns per number).
SINGLE_DRAW_MIN_PROBABILITY = 2.0**-12


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


class FeatureSampler:
    """Draws one batch per instance per call, each seed from its own generator.

    data:
      paper       x_i = 0 with probability 1 - p_i, else U[0, 1], independently (Elhage et al.)
      seed002     u ~ U[0, 1]; x_i = u where u <= p_i else 0; then each row L2-normalised
                  (sklearn ``normalize``; all-zero rows stay zero), seed 002's generate_x.py
      batch_mask  one Bernoulli(p) mask of shape (n,) per step and instance, shared by every row of
                  the batch, values U[0, 1] (zroe1's demonstrating-superposition notebook)

    feature_probability: (K, n), p_i of each of the K instances per seed. The draws per seed and step
    have shape (K, B, n), instance-major, so that the buffer is already the (I, B, n) the model takes.
    On CPU the seeds' draws are spread over torch's thread count (torch's CPU generator is serial,
    and the draws are most of a step); each seed still draws from its own generator in its own order.
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        feature_probability: Tensor,
        batch: int,
        data: DataKind = "paper",
    ):
        self.generators = list(generators)
        device = self.generators[0].device
        p = torch.as_tensor(feature_probability, dtype=torch.float32, device=device)
        if p.ndim != 2:
            raise ValueError(f"feature_probability must have shape (K, n_features), got {tuple(p.shape)}")
        self.n_per_seed, n = p.shape[0], p.shape[1]
        self.batch, self.data = batch, data
        self.p = p.unsqueeze(1)  # (K, 1, n), broadcasts over (G, K, B, n)
        self.single_draw = bool(p.min() >= SINGLE_DRAW_MIN_PROBABILITY)
        G = len(self.generators)
        shape = (G, self.n_per_seed, batch, n)
        self._x = torch.empty(shape, device=device)  # (G, K, B, n), reused every step
        self._u: Tensor | None = None  # the mask's uniforms where they are a separate draw
        if data == "paper" and not self.single_draw:
            self._u = torch.empty(shape, device=device)  # (G, K, B, n)
        elif data == "batch_mask":
            self._u = torch.empty((G, self.n_per_seed, 1, n), device=device)  # (G, K, 1, n)
        self._gap = torch.empty(shape, device=device) if data == "paper" and self.single_draw else None
        workers = min(G, torch.get_num_threads()) if device.type == "cpu" else 1
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
        if len(self._chunks) == 1:
            self._draw_seeds(self._chunks[0])
        else:
            list(_rng_pool(len(self._chunks)).map(self._draw_seeds, self._chunks))
        x, p = self._x, self.p  # (G, K, B, n), (K, 1, n)
        # Zeroing where u >= p by comparing with a broadcast p into a bool mask costs 3x the
        # arithmetic on CPU; instead relu's backward kernel keeps x where p - u > 0 (exactly u < p).
        if self.data == "paper" and self.single_draw:
            torch.sub(p, x, out=self._gap)
            x.div_(p)  # given u < p, u / p ~ U[0, 1)
            _keep_where_positive(x, self._gap)
        elif self.data == "paper":
            _keep_where_positive(x, self._u.neg_().add_(p))  # p - u
        elif self.data == "seed002":
            x.masked_fill_(x > p, 0.0)
            norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # (G, K, B, 1)
            x.div_(norms.clamp_min_(1e-12))
        else:  # batch_mask: (G, K, 1, n) mask broadcast over the batch rows
            x.mul_(self._u < p)
        return x.view(-1, x.shape[-2], x.shape[-1])


def _keep_where_positive(x: Tensor, gate: Tensor) -> None:
    """x = x where gate > 0 else 0, in place, in one pass (aten's ReLU backward kernel)."""
    torch.ops.aten.threshold_backward.grad_input(x, gate, 0.0, grad_input=x)


_RNG_POOLS: dict[int, ThreadPoolExecutor] = {}


def _rng_pool(workers: int) -> ThreadPoolExecutor:
    """Threads for the CPU draws; torch releases the GIL inside torch.rand."""
    if workers not in _RNG_POOLS:
        _RNG_POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="toy-rng")
    return _RNG_POOLS[workers]


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


@torch.no_grad()
def train(models: ToyModels, sampler: FeatureSampler, importance: Tensor, settings: TrainSettings) -> None:
    """Train every instance in place for ``settings.steps`` steps with a fresh optimizer.

    importance: (K, n), the weight of each feature's squared error, per sweep point.
    """
    params = models.parameters()
    optimizer = make_optimizer(params, settings)
    imp = torch.as_tensor(importance, dtype=torch.float32, device=models.W.device)
    weight = loss_weight(imp, models.n_seeds, sampler.batch, settings.loss_reduction)
    for _ in range(settings.steps):
        x = sampler()  # (I, B, n)
        for param, grad in zip(params, gradients(models, x, weight), strict=True):
            param.grad = grad
        optimizer.step()


@torch.no_grad()
def loss_per_instance(models: ToyModels, sampler: FeatureSampler, importance: Tensor, n_batches: int = 8) -> Tensor:
    """Mean over n_batches fresh batches' rows of sum_i I_i (x_i - x'_i)^2, per instance, (I,)."""
    imp = torch.as_tensor(importance, dtype=torch.float32, device=models.W.device)
    imp = imp.repeat(models.n_seeds, 1).unsqueeze(1)  # (I, 1, n)
    total = torch.zeros(models.W.shape[0], dtype=torch.float64, device=models.W.device)
    for _ in range(n_batches):
        x = sampler()  # (I, B, n)
        err = (models.forward(x) - x).square_().mul_(imp)  # (I, B, n)
        total += err.sum((1, 2), dtype=torch.float64)
    return total / (n_batches * sampler.batch)

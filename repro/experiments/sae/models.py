"""The networks of ``sae.mnist``: G seeds' classifiers as one set of tensors, and every autoencoder
of one kind and size over all seeds as another, each instance drawn from its own random stream so
that its result does not depend on the company it trains in. :mod:`repro.experiments.sae.experiment` measures
them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from repro.experiments.common import stream

if TYPE_CHECKING:
    from repro.experiments.sae.experiment import SaeParams

__all__ = [
    "N_CLASSES",
    "Classifier",
    "Dictionary",
    "DictionaryGroup",
    "accuracy",
    "cross_entropy",
    "l0",
    "layer_norm",
    "train_classifier",
    "train_dictionaries",
]

N_CLASSES = 10
_CLASSIFIER, _SAE_ORDER, _SAE_INIT = 0, 1, 2  # random streams of a replicate seed


class Dictionary(BaseModel):
    """One sparse autoencoder (a "dictionary") trained on the cached activations.

    l1 (the source's): z = ReLU(W_e x + b_e), x' = W_d z + b_d, torch's default Linear init, loss
    MSE + l1 * mean|z| (mean over inputs and latents). topk (Gao et al. 2024; openai/sparse_autoencoder's
    model.py Autoencoder with TopK and normalize=True, as its TopK checkpoints load, and train.py's
    init and decoder constraint): each input is layer-normed over its d dimensions, n = (x - m) /
    (s + 1e-5) with m its mean and s its standard deviation (Bessel's correction); z = ReLU(TopK_k(
    W_e (n - b_d) + b_e)), x' = (W_d z + b_d) s + m; loss MSE / v, v the train activations' variance
    (train.py's mse_scale). Init: W_e torch's Linear init U(+-1/sqrt(d)), W_d = W_e^T with unit-norm
    rows, b_e = b_d = 0. After each backward pass, before the Adam step, the decoder rows are set to
    unit norm and each row's gradient is projected orthogonal to it. No auxiliary loss for dead
    latents (train.py's AuxK) and no data-dependent init (train.py's init_from_data_, written for its
    unnormalised model). Where fewer than k pre-activations are positive, the ReLU leaves fewer
    than k latents on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["l1", "topk"] = Field("l1", description="l1: ReLU + L1 penalty (the source); topk: TopK.")
    latents: int = Field(256, ge=1, le=65_536, description="Dictionary size (the source: 256 for 16 units).")
    l1: float = Field(0.01, ge=0.0, le=1e4, description="kind l1: coefficient of mean|z| (the source: 0.01).")
    k: int | None = Field(None, ge=1, description="kind topk: latents kept per input.")
    match_l1: float | None = Field(
        None,
        gt=0.0,
        le=1e4,
        description="kind topk, instead of k: TopK at matched L0. Per seed, k = round(L0 on the train split) "
        "of an l1 dictionary of the same size, seed and this coefficient, trained alongside.",
    )
    seed: int = Field(0, ge=0, lt=2**31, description="Init stream: equal dictionaries with other seeds are replicates.")

    @model_validator(mode="after")
    def _kind_fields(self) -> Dictionary:
        if self.kind == "l1" and (self.k is not None or self.match_l1 is not None):
            raise ValueError("k and match_l1 belong to kind = 'topk'")
        if self.kind == "topk":
            if "l1" in self.model_fields_set:
                raise ValueError("kind 'topk' has no l1 penalty (use match_l1 to match an l1 dictionary's L0)")
            if (self.k is None) == (self.match_l1 is None):
                raise ValueError("kind 'topk' needs exactly one of k and match_l1")
            if self.k is not None and self.k > self.latents:
                raise ValueError(f"k = {self.k} exceeds latents = {self.latents}")
        return self


def l0(codes: Tensor) -> Tensor:
    """Mean number of active latents per input: codes (..., N, L) -> (...)."""
    return (codes > 0).sum(-1).to(torch.float64).mean(-1)


# -- the classifier: G seeds as one set of tensors -------------------------------------------------------


def _uniform(generator: torch.Generator, shape: tuple[int, ...], bound: float) -> Tensor:
    return (torch.rand(shape, generator=generator, dtype=torch.float32) * 2 - 1) * bound


@dataclass
class Classifier:
    """G MLPs P-H-H-10 with ReLUs: W1 (G, P, H), W2 (G, H, H), W3 (G, H, 10), biases (G, out)."""

    weights: list[Tensor]  # [W1, b1, W2, b2, W3, b3]

    @classmethod
    def init(cls, seeds: Sequence[int], n_pixels: int, hidden: int, device: torch.device) -> Classifier:
        """torch's nn.Linear init (U(+-1/sqrt(fan_in)) for weights and biases), one generator per seed."""
        per_seed = []
        for seed in seeds:
            g = torch.Generator().manual_seed(stream(seed, _CLASSIFIER))
            layers = []
            for fan_in, fan_out in ((n_pixels, hidden), (hidden, hidden), (hidden, N_CLASSES)):
                bound = 1 / math.sqrt(fan_in)
                layers += [_uniform(g, (fan_in, fan_out), bound), _uniform(g, (fan_out,), bound)]
            per_seed.append(layers)
        return cls([torch.stack(ts).to(device).requires_grad_() for ts in zip(*per_seed, strict=True)])

    def hidden(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (G, B, P) per seed, or (N, P) shared by all seeds -> both hidden layers, each (G, N, H)."""
        W1, b1, W2, b2 = self.weights[:4]
        first = torch.einsum("np,gph->gnh", x, W1) if x.dim() == 2 else torch.bmm(x, W1)
        h1 = torch.relu(first + b1[:, None])
        return h1, torch.relu(torch.bmm(h1, W2) + b2[:, None])

    def head(self, layer: int, h: Tensor, which: Tensor | None = None) -> Tensor:
        """Logits (I, N, 10) from layer ``layer``'s activations h (I, N, H); ``which`` picks seeds per row."""
        W2, b2, W3, b3 = (w if which is None else w[which] for w in self.weights[2:])
        if layer == 1:
            h = torch.relu(torch.bmm(h, W2) + b2[:, None])
        return torch.bmm(h, W3) + b3[:, None]

    def logits(self, x: Tensor) -> Tensor:
        return self.head(2, self.hidden(x)[1])


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy per row of logits (I, N, 10) against labels (N,) or (I, N) -> (I,)."""
    labels = labels.expand(logits.shape[:2])
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(logits.shape[:2]).mean(1)


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    return (logits.argmax(-1) == labels).to(torch.float64).mean(-1)


def train_classifier(params: SaeParams, seeds: Sequence[int], x: Tensor, y: Tensor,
                     x_val: Tensor | None, y_val: Tensor | None) -> Classifier:  # fmt: skip
    """Adam on every seed's MLP at once (each seed its own batch order); keep each seed's best epoch."""
    G, n = len(seeds), x.shape[0]
    net = Classifier.init(seeds, x.shape[1], params.hidden, x.device)
    optimizer = torch.optim.Adam(net.weights, lr=params.lr)
    orders = [torch.Generator().manual_seed(stream(seed, _CLASSIFIER, 1)) for seed in seeds]
    best = [w.detach().clone() for w in net.weights]
    best_score = torch.full((G, 2), -math.inf, dtype=torch.float64, device=x.device)  # (accuracy, -loss)
    for _ in range(params.epochs):
        perm = torch.stack([torch.randperm(n, generator=g) for g in orders]).to(x.device)  # (G, n)
        for start in range(0, n, params.batch):
            index = perm[:, start : start + params.batch]  # (G, B): the last batch may be short
            loss = cross_entropy(net.logits(x[index]), y[index]).sum()  # seeds' losses are independent
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if x_val is None:
            continue
        assert y_val is not None  # the split holds both validation tensors or neither
        with torch.no_grad():  # the source: keep a higher validation accuracy, or an equal one at lower loss
            logits = net.logits(x_val)
            score = torch.stack([accuracy(logits, y_val), -cross_entropy(logits, y_val).double()], 1)  # (G, 2)
            better = (score[:, 0] > best_score[:, 0]) | (
                (score[:, 0] == best_score[:, 0]) & (score[:, 1] > best_score[:, 1])
            )
            best_score = torch.where(better[:, None], score, best_score)
            for kept, w in zip(best, net.weights, strict=True):
                kept.copy_(torch.where(better.view(-1, *[1] * (w.dim() - 1)), w.detach(), kept))
    return Classifier(best if x_val is not None else [w.detach() for w in net.weights])


# -- the autoencoders: every (seed, dictionary) of one kind and size as one set of tensors ---------------------


LAYER_NORM_EPS = 1e-5  # Gao et al.'s model.py LN: (x - mean) / (std + eps)


def layer_norm(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each input over its last dimension: (x - m) / (s + eps), m the mean and s the standard deviation
    (Bessel's correction) -> (normalised x, m, s), m and s keeping a trailing dimension of 1."""
    mean = x.mean(-1, keepdim=True)
    centred = x - mean
    sd = centred.std(-1, keepdim=True)
    return centred / (sd + LAYER_NORM_EPS), mean, sd


@dataclass
class DictionaryGroup:
    """Autoencoders of one kind and size, instance i trained on seed ``seed_index[i]``'s activations.

    weights: W_e (I, d, L), b_e (I, L), W_d (I, L, d), b_d (I, d); for topk, b_d lives in the layer-normed space.
    """

    kind: str
    members: list[tuple[int, int]]  # (seed position g, dictionary index j; j < 0: a hidden L0 reference)
    seed_index: Tensor  # (I,) long
    l1: Tensor  # (I,) penalty coefficients (0 for topk)
    k: Tensor  # (I,) long, latents kept per input (topk only)
    mse_weight: Tensor  # (I,) topk: 1 / the variance of the seed's train activations (l1: unused)
    weights: list[Tensor]

    def forward(self, x: Tensor, rows: slice = slice(None)) -> tuple[Tensor, Tensor]:
        """x (I', B, d) -> codes (I', B, L) and reconstructions (I', B, d) for instances ``rows``."""
        W_e, b_e, W_d, b_d = (w[rows] for w in self.weights)
        if self.kind == "l1":
            z = torch.relu(torch.bmm(x, W_e) + b_e[:, None])
            return z, torch.bmm(z, W_d) + b_d[:, None]
        normed, mean, sd = layer_norm(x)
        pre = torch.bmm(normed - b_d[:, None], W_e) + b_e[:, None]  # (I', B, L)
        k = self.k[rows]
        values, index = pre.topk(int(k.max()), dim=-1)  # (I', B, k_max), largest first
        keep = torch.arange(values.shape[-1], device=x.device) < k[:, None, None]  # each instance its own k
        z = torch.zeros_like(pre).scatter(-1, index, torch.relu(values) * keep)
        return z, (torch.bmm(z, W_d) + b_d[:, None]) * sd + mean

    def encode(self, x: Tensor, rows: slice = slice(None)) -> Tensor:
        """x (I', B, d) -> codes (I', B, L) for instances ``rows``."""
        return self.forward(x, rows)[0]

    def constrain_decoder(self) -> None:
        """topk, between the backward pass and the step: unit-norm decoder rows, gradients orthogonal to them."""
        if self.kind == "topk":
            with torch.no_grad():
                W_d = self.weights[2]
                W_d.div_(W_d.norm(dim=-1, keepdim=True).clamp_min(1e-12))
                assert W_d.grad is not None
                W_d.grad.sub_((W_d.grad * W_d).sum(-1, keepdim=True) * W_d)


def _init_instance(spec: Dictionary, seed: int, d: int) -> list[Tensor]:
    """One autoencoder's weights from its own stream (seed, dictionary seed): independent of its company."""
    g = torch.Generator().manual_seed(stream(seed, _SAE_INIT, spec.seed))
    L = spec.latents
    if spec.kind == "l1":  # torch's nn.Linear init, as the source's nn.Linear encoder and decoder
        return [_uniform(g, (d, L), d**-0.5), _uniform(g, (L,), d**-0.5), _uniform(g, (L, d), L**-0.5),
                _uniform(g, (d,), L**-0.5)]  # fmt: skip
    encoder = _uniform(g, (L, d), d**-0.5)  # nn.Linear(d, L, bias=False)'s weight; the decoder is tied to it
    return [encoder.T.clone(), torch.zeros(L), encoder / encoder.norm(dim=-1, keepdim=True), torch.zeros(d)]


def _build_groups(instances: list[tuple[int, int, Dictionary, int]], seeds: Sequence[int],
                  variances: Tensor, d: int) -> list[DictionaryGroup]:  # fmt: skip
    """Instances (g, j, dictionary, k) grouped by (kind, latents); train activations' variances (G,) of width d."""
    by_shape: dict[tuple[str, int], list[tuple[int, int, Dictionary, int]]] = {}
    for instance in instances:
        by_shape.setdefault((instance[2].kind, instance[2].latents), []).append(instance)
    device = variances.device
    groups = []
    for (kind, _), members in by_shape.items():
        per_instance = [_init_instance(spec, seeds[g], d) for g, _, spec, _ in members]
        weights = [torch.stack(ts).to(device).requires_grad_() for ts in zip(*per_instance, strict=True)]
        groups.append(DictionaryGroup(
            kind=kind, members=[(g, j) for g, j, _, _ in members],
            seed_index=torch.tensor([g for g, _, _, _ in members], device=device),
            l1=torch.tensor([spec.l1 if kind == "l1" else 0.0 for _, _, spec, _ in members], device=device),
            k=torch.tensor([k for _, _, _, k in members], device=device),
            mse_weight=1 / variances[[g for g, *_ in members]].clamp_min(1e-12),
            weights=weights,
        ))  # fmt: skip
    return groups


def _train_groups(groups: list[DictionaryGroup], acts: Tensor, seeds: Sequence[int], params: SaeParams) -> None:
    """Adam on every group, all fed the same batches: acts (G, N, d), seed g's batch order its own."""
    G, n = acts.shape[:2]
    orders = [torch.Generator().manual_seed(stream(seed, _SAE_ORDER)) for seed in seeds]
    optimizers = [torch.optim.Adam(group.weights, lr=params.sae_lr) for group in groups]
    rows = torch.arange(G, device=acts.device)[:, None]
    for _ in range(params.sae_epochs):
        perm = torch.stack([torch.randperm(n, generator=g) for g in orders]).to(acts.device)  # (G, n)
        for start in range(0, n, params.sae_batch):
            x_seed = acts[rows, perm[:, start : start + params.sae_batch]]  # (G, B, d)
            for group, optimizer in zip(groups, optimizers, strict=True):
                x = x_seed[group.seed_index]  # (I, B, d)
                z, reconstruction = group.forward(x)
                mse = (reconstruction - x).square().mean((1, 2))  # (I,) the source's nn.MSELoss
                if group.kind == "topk":
                    mse = mse * group.mse_weight  # train.py's mse_scale
                loss = (mse + group.l1 * z.abs().mean((1, 2))).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                group.constrain_decoder()
                optimizer.step()


def train_dictionaries(params: SaeParams, seeds: Sequence[int], acts: Tensor) -> list[DictionaryGroup]:
    """Every dictionary for every seed on acts (G, N, d); matched-L0 TopK after its L1 references."""
    G, specs = acts.shape[0], params.dictionaries
    variances = (acts - acts.mean(1, keepdim=True)).square().mean((1, 2))  # (G,) train.py's 1 / mse_scale
    references: dict[tuple[int, float | None, int], int] = {}  # (latents, l1, seed) -> dictionary index (< 0: hidden)
    hidden: list[Dictionary] = []
    for spec in specs:
        if spec.match_l1 is None or (key := (spec.latents, spec.match_l1, spec.seed)) in references:
            continue
        found = [j for j, s in enumerate(specs) if s.kind == "l1" and (s.latents, s.l1, s.seed) == key]
        if not found:
            hidden.append(Dictionary(kind="l1", latents=spec.latents, l1=spec.match_l1, seed=spec.seed))
        references[key] = found[0] if found else -len(hidden)
    first = [(g, j, s, s.k or 0) for g in range(G) for j, s in enumerate(specs) if s.match_l1 is None]
    first += [(g, -1 - r, s, 0) for g in range(G) for r, s in enumerate(hidden)]
    groups = _build_groups(first, seeds, variances, acts.shape[-1])
    _train_groups(groups, acts, seeds, params)
    matched = [(g, j, s) for g in range(G) for j, s in enumerate(specs) if s.match_l1 is not None]
    if matched:
        where = {member: (group, i) for group in groups for i, member in enumerate(group.members)}
        with torch.no_grad():

            def train_l0(g: int, j: int) -> int:
                group, i = where[(g, j)]
                return int(round(float(l0(group.encode(acts[g][None], slice(i, i + 1)))[0])))

            second = [(g, j, s, min(s.latents, max(1, train_l0(g, references[(s.latents, s.match_l1, s.seed)]))))
                      for g, j, s in matched]  # fmt: skip
        later = _build_groups(second, seeds, variances, acts.shape[-1])
        _train_groups(later, acts, seeds, params)
        groups += later
    for group in groups:
        for w in group.weights:
            w.requires_grad_(False)
    return groups

"""Experiment ``tms.train``: toy models of superposition (Elhage et al. 2022) over a sparsity sweep.

One call trains, for every seed, one model per feature probability (sweep point), all of them as
instances of one batched tensor (see :mod:`repro.experiments.toy`), and measures each model's
feature geometry. Run it through the package (``repro run``) or directly::

    from repro.experiments.tms.experiment import TmsParams, run
    results = run(TmsParams(model="relu_tied", feature_probability=[1.0, 0.1, 0.01]), [0, 1], "cpu")

Variants of the two replications: ``data="seed002"`` and ``sequential=True`` with
``model="relu_untied"`` are seed 002's generator, curriculum and two-weight net;
``data="batch_mask"``, ``init="normal"``, ``bias_init="normal"``, ``optimizer="sgd"``,
``loss_reduction="sum"`` are zroe1's notebooks.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypedDict

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor

from repro.experiments import toy
from repro.registry import Experiment, SeedResult

__all__ = ["EXPERIMENT", "METRICS", "TmsParams", "feature_geometry", "instance_metrics", "run"]

logger = logging.getLogger(__name__)

FeatureProbability = Annotated[float, Field(gt=0.0, le=1.0)]


class TmsParams(BaseModel):
    """Parameters of ``tms.train``; defaults are the paper's notebook (n=20, m=5, AdamW 1e-3, 10k steps)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_features: int = Field(20, ge=1, le=100_000, description="n, the number of input features.")
    n_hidden: int = Field(5, ge=1, le=10_000, description="m, the hidden dimension.")
    model: toy.ModelKind = Field(
        "relu_tied",
        description="linear: x' = W^T W x + b; relu_tied: ReLU(W^T W x + b); "
        "relu_untied: ReLU(W2 W1 x + b), seed 002's two-weight net (W1 (m, n), W2 (n, m)).",
    )
    feature_probability: list[FeatureProbability] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        description="The sweep axis: probability 1 - S that a feature is non-zero, one model per "
        "value. A single number is read as a one-point sweep.",
    )
    importance_decay: float = Field(
        0.7, gt=0.0, le=1.0, description="importance_i = decay**i; 1.0 gives equal importance."
    )
    data: toy.DataKind = Field(
        "paper",
        description="paper: x_i = 0 w.p. S, else U[0,1]; seed002: u ~ U[0,1], x = u where u <= 1-S "
        "else 0, rows L2-normalised; batch_mask: one Bernoulli(1-S) mask of shape (n,) per step, "
        "shared by every row of the batch (zroe1's quirk).",
    )
    sequential: bool = Field(
        False,
        description="Seed 002's curriculum: one model per seed trained stage by stage through "
        "feature_probability in the given order (a fresh optimizer each stage, as the source); "
        "sweep point k is the state after stage k.",
    )
    steps: int = Field(10_000, ge=1, le=10_000_000, description="Optimizer steps (per stage if sequential).")
    batch: int = Field(1024, ge=1, le=1_000_000, description="Rows per step, drawn fresh every step.")
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="Learning rate, constant.")
    optimizer: toy.OptimizerKind = Field("adamw", description="torch defaults apart from lr.")
    weight_decay: float = Field(
        0.01, ge=0.0, le=10.0, description="AdamW's decoupled weight decay (torch default); adamw only."
    )
    init: toy.InitKind = Field(
        "xavier_normal",
        description="xavier_normal: std sqrt(2/(m+n)); normal: N(0, init_std^2) (zroe1 uses std 1).",
    )
    init_std: float = Field(1.0, gt=0.0, le=100.0, description="Weight std for init='normal'.")
    bias_init: toy.BiasInitKind = Field("zeros", description="zeros, or normal: N(0, bias_std^2).")
    bias_std: float = Field(1.0, gt=0.0, le=100.0, description="Bias std for bias_init='normal'.")
    loss_reduction: Literal["mean", "sum"] = Field(
        "mean",
        description="Over the batch of sum_i I_i (x_i - x'_i)^2: mean (paper), or sum (zroe1's SGD runs).",
    )
    represented_threshold: float = Field(0.5, gt=0.0, description="A feature is represented when ||W_i|| exceeds this.")

    @field_validator("feature_probability", mode="before")
    @classmethod
    def _one_number_is_a_sweep_of_one(cls, value: Any) -> Any:
        return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


#: The public metric names of ``tms.train``; each is a list with one float per sweep point. ``loss``
#: is the mean over 8 fresh batches' rows of sum_i I_i (x_i - x'_i)^2 after training, whatever
#: ``loss_reduction`` the training used, so that runs compare.
METRICS: tuple[str, ...] = (
    "n_represented",
    "frobenius_sq",
    "dims_per_feature",
    "n_diag_learned",
    "n_unlearned",
    "n_unlearned_positive_bias",
    "max_superposition",
    "frac_represented_in_superposition",
    "n_antipodal_pairs",
    "frac_dims_near_half",
    "loss",
)

DIAG_LEARNED = 0.5  # seed 002: a feature is learned when its diagonal entry exceeds 0.5
IN_SUPERPOSITION = 0.1  # sum_{j!=i} (W_hat_i . W_j)^2 above this counts as superposed
ANTIPODAL_COSINE = -0.9
NEAR_HALF = 0.03


def feature_geometry(W: Tensor, threshold: float) -> dict[str, Tensor]:
    """Per-feature geometry of W (K, m, n), columns W_i, computed in float64.

    norms ||W_i||; represented = norms > threshold; superposition sum_{j!=i} (W_hat_i . W_j)^2 and
    dimensionality D_i = ||W_i||^2 / sum_j (W_hat_i . W_j)^2, both (K, n) and 0 for unrepresented
    features (the direction of a near-zero W_i is noise); cosine (K, n, n) between represented
    features (0 elsewhere).
    """
    W = W.to(torch.float64)
    norms = torch.linalg.vector_norm(W, dim=1)  # (K, n)
    represented = norms > threshold
    W_hat = W / torch.where(represented, norms, 1.0).unsqueeze(1)  # (K, m, n)
    overlap = W_hat.transpose(1, 2) @ W  # (K, n, n): [i, j] = W_hat_i . W_j
    total = overlap.square().sum(-1)  # (K, n), includes j = i, which is ||W_i||^2
    zero = torch.zeros_like(norms)
    superposition = torch.where(represented, total - norms.square(), zero).clamp_min(0.0)
    dimensionality = torch.where(represented, norms.square() / torch.where(represented, total, 1.0), zero)
    pair = represented.unsqueeze(2) & represented.unsqueeze(1)  # (K, n, n)
    cosine = torch.where(pair, W_hat.transpose(1, 2) @ W_hat, 0.0)
    return {
        "norms": norms,
        "represented": represented,
        "superposition": superposition,
        "dimensionality": dimensionality,
        "cosine": cosine,
    }


def instance_metrics(
    W: Tensor, b: Tensor, W2: Tensor | None, threshold: float, loss: Tensor | None = None
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Metrics (name -> (K,)) and per-feature arrays (name -> (K, n)) of K trained models.

    W (K, m, n), b (K, n), W2 (K, n, m) or None. For the untied net, represented/superposition/
    dimensionality use W1's columns: its geometry is defined only up to a rescaling W1 -> A W1,
    W2 -> W2 A^-1, so claims about the untied net should use n_diag_learned (diagonal of W2 W1).
    A model with any non-finite parameter gets NaN for every metric and array, never a count.
    """
    W64, b64 = W.to(torch.float64), b.to(torch.float64)
    K, m, n = W64.shape
    finite = torch.isfinite(W64).all((1, 2)) & torch.isfinite(b64).all(1)
    if W2 is None:
        diag = W64.square().sum(1)  # diag of W^T W, (K, n)
    else:
        W2_64 = W2.to(torch.float64)
        finite &= torch.isfinite(W2_64).all((1, 2))
        diag = torch.einsum("kim,kmi->ki", W2_64, W64)  # diag of W2 W1, (K, n)
    geo = feature_geometry(torch.where(finite[:, None, None], W64, 0.0), threshold)
    represented = geo["represented"]
    n_represented = represented.sum(1).to(torch.float64)  # (K,)
    frobenius_sq = W64.square().sum((1, 2))
    learned = diag > DIAG_LEARNED
    superposed = (geo["superposition"] > IN_SUPERPOSITION) & represented
    near_half = ((geo["dimensionality"] - 0.5).abs() <= NEAR_HALF) & represented
    # cosine is 0 outside represented pairs, so only represented pairs can be antipodal
    antipodal = torch.triu(geo["cosine"] <= ANTIPODAL_COSINE, diagonal=1)  # (K, n, n), i < j
    denominator = n_represented.clamp_min(1.0)
    metrics = {
        "n_represented": n_represented,
        "frobenius_sq": frobenius_sq,
        "dims_per_feature": m / frobenius_sq,
        "n_diag_learned": learned.sum(1).to(torch.float64),
        "n_unlearned": (~learned).sum(1).to(torch.float64),
        "n_unlearned_positive_bias": (~learned & (b64 > 0)).sum(1).to(torch.float64),
        # unrepresented features hold 0 and every sum is >= 0: the max over all is the max over
        # represented features, and 0 when there is none
        "max_superposition": geo["superposition"].amax(1),
        "frac_represented_in_superposition": superposed.sum(1) / denominator,
        "n_antipodal_pairs": antipodal.sum((1, 2)).to(torch.float64),
        "frac_dims_near_half": near_half.sum(1) / denominator,
        "loss": (loss.to(torch.float64) if loss is not None else torch.full((K,), math.nan, dtype=torch.float64)),
    }
    nan = torch.tensor(math.nan, dtype=torch.float64)
    metrics = {name: torch.where(finite, value, nan) for name, value in metrics.items()}
    arrays = {
        name: torch.where(finite[:, None], geo[name], nan) for name in ("superposition", "dimensionality", "norms")
    }
    return metrics, arrays


class _ModelKwargs(TypedDict):
    """The keyword arguments of ``toy.init_models`` that every seed's models share."""

    n_features: int
    n_hidden: int
    kind: toy.ModelKind
    init: toy.InitKind
    init_std: float
    bias_init: toy.BiasInitKind
    bias_std: float


def run(params: TmsParams, seeds: Sequence[int], device: torch.device | str) -> list[SeedResult]:
    """Train every (seed, feature probability) model at once on ``device``; one result per seed."""
    seeds = list(seeds)
    if not seeds:
        return []
    started = time.perf_counter()
    device = torch.device(device)
    n, K = params.n_features, len(params.feature_probability)
    generators = toy.make_generators(seeds, device)
    importance = params.importance_decay ** torch.arange(n, dtype=torch.float64, device=device)
    settings = toy.TrainSettings(
        steps=params.steps,
        lr=params.lr,
        optimizer=params.optimizer,
        weight_decay=params.weight_decay,
        loss_reduction=params.loss_reduction,
    )
    model_kwargs = _ModelKwargs(
        n_features=n,
        n_hidden=params.n_hidden,
        kind=params.model,
        init=params.init,
        init_std=params.init_std,
        bias_init=params.bias_init,
        bias_std=params.bias_std,
    )
    probabilities = torch.tensor(params.feature_probability, dtype=torch.float64, device=device)
    if params.sequential:
        # Seed 002 (a1_train_one_weight.py / b1_train_two_weight.py) calls train_toy_model once per
        # sparsity on the same model; train_toy_model builds a new AdamW each call, so optimizer
        # state restarts every stage while the weights and the random stream carry on.
        models = toy.init_models(generators, n_per_seed=1, **model_kwargs)
        snapshots, losses = [], []
        for probability in probabilities:
            p = probability.expand(1, n)  # (1, n): one instance per seed
            imp = importance.unsqueeze(0)  # (1, n)
            sampler = toy.FeatureSampler(generators, p, params.batch, params.data)
            toy.train(models, sampler, imp, settings)
            losses.append(toy.loss_per_instance(models, sampler, imp))  # (G,)
            snapshots.append([t.detach().clone() for t in models.parameters()])
        # Stack stages along a new sweep axis: each (G, ...) -> (G, K, ...).
        state = [torch.stack(list(tensors), dim=1) for tensors in zip(*snapshots, strict=True)]
        loss = torch.stack(losses, dim=1)  # (G, K)
    else:
        p = probabilities.unsqueeze(1).expand(K, n)  # (K, n)
        imp = importance.expand(K, n)  # (K, n)
        models = toy.init_models(generators, n_per_seed=K, **model_kwargs)
        sampler = toy.FeatureSampler(generators, p, params.batch, params.data)
        toy.train(models, sampler, imp, settings)
        loss = toy.loss_per_instance(models, sampler, imp).view(len(seeds), K)  # (G, K)
        state = [t.view(len(seeds), K, *t.shape[1:]) for t in models.parameters()]
    W, b = state[0].cpu(), state[-1].cpu()  # (G, K, m, n), (G, K, n)
    W2 = state[1].cpu() if params.model == "relu_untied" else None  # (G, K, n, m)
    loss = loss.cpu()
    results = []
    for g, seed in enumerate(seeds):
        metrics, arrays = instance_metrics(
            W[g], b[g], None if W2 is None else W2[g], params.represented_threshold, loss[g]
        )
        stored = {"W": W[g], "b": b[g], **arrays}
        if W2 is not None:
            stored["W2"] = W2[g]
        results.append(
            SeedResult(
                seed=int(seed),
                metrics={name: [float(v) for v in metrics[name]] for name in METRICS},
                sweep={"feature_probability": [float(v) for v in params.feature_probability]},
                arrays={name: value.numpy().astype(np.float32) for name, value in stored.items()},
            )
        )
    logger.debug(
        "tms.train: %d seeds x %d sweep points on %s in %.2f s",
        len(seeds),
        K,
        device,
        time.perf_counter() - started,
    )
    return results


EXPERIMENT = Experiment(
    name="tms.train",
    params=TmsParams,
    run=run,
    metrics=METRICS,
    description="Toy models of superposition (Elhage et al. 2022): a linear or ReLU autoencoder "
    "x -> W^T W x (+ b) trained over a feature-sparsity sweep; counts represented and learned "
    "features, superposition, antipodal pairs, dimensionality and loss per sweep point.",
    depends_on=("repro.experiments.toy", "repro.experiments.toy_data", "repro.experiments.toy_sparse"),
)

"""Experiment ``phase.one_neuron``: the n=2, m=1 phase diagram of Elhage et al. (2022) and zroe1's.

Two features, one hidden neuron. Feature 1 has importance 1, feature 2 importance r; both have
density s = 1 - S. The grid is r (log-spaced, r_min..r_max) x s (log-spaced, density_min..
density_max), K = n_r * n_density cells, cell k = i_r * n_density + i_density (r-major). One call
trains, for every seed, one model per cell (``restarts`` models per cell if asked: the paper drops
the highest-loss one and takes the rest's majority class; ``restart_rule``) as instances of one
batched tensor with the trainer of :mod:`repro.experiments.toy`, data drawn on the device.
Full scale is zroe1's 100 x 1000 grid with 10 seeds: 10^6 models in one tensor. Run it directly::

    from repro.experiments.phase.experiment import PhaseParams, run
    results = run(PhaseParams(n_r=10, n_density=12, steps=3000), [0, 1], "cpu")

Theory (Wattenberg's notebook, SOURCES 4.3): the expected losses of the three natural solutions,
    only_feature_1 (W = [1, 0], feature 2 ignored):  r (s/3 - s^2/4)
    only_feature_2 (W = [0, 1], feature 1 ignored):  s/3 - s^2/4
    antipodal      (W = [1, -1]):                    (1 + r) s^2 / 6
and the theory's class of a cell is the cheapest. Antipodal wins below the boundary
s*(r) = 4 min(1, r) / (2 (1 + r) + 3 min(1, r)) (0.571 at r = 1, 0.16 at r = 0.1 or 10).

Empirical class of a trained model (W's columns w_1, w_2 in R^m, m = 1 here; bias b), where
feature i is *reconstructed* when the output for x = e_i clears 1/2 before the ReLU,
||w_i||^2 + b_i > 0.5 (a weight-only rule would call a dead model, whose negative biases keep
every output at zero, antipodal whenever its initial weights had opposite signs):
    only_feature_1  ||w_1|| > 0.8, ||w_2|| < 0.2, feature 1 reconstructed     (zroe1's weight rule)
    only_feature_2  ||w_2|| > 0.8, ||w_1|| < 0.2, feature 2 reconstructed
    antipodal       ||w_1||, ||w_2|| > 0.5, cos(w_1, w_2) <= -0.9 (m = 1: opposite signs), both
                    reconstructed
    other           anything else (both on one side, nothing learned, dead outputs, in between)

Data variants: ``independent`` is the paper's (each feature present independently with probability
s in every row, value U[0, 1]); ``zroe1_shared`` is zroe1's relu_models_train.ipynb, whose mask
broadcast makes both features appear together (see :class:`SharedMaskSampler`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from repro.experiments import toy
from repro.experiments.phase.data import SharedMaskSampler
from repro.experiments.phase.theory import (
    ANTIPODAL,
    CLASSES,
    N_FEATURES,
    N_HIDDEN,
    ONLY_FEATURE_1,
    ONLY_FEATURE_2,
    OTHER,
    boundary_density,
    classify,
    expected_loss,
    far_from_boundary,
    theory_class,
    theory_losses,
)
from repro.registry import Experiment, SeedResult

__all__ = [
    "CLASSES",
    "EXPERIMENT",
    "METRICS",
    "PhaseParams",
    "SharedMaskSampler",
    "boundary_density",
    "classify",
    "expected_loss",
    "far_from_boundary",
    "grid",
    "keep_lowest_loss",
    "majority_without_highest",
    "run",
    "theory_class",
    "theory_losses",
]

logger = logging.getLogger(__name__)


class PhaseParams(BaseModel):
    """Parameters of ``phase.one_neuron``; defaults are zroe1's full-scale setting on the paper's axes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["relu_tied", "linear"] = Field(
        "relu_tied", description="relu_tied: x' = ReLU(W^T W x + b) (the paper's); linear: W^T W x + b (control)."
    )
    data: Literal["independent", "zroe1_shared"] = Field(
        "independent",
        description="independent: each feature present independently with probability s per row (the "
        "paper); zroe1_shared: zroe1's mask broadcast, both features present together or absent together, "
        "one draw per column shared by the whole batch (SharedMaskSampler).",
    )
    r_min: float = Field(0.1, gt=0.0, le=1e3, description="Smallest importance r of feature 2 (feature 1 has 1).")
    r_max: float = Field(10.0, gt=0.0, le=1e3, description="Largest r.")
    n_r: int = Field(100, ge=1, le=10_000, description="Importances, log-spaced from r_min to r_max.")
    density_min: float = Field(1e-3, gt=0.0, le=1.0, description="Smallest feature density s = 1 - S.")
    density_max: float = Field(1.0, gt=0.0, le=1.0, description="Largest density.")
    n_density: int = Field(1000, ge=1, le=100_000, description="Densities, log-spaced.")
    restarts: int = Field(
        1,
        ge=1,
        le=100,
        description="Models per cell and seed (the paper trains ten per point); restart_rule says how they "
        "make the cell's class.",
    )
    restart_rule: Literal["drop_highest", "lowest_loss"] = Field(
        "drop_highest",
        description="drop_highest: the paper's procedure ('discarding the model with the highest loss' and "
        "averaging the rest), read as: the cell's class is the class of a strict majority of the restarts left "
        "after the one of highest exact expected loss is dropped, else other (the plurality reading of "
        "'average' is the metric agreement_far_paper_range_plurality, from the same models). lowest_loss: the "
        "class of the one restart of lowest exact expected loss (a best-of-R variant, not the paper's).",
    )
    steps: int = Field(6000, ge=1, le=10_000_000, description="Optimizer steps (zroe1: 6 epochs x 1000).")
    batch: int = Field(64, ge=1, le=100_000, description="Rows of uniform values per step (zroe1: 64).")
    lr: float = Field(1e-2, gt=0.0, le=10.0, description="Learning rate, constant (zroe1: Adam 1e-2).")
    optimizer: toy.OptimizerKind = Field("adam", description="torch defaults apart from lr.")
    init: toy.InitKind = Field("normal", description="normal: W ~ N(0, init_std^2) (zroe1); or xavier_normal.")
    init_std: float = Field(1.5, gt=0.0, le=100.0, description="Weight std for init='normal' (zroe1: 1.5).")
    bias_init: toy.BiasInitKind = Field("normal", description="normal: b ~ N(0, bias_std^2) (zroe1); or zeros.")
    bias_std: float = Field(0.5, gt=0.0, le=100.0, description="Bias std for bias_init='normal' (zroe1: 0.5).")
    loss_reduction: Literal["mean", "sum"] = Field(
        "sum", description="Over the batch rows of sum_i I_i (x_i - x'_i)^2: zroe1 sums over rows and models."
    )
    sparse_max_density: float = Field(
        0.1, gt=0.0, le=1.0, description="Cells with density at most this count as sparse (antipodal_share_sparse)."
    )
    far_factor: float = Field(
        2.0, gt=1.0, le=100.0, description="A cell is far from the boundary when the theory's class is the "
        "same everywhere within this factor of its r and s (agreement_far_from_boundary).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _ordered_axes(self) -> PhaseParams:
        for low, high in (("r_min", "r_max"), ("density_min", "density_max")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) must not exceed {high} ({getattr(self, high)})")
        return self


#: The paper's diagram runs "the sparsity of all features from 1.0 to 0.01": the metrics
#: agreement_far_paper_range(_plurality) read only cells of density at least this, so that a grid run on
#: below it (this package's extension to 0.001) still gives the paper's claim from the same models.
PAPER_DENSITY_MIN = 0.01

#: Public metric names. Per cell (lists of K): model_class, theory_class (codes of CLASSES) and loss
#: (the model's exact expected loss). Per seed (floats): the rest.
METRICS: tuple[str, ...] = (
    "model_class",
    "theory_class",
    "loss",
    "agreement",
    "agreement_far_from_boundary",
    "agreement_far_paper_range",
    "agreement_far_paper_range_plurality",
    "antipodal_share",
    "antipodal_share_sparse",
    "antipodal_share_sparse_min",
    "single_feature_share_sparse",
)


# -- theory --------------------------------------------------------------------------------------


def grid(params: PhaseParams, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(r, density), each (K,) float64, r-major: cell k = i_r * n_density + i_density."""
    r = _logspace(params.r_min, params.r_max, params.n_r, device)  # (n_r,)
    s = _logspace(params.density_min, params.density_max, params.n_density, device)  # (n_density,)
    return r.repeat_interleave(s.numel()), s.repeat(r.numel())


def _logspace(low: float, high: float, n: int, device: torch.device | str) -> Tensor:
    if n == 1:
        return torch.tensor([math.sqrt(low * high)], dtype=torch.float64, device=device)
    return torch.logspace(math.log10(low), math.log10(high), n, dtype=torch.float64, device=device)


# -- the experiment ------------------------------------------------------------------------------


def run(params: PhaseParams, seeds: Sequence[int], device: torch.device | str) -> list[SeedResult]:
    """Train every (seed, restart, cell) model at once on ``device``; one result per seed."""
    seeds = list(seeds)
    if not seeds:
        return []
    started = time.perf_counter()
    device = torch.device(device)
    G, R = len(seeds), params.restarts
    r, density = grid(params, device)  # (K,), (K,)
    K = r.numel()
    importance = torch.stack([torch.ones_like(r), r], dim=1)  # (K, 2)
    probability = density[:, None].expand(K, N_FEATURES)  # (K, 2)
    generators = toy.make_generators(seeds, device)
    # Instance layout per seed: restart-major, then cell: (R * K) instances, seed-major overall.
    models = toy.init_models(
        generators, n_per_seed=R * K, n_features=N_FEATURES, n_hidden=N_HIDDEN, kind=params.model,
        init=params.init, init_std=params.init_std, bias_init=params.bias_init, bias_std=params.bias_std,
    )  # fmt: skip
    if params.data == "independent":
        sampler: toy.Sampler = toy.FeatureSampler(generators, probability.repeat(R, 1), params.batch, "paper")
    else:
        sampler = SharedMaskSampler(generators, probability.repeat(R, 1), params.batch)
    settings = toy.TrainSettings(
        steps=params.steps, lr=params.lr, optimizer=params.optimizer, loss_reduction=params.loss_reduction
    )
    toy.train(models, sampler, importance.repeat(R, 1), settings)

    # Judge every model by its exact expected loss on the paper's (independent) data.
    every_loss = expected_loss(models.W, models.b, importance.repeat(G * R, 1), density.repeat(G * R), params.model)
    every_code = classify(models.W, models.b).view(G, R, K).cpu()  # (G, R, K)
    loss, W, b = keep_lowest_loss(
        every_loss.view(G, R, K), models.W.view(G, R, K, N_HIDDEN, N_FEATURES), models.b.view(G, R, K, N_FEATURES)
    )  # (G, K), (G, K, m, n), (G, K, n): the lowest-loss model of each cell, for both rules' figures
    # The other reading of the paper's "average": the class more of the nine share than any other.
    plural_codes = (
        majority_without_highest(every_code, every_loss.view(G, R, K).cpu(), plurality=True) if R > 1 else None
    )  # (G, K)
    if params.restart_rule == "drop_highest" and R > 1:
        cell_codes = majority_without_highest(every_code, every_loss.view(G, R, K).cpu())  # (G, K)
    else:
        cell_codes = every_code.gather(1, every_loss.view(G, R, K).argmin(1, keepdim=True).cpu())[:, 0]  # (G, K)

    theory = theory_class(r, density).cpu()  # (K,)
    far = far_from_boundary(r, density, params.far_factor).cpu()  # (K,)
    sparse = (density <= params.sparse_max_density).cpu()  # (K,)
    W, b, loss, r, density = W.cpu(), b.cpu(), loss.cpu(), r.cpu(), density.cpu()
    results = []
    for g, seed in enumerate(seeds):
        codes = cell_codes[g]  # (K,)
        metrics = _seed_metrics(codes, theory, far, sparse, params.n_r)
        plural = codes if plural_codes is None else plural_codes[g]  # one model per cell: every reading agrees
        in_range = far & (density >= PAPER_DENSITY_MIN * (1 - 1e-9))  # the paper's diagram, far from the boundary
        metrics["agreement_far_paper_range"] = _share(codes == theory, in_range)
        metrics["agreement_far_paper_range_plurality"] = _share(plural == theory, in_range)
        metrics |= {
            "model_class": codes.double().tolist(),
            "theory_class": theory.double().tolist(),
            "loss": loss[g].tolist(),
        }
        arrays = {
            "W": W[g].numpy().astype(np.float32),  # (K, m, n)
            "b": b[g].numpy().astype(np.float32),  # (K, n)
            "loss": loss[g].numpy(),  # (K,) float64
            "r": r.numpy(),  # (K,)
            "density": density.numpy(),  # (K,)
            "model_class": codes.numpy().astype(np.int8),
            "theory_class": theory.numpy().astype(np.int8),
            "far": far.numpy(),
        }
        results.append(
            SeedResult(
                seed=int(seed),
                metrics={name: metrics[name] for name in METRICS},
                sweep={"cell": [float(k) for k in range(K)]},
                arrays=arrays,
            )
        )
    logger.debug(
        "phase.one_neuron: %d seeds x %d models on %s in %.2f s", G, R * K, device, time.perf_counter() - started
    )
    return results


def majority_without_highest(codes: Tensor, loss: Tensor, plurality: bool = False) -> Tensor:
    """The paper's per-cell rule: drop each cell's highest-loss restart, then the class a strict
    majority of the rest share, else other (``plurality``: the class more of the rest share than any
    other, else other). codes, loss (G, R, K) -> (G, K) int64."""
    G, R, K = codes.shape
    kept = torch.ones_like(codes, dtype=torch.bool)
    kept.scatter_(1, loss.argmax(1, keepdim=True), False)  # (G, R, K): the highest-loss restart dropped
    votes = torch.stack([((codes == c) & kept).sum(1) for c in range(4)])  # (4 classes, G, K)
    top, winner = votes.max(0)  # (G, K)
    if plurality:
        unique = (votes == top).sum(0) == 1  # (G, K): no other class has as many votes
        return torch.where(unique, winner, torch.full_like(winner, OTHER))
    return torch.where(2 * top > R - 1, winner, torch.full_like(winner, OTHER))


def keep_lowest_loss(loss: Tensor, W: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per seed and cell, the restart of lowest loss: loss (G, R, K), W (G, R, K, m, n), b (G, R, K, n)
    -> loss (G, K), W (G, K, m, n), b (G, K, n)."""
    best = loss.argmin(1, keepdim=True)  # (G, 1, K)
    W = W.gather(1, best[..., None, None].expand(-1, -1, -1, *W.shape[3:]))[:, 0]
    b = b.gather(1, best[..., None].expand(-1, -1, -1, b.shape[3]))[:, 0]
    return loss.gather(1, best)[:, 0], W, b


def _share(agree: Tensor, cells: Tensor) -> float:
    """The share of ``cells`` where ``agree`` holds (NaN where there are none)."""
    return agree[cells].double().mean().item() if cells.any() else math.nan


def _seed_metrics(
    codes: Tensor, theory: Tensor, far: Tensor, sparse: Tensor, n_r: int
) -> dict[str, float | list[float]]:
    """Scalar metrics of one seed's diagram; codes, theory, far, sparse (K,), K = n_r * n_density."""
    agree = codes == theory
    antipodal = (codes == ANTIPODAL).double()
    single = ((codes == ONLY_FEATURE_1) | (codes == ONLY_FEATURE_2)).double()
    by_r = antipodal.view(n_r, -1)[:, sparse.view(n_r, -1)[0]]  # (n_r, sparse densities)
    nan = math.nan
    return {
        "agreement": agree.double().mean().item(),
        "agreement_far_from_boundary": agree[far].double().mean().item() if far.any() else nan,
        "antipodal_share": antipodal.mean().item(),
        "antipodal_share_sparse": antipodal[sparse].mean().item() if sparse.any() else nan,
        "antipodal_share_sparse_min": by_r.mean(1).min().item() if sparse.any() else nan,
        "single_feature_share_sparse": single[sparse].mean().item() if sparse.any() else nan,
    }


EXPERIMENT = Experiment(
    name="phase.one_neuron",
    params=PhaseParams,
    run=run,
    metrics=METRICS,
    description="The n=2, m=1 phase diagram (Elhage et al. 2022; zroe1): one-neuron ReLU or linear models "
    "over relative importance x feature density, each classified by its weights (only feature 1, only "
    "feature 2, antipodal, other) and compared with the closed-form theory.",
    depends_on=(
        "repro.experiments.phase.theory",
        "repro.experiments.phase.data",
        "repro.experiments.toy",
        "repro.experiments.toy_data",
        "repro.experiments.toy_sparse",
    ),
)

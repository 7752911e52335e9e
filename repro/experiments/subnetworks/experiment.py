"""Experiment ``subnetworks.split``: polysemantic units split by continuous sparsification (source 2).

Per replicate seed (SOURCES.md sections 2 and 7; the methods are in :mod:`subnetworks_methods`):

1. Detection. Every image of the detection pool (by default the source's input: the whole image
   shrunk into the receptive-field box of the layer's centre unit, :mod:`subnetworks.data`) goes
   through the net; for each studied unit of ``layer`` the ``top_k`` images by its centre activation
   are kept, and HDBSCAN (``min_cluster_size``) clusters the vectors of *all* the layer's units'
   centre activations on those images. Two or more clusters (noise excluded) mark the unit polysemantic.
2. The first studied unit with two clusters is split (where none is, the scan goes on down the
   label-entropy ranking of the layer's units, and ``split_unit`` says which was taken): cluster A
   is the larger, B the next. Each cluster's images are split ``1 - holdout`` / ``holdout``
   (train / held out, seeded). The source trained and looked at the same images; here every
   separation and preservation number is measured on held-out images.
3. Continuous sparsification on the train images (frozen weights, masks on the weights and biases
   of every conv up to ``layer``, BCE on the unit + lmbda * sum of the soft mask): mask A (label 1
   for A), mask B (labels switched), and the random-split control (the same images re-split at
   random, same sizes, both masks).
4. Baselines at the CS masks' own kept fraction: SNIP, FORCE, ActGrad (kernels), each scored for a
   cluster on that cluster's train images; and a sweep over ``sweep_fractions`` for the figure.
5. Measured on the held-out images: AUROC of the unit's activation separating A from B under each
   mask and the dense net, feature preservation, and the per-layer overlap of masks A and B
   against independence.

Scales. ``model = "alexnet_sparse"`` (full, the source's network): Hamblin et al.'s sparse AlexNet,
a torchvision-AlexNet state_dict that circuit_explorer ships as ``alexnet_sparse_statedict.pt``,
read from ``$REPRO_DATA/weights`` (or ``weights``); the units the source names are units of this
network. ``model = "alexnet"``: torchvision's AlexNet, ImageNet-pretrained (IMAGENET1K_V1), or any
AlexNet state_dict given by ``weights``, for claims about units of that network; images from
``$REPRO_DATA/imagenet/<split>/<wnid>/*.JPEG``
(the ImageFolder layout), preprocessed as the source (Resize 256, CenterCrop 224, ImageNet
mean/std, then, with ``input = "receptive_field"``, shrunk whole into the centre unit's receptive-field
box on a zero canvas). ``model = "small_cnn"`` (ci): a 4-conv CNN trained from the seed on Fashion-MNIST (or
scikit-learn's digits; ``cnn_*`` params), detection on the 10,000 test images; with ``units = []``
the studied units are chosen by the detection step itself: the ``n_auto_units`` units whose top-k
images spread most evenly over the dataset's classes (label entropy), a screen that does not use
HDBSCAN, so that the cluster count it is judged by is not also what chose it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from repro.experiments.common import single_threaded, stream
from repro.experiments.subnetworks import methods as M
from repro.experiments.subnetworks.data import (
    SPLIT_STREAM,
    Pool,
    imagenet_folder,
    load_alexnet,
    pools,
)
from repro.registry import Experiment, SeedResult

__all__ = ["EXPERIMENT", "METHODS", "METRICS", "SubnetworkParams", "imagenet_folder", "load_alexnet", "run"]

METHODS = ("snip", "force", "actgrad")
_CS, _RANDOM = 2, 3  # random streams of a replicate seed (0, 1: subnetworks_data)
SHOWN_IMAGES = 8


class SubnetworkParams(BaseModel):
    """Parameters of ``subnetworks.split``; defaults are the source's full-scale setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["alexnet_sparse", "alexnet", "small_cnn"] = Field(
        "alexnet_sparse",
        description="alexnet_sparse: Hamblin's sparse AlexNet, the source's network (full scale); alexnet: "
        "torchvision's ImageNet AlexNet; small_cnn: ci.",
    )
    weights: str | None = Field(
        None,
        description="alexnet / alexnet_sparse: a state_dict file; None: the network's own file from "
        "$REPRO_DATA/weights (alexnet: also torch's cache).",
    )
    dataset: Literal["imagenet", "fashion_mnist", "sklearn_digits"] = "imagenet"
    input: Literal["receptive_field", "plain"] = Field(
        "receptive_field",
        description="receptive_field (the source's): each preprocessed image shrunk whole into the receptive-field "
        "box of the layer's centre unit on a zero canvas (Dataset_Utils.py recep_resize; 163 px of 224 for AlexNet "
        "features.10), for detection and mask training; plain: the preprocessed image itself.",
    )
    imagenet_split: str = Field("train", description="Folder under $REPRO_DATA/imagenet (the source: train).")
    n_images: int | None = Field(None, ge=1, description="Detection pool: a seeded sample of this many; None: all.")
    workers: int = Field(8, ge=0, le=64, description="alexnet: DataLoader workers decoding JPEGs.")
    layer: str = Field("features.10", pattern=r"^features\.\d+$", description="The conv module of the units.")
    units: list[int] = Field([255, 15, 167], description="Units studied; [] (TOML has no null): detection chooses.")
    n_auto_units: int = Field(3, ge=1, le=64, description="units = []: how many units the screen picks.")
    top_k: int = Field(1000, ge=10, description="Top images per unit (the source: 1000).")
    min_cluster_size: int = Field(50, ge=2, description="HDBSCAN min_cluster_size (the source: 50).")
    split: bool = Field(True, description="Run steps 2-5; False: detection only.")
    holdout: float = Field(0.25, gt=0.0, lt=1.0, description="Share of each cluster held out for measuring.")
    epochs: int = Field(160, ge=1, le=10_000)
    batch: int = Field(32, ge=1)
    lr: float = Field(0.1, gt=0.0, le=100.0)
    lr_drops: list[int] = Field([130, 150], description="Epochs at which the lr is multiplied by 0.1.")
    weight_decay: float = Field(
        0.0,
        ge=0.0,
        description="SGD weight decay on the mask parameters (the source: none; its --decay is never passed to SGD).",
    )
    momentum: float = Field(
        0.0, ge=0.0, lt=1.0, description="SGD momentum on the mask parameters (the source: none; Savarese et al.: 0.9)."
    )
    nesterov: bool = Field(
        False, description="Nesterov momentum (Savarese et al.'s mask optimizer); torch refuses it without momentum."
    )
    lmbda: float = Field(1e-6, ge=0.0, description="Weight of the sum of the soft weight masks.")
    temperature_final: float = Field(200.0, ge=1.0)
    mask_init: float = Field(0.0, description="s0; the source: 0 (sigma = 0.5 at the start, no rescaling).")
    force_iterations: int = Field(10, ge=1, le=1000, description="FORCE rounds (circuit explorer: T = 10).")
    sweep_fractions: list[float] = Field([0.01, 0.02, 0.05, 0.1, 0.2, 0.5], min_length=1)
    cnn_channels: int = Field(32, ge=2, le=512, description="small_cnn: channels of each conv.")
    cnn_epochs: int = Field(2, ge=1, le=100)
    cnn_train_images: int = Field(6_000, ge=100, description="small_cnn: train images (first n of the split).")

    @model_validator(mode="after")
    def _consistent(self) -> SubnetworkParams:
        if (self.model != "small_cnn") != (self.dataset == "imagenet"):
            raise ValueError("the AlexNets go with dataset 'imagenet', 'small_cnn' with the small datasets")
        if self.weights is not None and self.model == "small_cnn":
            raise ValueError("weights is a state_dict path for the AlexNets, not small_cnn")
        if any(not 0 < d for d in self.lr_drops) or sorted(self.lr_drops) != self.lr_drops:
            raise ValueError("lr_drops must be increasing positive epochs")
        if any(not 0 < f < 1 for f in self.sweep_fractions):
            raise ValueError("sweep_fractions must lie in (0, 1)")
        if self.units and min(self.units) < 0:
            raise ValueError("units are channel indices (>= 0)")
        if self.top_k < 2 * self.min_cluster_size:
            raise ValueError("top_k must hold at least two clusters of min_cluster_size")
        return self

    @property
    def layer_index(self) -> int:
        return int(self.layer.split(".")[1])


SCALARS = (
    "n_clusters_min", "polysemantic_fraction", "split_unit", "n_clusters", "cluster_size_a", "cluster_size_b",
    "kept_fraction", "kept_fraction_a", "kept_fraction_b",
    "auroc_dense", "auroc_mask_a", "auroc_mask_b", "auroc_own_min", "auroc_gain_min",
    "auroc_random_own_min", "auroc_vs_random", "preservation_cs", "auroc_soft_own_min", "undecided_fraction",
    *(f"{kind}_{m}" for m in METHODS for kind in ("auroc_own_min", "preservation")),
    "auroc_cs_minus_heuristics", "preservation_heuristics_minus_cs", "overlap_ratio", "overlap_ratio_random",
    "overlap_excess_over_random", "jaccard", "jaccard_expected",
)  # fmt: skip
LAYER_METRICS = ("overlap_ratio_layer", "overlap_p_layer", "jaccard_layer")
METRICS: tuple[str, ...] = SCALARS + LAYER_METRICS


# -- one seed ------------------------------------------------------------------------------------------------


def _entropy_rank(vectors: Tensor, labels: Tensor, k: int) -> list[int]:
    """Units ordered by the label entropy of their top-k images, most mixed first (the ci screen)."""
    top = vectors.topk(k, dim=0).indices  # (k, C)
    n_classes = int(labels.max()) + 1
    counts = torch.zeros(n_classes, vectors.shape[1]).scatter_add_(0, labels[top], torch.ones(top.shape))
    p = counts / k
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(0)
    return torch.argsort(entropy, descending=True, stable=True).tolist()


def _cluster(vectors: Tensor, unit: int, params: SubnetworkParams) -> tuple[int, int, np.ndarray, np.ndarray]:
    top = torch.topk(vectors[:, unit], params.top_k).indices.numpy()  # pool positions, by activation
    count, labels = M.n_clusters(vectors[top].numpy(), params.min_cluster_size)
    return unit, count, top, labels


def _detect(pool: Pool, params: SubnetworkParams) -> tuple[list[tuple[int, int, np.ndarray, np.ndarray]], tuple | None]:
    """HDBSCAN on the studied units; and the unit to split: the first polysemantic studied unit, else
    (the split needs one) the first polysemantic unit further down the screen's ranking, else None."""
    vectors = pool.layer_vectors()
    n_units = vectors.shape[1]
    ranking = _entropy_rank(vectors, pool.labels, params.top_k)
    units = params.units or ranking[: params.n_auto_units]
    if max(units) >= n_units:
        raise ValueError(f"{params.layer} has {n_units} units; asked for {units}")
    found = [_cluster(vectors, u, params) for u in units]
    chosen = next((f for f in found if f[1] >= 2), None)
    if params.split and chosen is None:
        rest = (_cluster(vectors, u, params) for u in ranking if u not in units)
        chosen = next((f for f in rest if f[1] >= 2), None)
    return found, chosen


def _measure(features: nn.Sequential, layer: int, unit: int, x: Tensor, positive: Tensor,
             masks: list[M.Masks | None]) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Per mask: the unit's activations on the positive and the negative images of x."""
    out = []
    for m in masks:
        a = M.unit_activation(features, layer, unit, x, m).cpu().double().numpy()
        out.append((a[positive.cpu().numpy()], a[~positive.cpu().numpy()]))
    return out


def _split(pool: Pool, params: SubnetworkParams, seed: int, unit: int, top: np.ndarray, labels: np.ndarray
           ) -> tuple[dict[str, float | list[float]], dict[str, np.ndarray]]:  # fmt: skip
    features, layer = pool.features, params.layer_index
    sizes = np.bincount(labels[labels >= 0])
    a_label, b_label = np.argsort(-sizes, kind="stable")[:2]
    members = [top[labels == a_label], top[labels == b_label]]  # pool positions, by activation (descending)
    rng = np.random.default_rng(stream(seed, SPLIT_STREAM, 1))
    train, held = [], []
    for group in members:
        mask = np.zeros(len(group), dtype=bool)
        n_held = min(max(1, int(round(params.holdout * len(group)))), len(group) - 1)  # >= 1 on each side
        mask[rng.choice(len(group), n_held, replace=False)] = True
        train.append(group[~mask])
        held.append(group[mask])
    x_train = pool.images(np.r_[train[0], train[1]])
    y_train = torch.cat([torch.ones(len(train[0])), torch.zeros(len(train[1]))]).to(pool.device)
    x_held = pool.images(np.r_[held[0], held[1]])
    is_a = torch.cat([torch.ones(len(held[0])), torch.zeros(len(held[1]))]).bool()
    # the random-split control: the same images, labels shuffled (same sizes), same train / held-out split
    shuffled = torch.cat([y_train.cpu(), is_a.float()])[torch.randperm(len(y_train) + len(is_a),
                                                                        generator=torch.Generator().manual_seed(
                                                                            stream(seed, _RANDOM)))]  # fmt: skip
    r_train, r_held = shuffled[: len(y_train)].to(pool.device), shuffled[len(y_train) :].bool()

    soft: dict[int, M.Masks] = {}  # the final soft masks sigma(t_final * s), to tell the hard ticket's loss
    undecided: list[float] = []  # share of weight masks the soft mask leaves in (0.1, 0.9) at t_final

    def cs(target: Tensor, which: int) -> M.Masks:
        s = M.train_cs_mask(features, layer, unit, x_train, target, epochs=params.epochs, batch=params.batch,
                            lr=params.lr, lr_drops=params.lr_drops, weight_decay=params.weight_decay,
                            lmbda=params.lmbda, temperature_final=params.temperature_final,
                            mask_init=params.mask_init, momentum=params.momentum, nesterov=params.nesterov,
                            generator=torch.Generator().manual_seed(stream(seed, _CS, which)))  # fmt: skip
        t = params.temperature_final
        soft[which] = [(M.soft_mask(sw, t), M.soft_mask(sb, t)) for sw, sb in s]
        if which < 2:
            flat = torch.cat([sw.flatten() for sw, _ in s])
            undecided.append(float(((t * flat).abs() < math.log(9)).double().mean()))
        return [(M.hard_mask(sw), M.hard_mask(sb)) for sw, sb in s]

    mask_a, mask_b = cs(y_train, 0), cs(1 - y_train, 1)
    rand_a, rand_b = cs(r_train, 2), cs(1 - r_train, 3)
    (da, db), (aa, ab), (ba, bb) = _measure(features, layer, unit, x_held, is_a, [None, mask_a, mask_b])
    auroc_dense, auroc_a, auroc_b = M.auroc(da, db), M.auroc(aa, ab), M.auroc(bb, ba)
    (r1, r2), (s1, s2) = _measure(features, layer, unit, x_held, r_held, [rand_a, rand_b])
    (sa, sab), (sba, sb) = _measure(features, layer, unit, x_held, is_a, [soft[0], soft[1]])
    random_min = min(M.auroc(r1, r2), M.auroc(s2, s1))
    m: dict[str, float] = {  # the scalars; the per-layer lists join them in `metrics` below
        "cluster_size_a": float(len(members[0])), "cluster_size_b": float(len(members[1])),
        "kept_fraction_a": M.kept_fraction(mask_a), "kept_fraction_b": M.kept_fraction(mask_b),
        "auroc_dense": auroc_dense, "auroc_mask_a": auroc_a, "auroc_mask_b": auroc_b,
        "auroc_own_min": min(auroc_a, auroc_b),
        "auroc_gain_min": min(auroc_a - auroc_dense, auroc_b - (1 - auroc_dense)),
        "auroc_random_own_min": random_min, "auroc_vs_random": min(auroc_a, auroc_b) - random_min,
        "preservation_cs": (M.preservation(aa, da) + M.preservation(bb, db)) / 2,
        "auroc_soft_own_min": min(M.auroc(sa, sab), M.auroc(sb, sba)), "undecided_fraction": float(np.mean(undecided)),
    }  # fmt: skip
    m["kept_fraction"] = (m["kept_fraction_a"] + m["kept_fraction_b"]) / 2
    pairs = {"dense": (da, db), "mask_a": (aa, ab), "mask_b": (ba, bb)}
    arrays = {
        f"act_{name}_{c}": v.astype(np.float32) for name, pair in pairs.items() for c, v in zip("ab", pair, strict=True)
    }
    # baselines: scored on each cluster's own train images, at the CS mask's kept fraction and on a sweep
    convs = [cast(nn.Conv2d, features[i]) for i in M.conv_indices(features, layer)]  # conv_indices: Conv2d only
    total = sum(c.weight.numel() for c in convs)
    x_a, x_b = x_train[: len(train[0])], x_train[len(train[0]) :]

    def heuristic(method: str, x: Tensor, keep: int) -> M.Masks:
        if method == "snip":
            weight_masks = M.mask_from_scores(M.snip_scores(features, layer, unit, x), keep)
        elif method == "force":
            weight_masks = M.force_mask(features, layer, unit, x, keep, params.force_iterations)
        else:
            kernels = M.kernel_mask_from_scores(M.actgrad_kernel_scores(features, layer, unit, x),
                                                [c.weight[0, 0].numel() for c in convs], keep)  # fmt: skip
            weight_masks = [
                k[:, :, None, None].expand_as(c.weight).clone() for k, c in zip(kernels, convs, strict=True)
            ]
        return [(w, torch.ones(c.out_channels, device=w.device)) for w, c in zip(weight_masks, convs, strict=True)]

    def judge(ma: M.Masks, mb: M.Masks) -> tuple[float, float]:
        (_, _), (pa, pb), (qa, qb) = _measure(features, layer, unit, x_held, is_a, [None, ma, mb])
        own = min(M.auroc(pa, pb), M.auroc(qb, qa))
        return own, (M.preservation(pa, da) + M.preservation(qb, db)) / 2

    best = -math.inf
    for method in METHODS:
        own, kept = judge(heuristic(method, x_a, round(m["kept_fraction_a"] * total)),
                          heuristic(method, x_b, round(m["kept_fraction_b"] * total)))  # fmt: skip
        m[f"auroc_own_min_{method}"], m[f"preservation_{method}"] = own, kept
        best = max(best, own)
        sweep = [judge(heuristic(method, x_a, round(f * total)), heuristic(method, x_b, round(f * total)))
                 for f in params.sweep_fractions]  # fmt: skip
        arrays[f"sweep_auroc_{method}"] = np.array([v[0] for v in sweep])
        arrays[f"sweep_preservation_{method}"] = np.array([v[1] for v in sweep])
    m["auroc_cs_minus_heuristics"] = m["auroc_own_min"] - best
    m["preservation_heuristics_minus_cs"] = min(m[f"preservation_{h}"] for h in METHODS) - m["preservation_cs"]
    # independence: per masked layer, the overlap of masks A and B against the hypergeometric expectation,
    # over the weights that can reach the unit (all of an earlier conv; only the unit's filter in its own)
    own_filter = torch.zeros_like(mask_a[-1][0], dtype=torch.bool)
    own_filter[unit] = True
    eligible = [None] * (len(mask_a) - 1) + [own_filter]

    def overlaps(ma: M.Masks, mb: M.Masks) -> list[dict[str, float]]:
        return [M.overlap_stats(wa, wb, e) for (wa, _), (wb, _), e in zip(ma, mb, eligible, strict=True)]

    def ratio(stats_: list[dict[str, float]]) -> float:
        observed, expected = sum(s["observed"] for s in stats_), sum(s["expected"] for s in stats_)
        return observed / expected if expected > 0 else math.nan

    layers = overlaps(mask_a, mask_b)
    # The same training on a random split of the same images: both masks start at s = 0 and share
    # gradient terms, so part of any overlap is built in by the procedure, whatever the labels.
    random_ratio = ratio(overlaps(rand_a, rand_b))
    obs, exp = sum(s["observed"] for s in layers), sum(s["expected"] for s in layers)
    kept = sum(s["kept_a"] + s["kept_b"] for s in layers)
    metrics: dict[str, float | list[float]] = {**m,
        "overlap_ratio": ratio(layers), "overlap_ratio_random": random_ratio,
        "overlap_excess_over_random": ratio(layers) - random_ratio,
        "jaccard": obs / (kept - obs) if kept > obs else math.nan,
        "jaccard_expected": exp / (kept - exp) if kept > exp else math.nan,
        "overlap_ratio_layer": [s["observed"] / s["expected"] if s["expected"] > 0 else math.nan for s in layers],
        "overlap_p_layer": [s["p_excess"] for s in layers], "jaccard_layer": [s["jaccard"] for s in layers],
    }  # fmt: skip
    arrays.update({f"layer_{k}": np.array([s[k] for s in layers]) for k in ("n", "kept_a", "kept_b", "observed",
                                                                            "expected")})  # fmt: skip
    arrays["sweep_fractions"] = np.array(params.sweep_fractions)
    arrays["cluster_a_images"] = pool.crops(members[0][:SHOWN_IMAGES])
    arrays["cluster_b_images"] = pool.crops(members[1][:SHOWN_IMAGES])
    return metrics, arrays


def _one_seed(pool: Pool, params: SubnetworkParams, seed: int) -> SeedResult:
    found, chosen = _detect(pool, params)
    counts = [count for _, count, _, _ in found]
    n_layers = len(M.conv_indices(pool.features, params.layer_index))
    metrics: dict[str, float | list[float]] = {name: math.nan for name in SCALARS}
    metrics.update({name: [math.nan] * n_layers for name in LAYER_METRICS})
    metrics["n_clusters_min"] = float(min(counts))
    metrics["polysemantic_fraction"] = float(np.mean([c >= 2 for c in counts]))
    arrays: dict[str, np.ndarray] = {
        "studied_units": np.array([f[0] for f in found]),
        "studied_clusters": np.array(counts),
    }
    if params.split and chosen is not None:
        unit, count, top, labels = chosen
        metrics.update({"split_unit": float(unit), "n_clusters": float(count)})
        split_metrics, split_arrays = _split(pool, params, seed, unit, top, labels)
        metrics.update(split_metrics)
        arrays.update(split_arrays)
    sweep = {"layer": [float(i) for i in M.conv_indices(pool.features, params.layer_index)]}
    return SeedResult(int(seed), metrics, sweep, arrays)


def run(params: SubnetworkParams, seeds: Sequence[int], device: torch.device | str) -> list[SeedResult]:
    """Detect, split and measure for each seed on ``device``; one result per seed."""
    device = torch.device(device)
    with single_threaded(device):
        return [_one_seed(pool, params, seed) for seed, pool in pools(params, list(seeds), device)]


EXPERIMENT = Experiment(
    name="subnetworks.split",
    params=SubnetworkParams,
    run=run,
    metrics=METRICS,
    description="Polysemantic conv units (HDBSCAN on the layer's activations over a unit's top images) split by "
    "continuous sparsification into per-cluster subnetworks; SNIP / FORCE / ActGrad at matched sparsity; a "
    "random-split control; mask overlap against independence (source 2, Savarese et al. 2020).",
    depends_on=(
        "repro.experiments.subnetworks.methods",
        "repro.experiments.subnetworks.data",
        "repro.data.mnist",
        "repro.experiments.common",
    ),
)

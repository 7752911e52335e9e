"""Tests of the one-neuron phase diagram experiment (repro.experiments.phase.experiment) and its figures.

Tiny CPU configs: these test the code, not the claims (claims/phase.toml does that).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from matplotlib.figure import Figure

from repro import registry
from repro.claim import Claim
from repro.experiments import toy
from repro.experiments.phase import experiment as phase
from repro.experiments.phase import plots as phase_plots
from repro.experiments.phase.experiment import (
    ANTIPODAL,
    METRICS,
    ONLY_FEATURE_1,
    ONLY_FEATURE_2,
    OTHER,
    PhaseParams,
    SharedMaskSampler,
    boundary_density,
    classify,
    expected_loss,
    far_from_boundary,
    keep_lowest_loss,
    theory_class,
    theory_losses,
)
from repro.load import load_claims, resolve_params
from repro.report.figures import figure_to_data_uri
from repro.runner import run_claim
from repro.store import Store

TINY = dict(n_r=3, n_density=4, steps=20)
CLAIMS = Path(__file__).resolve().parent.parent / "claims"


def _f64(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64)


# ---- theory ------------------------------------------------------------------------------------


def test_boundary_values_of_the_closed_form():
    s = boundary_density(_f64([1.0, 0.3, 3.0, 0.1, 10.0]))
    assert s[0].item() == pytest.approx(4 / 7)  # 0.571
    assert s[1].item() == pytest.approx(0.34, abs=0.01) and s[2].item() == pytest.approx(0.364, abs=0.001)
    assert s[3].item() == pytest.approx(0.16) and s[4].item() == pytest.approx(0.16)


def test_theory_classes_switch_exactly_at_the_boundary():
    r = torch.logspace(-1, 1, 41, dtype=torch.float64)
    r = r[(r - 1).abs() > 1e-9]  # at r = 1 the two single-feature solutions tie
    s_star = boundary_density(r)
    assert (theory_class(r, s_star * (1 - 1e-6)) == ANTIPODAL).all()
    above = theory_class(r, s_star * (1 + 1e-6))
    assert (above == torch.where(r < 1, ONLY_FEATURE_1, ONLY_FEATURE_2)).all()


def test_theory_regions_and_losses():
    r, s = _f64([0.2, 5.0, 0.2, 5.0]), _f64([1.0, 1.0, 0.01, 0.01])
    assert theory_class(r, s).tolist() == [ONLY_FEATURE_1, ONLY_FEATURE_2, ANTIPODAL, ANTIPODAL]
    losses = theory_losses(_f64([2.0]), _f64([0.5]))[0]
    assert losses.tolist() == pytest.approx([2 * (0.5 / 3 - 0.25 / 4), 0.5 / 3 - 0.25 / 4, 3 * 0.25 / 6])


def test_far_from_boundary():
    r, s = _f64([1.0, 1.0, 0.1, 1.5, 0.3]), _f64([0.001, 0.5, 1.0, 1.0, 0.2])
    # deep in the antipodal phase; on s*(1) = 0.571; dense at r = 0.1 (s* = 0.16); the box of r = 1.5
    # straddles r = 1; s = 0.2 is within 2x of s*(0.3) = 0.34
    assert far_from_boundary(r, s, factor=2.0).tolist() == [True, False, True, False, False]


def test_expected_loss_of_the_ideal_solutions_is_the_closed_form():
    r = _f64([0.1, 0.5, 1.0, 3.0, 10.0]).repeat_interleave(4)
    s = _f64([0.001, 0.05, 0.3, 1.0]).repeat(5)
    importance = torch.stack([torch.ones_like(r), r], dim=1)
    theory = theory_losses(r, s)  # (K, 3)
    ideal = [([1.0, 0.0], [0.0, 0.5]), ([0.0, 1.0], [0.5, 0.0]), ([1.0, -1.0], [0.0, 0.0])]
    for column, (w, bias_per_density) in enumerate(ideal):
        W = _f64(w).view(1, 1, 2).expand(r.numel(), 1, 2)
        b = _f64(bias_per_density)[None] * s[:, None]  # the ignored feature's bias is its mean s/2
        for kind in ("relu_tied", "linear") if column < 2 else ("relu_tied",):
            loss = expected_loss(W, b, importance, s, kind)
            assert torch.allclose(loss, theory[:, column], rtol=1e-3), kind


# ---- classification ----------------------------------------------------------------------------


def test_classification_rule_on_hand_made_weights():
    cases = [  # (w_1, w_2), (b_1, b_2), class
        ((1.0, 0.0), (0.0, 0.05), ONLY_FEATURE_1),
        ((0.9, -0.15), (0.0, -0.3), ONLY_FEATURE_1),
        ((0.1, -1.1), (-0.2, 0.0), ONLY_FEATURE_2),
        ((1.0, -1.0), (0.0, 0.0), ANTIPODAL),
        ((-0.9, 1.2), (0.05, -0.1), ANTIPODAL),
        ((1.0, 1.0), (0.0, 0.0), OTHER),  # both on one side
        ((1.0, -1.0), (-1.2, -1.2), OTHER),  # dead: no output ever fires
        ((1.0, 0.3), (0.0, 0.0), OTHER),  # feature 2 neither ignored nor represented
        ((0.6, -0.6), (0.0, 0.0), OTHER),  # opposite but too short to reconstruct (0.36 < 0.5)
        ((0.0, 0.0), (0.0, 0.0), OTHER),
    ]
    W = _f64([w for w, _, _ in cases]).unsqueeze(1)  # (K, 1, 2)
    b = _f64([bias for _, bias, _ in cases])
    assert classify(W, b).tolist() == [c for _, _, c in cases]


def test_classification_uses_the_cosine_when_m_is_2():
    W = _f64([[[1.0, -0.99], [0.0, 0.1]], [[1.0, 0.0], [0.0, 1.0]]])  # (2, m=2, n=2): columns w_1, w_2
    assert classify(W, torch.zeros(2, 2)).tolist() == [ANTIPODAL, OTHER]


# ---- data --------------------------------------------------------------------------------------


def test_zroe1_masks_make_both_features_co_occur():
    p = torch.full((3, 2), 0.3)  # (K, n)
    sampler = SharedMaskSampler(toy.make_generators([0, 1], "cpu"), p, rows=50)
    assert sampler.batch == 100 and sampler.n_features == 2
    on = []
    for _ in range(200):
        x = sampler().view(6, 2, 50, 2)  # (I, column, row, feature)
        present = x != 0
        # in each column both features are present together or absent together, in every row
        assert (present[..., 0] == present[..., 1]).all()
        assert (present == present[:, :, :1]).all()
        both = present[:, 0, 0, 0] & present[:, 1, 0, 0]
        assert torch.equal(x[both, 0], x[both, 1])  # his two columns carry the same values
        on.append(present[:, :, 0, 0].float())
    assert abs(torch.stack(on).mean().item() - 0.3) < 0.03


def test_independent_data_has_independent_features():
    p = torch.full((1, 2), 0.3)
    x = toy.FeatureSampler(toy.make_generators([0], "cpu"), p, 20_000, "paper")()  # (1, B, 2)
    present = (x[0] != 0).float()
    assert abs(present.mean().item() - 0.3) < 0.01
    assert abs((present[:, 0] * present[:, 1]).mean().item() - 0.09) < 0.01  # P(both) = p^2


# ---- the experiment ----------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [{}, {"restarts": 2, "data": "zroe1_shared"}, {"model": "linear"}])
def test_tiny_run_shapes(extra):
    params = PhaseParams(**TINY, **extra)
    results = phase.run(params, [0, 1], "cpu")
    assert [r.seed for r in results] == [0, 1]
    K = 12
    for result in results:
        assert result.sweep == {"cell": [float(k) for k in range(K)]}
        assert set(result.metrics) == set(METRICS) == set(phase.EXPERIMENT.metrics)
        for name in ("model_class", "theory_class", "loss"):
            assert len(result.metrics[name]) == K
        for name in set(METRICS) - {"model_class", "theory_class", "loss"}:
            value = result.metrics[name]
            assert isinstance(value, float) and 0.0 <= value <= 1.0
        shapes = {name: array.shape for name, array in result.arrays.items()}
        assert shapes == {"W": (K, 1, 2), "b": (K, 2), "loss": (K,), "r": (K,), "density": (K,),
                          "model_class": (K,), "theory_class": (K,), "far": (K,)}  # fmt: skip
        assert set(result.arrays["model_class"].tolist()) <= {OTHER, ONLY_FEATURE_1, ONLY_FEATURE_2, ANTIPODAL}
    r, density = results[0].arrays["r"], results[0].arrays["density"]
    assert r[0] == pytest.approx(0.1) and r[-1] == pytest.approx(10.0) and np.all(r[:4] == r[0])  # r-major
    assert density[0] == pytest.approx(1e-3) and density[3] == pytest.approx(1.0)


def test_a_seed_does_not_depend_on_the_seeds_beside_it():
    params = PhaseParams(**TINY, restarts=2)
    alone = phase.run(params, [3], "cpu")[0]
    together = phase.run(params, [1, 3], "cpu")[1]
    np.testing.assert_allclose(together.arrays["W"], alone.arrays["W"], rtol=1e-6, atol=1e-7)
    assert together.metrics["model_class"] == alone.metrics["model_class"]


def test_restarts_keep_the_lowest_loss_model():
    G, R, K = 2, 3, 4
    loss = torch.rand(G, R, K, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    W = torch.arange(G * R * K * 2, dtype=torch.float64).view(G, R, K, 1, 2)  # (G, R, K, m, n)
    b = -W[:, :, :, 0, :]  # (G, R, K, n)
    kept_loss, kept_W, kept_b = keep_lowest_loss(loss, W, b)
    best = loss.argmin(1)  # (G, K)
    for g in range(G):
        for k in range(K):
            assert kept_loss[g, k] == loss[:, :, k].min(1).values[g]
            assert torch.equal(kept_W[g, k], W[g, best[g, k], k]) and torch.equal(kept_b[g, k], b[g, best[g, k], k])


def test_params_are_validated():
    with pytest.raises(pydantic.ValidationError, match="n_features"):
        PhaseParams(n_features=3)  # fixed by the experiment
    with pytest.raises(pydantic.ValidationError, match="r_min"):
        PhaseParams(r_min=5.0, r_max=1.0)
    with pytest.raises(pydantic.ValidationError):
        PhaseParams(n_r=0)
    with pytest.raises(pydantic.ValidationError):
        PhaseParams(data="batch_mask")
    with pytest.raises(pydantic.ValidationError):
        PhaseParams(density_max=2.0)
    with pytest.raises(pydantic.ValidationError):
        PhaseParams().model_copy(update={}).__setattr__("steps", 3)  # frozen


# ---- registration, claims, figures ------------------------------------------------------------------


def test_registered_with_its_figures_and_trainer_dependency():
    experiment = registry.get("phase.one_neuron")
    assert experiment.params is PhaseParams
    assert list(experiment.figures) == list(phase_plots.FIGURES)
    assert "repro.experiments.toy" in experiment.depends_on


def test_claims_file_resolves_and_full_scale_is_a_million_models():
    claims = [c for c in load_claims(CLAIMS / "phase.toml") if c.experiment == "phase.one_neuron"]
    assert len(claims) >= 6
    for claim in claims:
        for arm in claim.arm_names():
            full = resolve_params(claim, "full", arm)
            models = full.n_r * full.n_density * full.restarts * claim.n_seeds("full")
            assert models == 1_000_000, claim.id
            ci = resolve_params(claim, "ci", arm)
            assert ci.n_r * ci.n_density <= 120, claim.id


def test_figures_draw_from_a_tiny_run():
    claim = Claim(
        id="test.phase", source="zroe1", statement="A tiny phase diagram draws", evidence="test",
        experiment="phase.one_neuron", metric="antipodal_share", seeds=3,  # the fewest that may decide, at alpha 0.2
        assertion={"test": "greater", "threshold": 0.0, "alpha": 0.2}, params=dict(TINY, steps=5), scales={"ci": {}},
    )  # fmt: skip
    run = run_claim(claim, "ci", store=Store.default(), device="cpu")
    assert run.complete
    for name, function in phase_plots.FIGURES.items():
        figure = function(claim, run)
        assert isinstance(figure, Figure), name
        assert figure_to_data_uri(figure).startswith("data:image/svg+xml;base64,")
    codes = np.array([[1, 1, 3], [1, 2, 3], [0, 0, 2]])  # (seeds, K)
    assert phase_plots._majority(codes).tolist() == [1, phase_plots.NO_MAJORITY, 3]
    assert math.isclose(float(boundary_density(_f64([1.0]))), 4 / 7)


def test_the_papers_rule_drops_the_highest_loss_model_and_takes_the_majority_of_the_rest():
    from repro.experiments.phase.experiment import ANTIPODAL, ONLY_FEATURE_1, OTHER, majority_without_highest

    # one seed, ten restarts, three cells
    codes = torch.full((1, 10, 3), ONLY_FEATURE_1)
    loss = torch.arange(10.0)[None, :, None].expand(1, 10, 3).clone()
    codes[0, :5, 0] = ANTIPODAL  # cell 0: 5 of 10 antipodal, the highest-loss model (9) is not: 5 of 9 left
    codes[0, 5:, 1] = ANTIPODAL  # cell 1: 5 antipodal including the highest-loss one: 4 of 9 left
    codes[0, :4, 2] = ANTIPODAL  # cell 2: 4 antipodal, 6 only-feature-1 incl. the dropped one: 5 of 9 left
    got = majority_without_highest(codes, loss)[0].tolist()
    assert got == [ANTIPODAL, ONLY_FEATURE_1, ONLY_FEATURE_1]
    codes[0, :, 2] = torch.tensor([ANTIPODAL] * 4 + [OTHER] * 4 + [ONLY_FEATURE_1] * 2)
    assert majority_without_highest(codes, loss)[0, 2] == OTHER  # no strict majority of the nine


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_smoke():
    from repro.experiments.phase.experiment import PhaseParams, run

    for restarts in (1, 3):  # both restart rules' paths, on the device
        results = run(PhaseParams(**TINY, restarts=restarts), [0, 1], "cuda")
        assert len(results) == 2
        assert all(math.isfinite(v) for r in results for v in r.metrics["loss"])
        assert math.isfinite(results[0].metrics["agreement"])

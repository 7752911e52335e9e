"""Tests of the subnetworks.split methods and experiment (repro/experiments/subnetworks*.py).

Hand-computed tiny cases for the mask, the schedules and the scores; synthetic data for HDBSCAN; a
tiny CPU run on scikit-learn's 8x8 digits for the experiment's plumbing. The source's claims are
judged by claims/subnetworks.toml, not here. Nothing touches the network.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from repro.claim import Claim
from repro.errors import DataUnavailableError
from repro.experiments.subnetworks import methods as M
from repro.experiments.subnetworks import plots as subnetworks_plots
from repro.experiments.subnetworks.data import small_cnn
from repro.experiments.subnetworks.experiment import METRICS, SubnetworkParams, imagenet_folder, load_alexnet, run
from repro.load import load_claims
from repro.report.figures import figure_to_data_uri
from repro.runner import run_claim
from repro.store import Store

CLAIMS = Path(__file__).resolve().parents[1] / "claims"


def _conv(in_ch: int, out_ch: int, k: int, weight: list, bias: list | None = None) -> nn.Sequential:
    conv = nn.Conv2d(in_ch, out_ch, k)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weight, dtype=torch.float32).view_as(conv.weight))
        conv.bias.copy_(torch.tensor(bias if bias is not None else [0.0] * out_ch))
    return nn.Sequential(conv).requires_grad_(False)


# ---- continuous sparsification: mask, schedules, hard ticket -----------------------------------------------


def test_soft_mask_is_sigmoid_of_temperature_times_s():
    s = torch.tensor([0.0, 0.5, -0.25])
    assert M.soft_mask(s, 1.0)[0] == 0.5  # s0 = 0: every weight starts at half strength (no rescaling)
    expected = [0.5, 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))]
    assert M.soft_mask(s, 4.0).tolist() == pytest.approx(expected)


def test_temperature_rises_geometrically_from_1_to_final():
    assert M.temperatures(5, 16.0) == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0])
    t = M.temperatures(160, 200.0)
    assert t[0] == 1.0 and t[-1] == pytest.approx(200.0)
    assert t[1] / t[0] == pytest.approx(200 ** (1 / 159))  # the source's per-epoch factor
    assert M.temperatures(1, 200.0) == [1.0]


def test_learning_rate_drops_tenfold_at_each_milestone():
    lrs = [M.learning_rate(e, 0.1, [130, 150]) for e in (0, 129, 130, 149, 150, 159)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_hard_mask_keeps_strictly_positive_s():
    assert M.hard_mask(torch.tensor([-1.0, 0.0, 1e-9, 2.0])).tolist() == [0.0, 0.0, 1.0, 1.0]
    masks = [(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.ones(2)), (torch.ones(4), torch.zeros(1))]
    assert M.kept_fraction(masks) == pytest.approx(5 / 8)  # biases are not counted


def test_cs_keeps_the_weight_that_separates_the_clusters():
    # unit = 1*x0 + 1*x1: cluster A lights channel 0, cluster B channel 1; the dense unit cannot tell them apart
    features = _conv(2, 1, 1, [1.0, 1.0])
    x = torch.zeros(16, 2, 1, 1)
    x[:8, 0], x[8:, 1] = 3.0, 3.0
    y = torch.cat([torch.ones(8), torch.zeros(8)])
    kwargs = dict(epochs=10, batch=4, lr=0.1, lr_drops=[8], weight_decay=0.0, lmbda=1e-6, temperature_final=50.0,
                  mask_init=0.0)  # fmt: skip
    ((s_w, _),) = M.train_cs_mask(features, 0, 0, x, y, generator=torch.Generator().manual_seed(0), **kwargs)
    assert M.hard_mask(s_w).flatten().tolist() == [1.0, 0.0]
    ((s_w, _),) = M.train_cs_mask(features, 0, 0, x, 1 - y, generator=torch.Generator().manual_seed(0), **kwargs)
    assert M.hard_mask(s_w).flatten().tolist() == [0.0, 1.0]  # switched labels: cluster B's subnetwork
    # Savarese et al.'s mask optimizer (Nesterov momentum 0.9) finds the same ticket and moves s further
    ((s_n, _),) = M.train_cs_mask(features, 0, 0, x, y, generator=torch.Generator().manual_seed(0), momentum=0.9,
                                  nesterov=True, **kwargs)  # fmt: skip
    assert M.hard_mask(s_n).flatten().tolist() == [1.0, 0.0]
    ((s_p, _),) = M.train_cs_mask(features, 0, 0, x, y, generator=torch.Generator().manual_seed(0), **kwargs)
    assert float(s_n.abs().sum()) > float(s_p.abs().sum())
    with pytest.raises(ValueError, match="[Nn]esterov"):  # Nesterov without momentum: torch's own refusal
        M.train_cs_mask(features, 0, 0, x, y, generator=torch.Generator().manual_seed(0), nesterov=True, **kwargs)


# ---- baselines ------------------------------------------------------------------------------------------


def _two_by_two():
    # one 2x2 kernel on a 2x2 image: the unit is sum_k w_k x_k, so dA/dw_k = mean over images of x_k
    features = _conv(1, 1, 2, [1.0, -2.0, 3.0, 0.5])
    x = torch.tensor([[1.0, 1.0], [2.0, 2.0]]).view(1, 1, 2, 2)
    return features, x


def test_snip_is_weight_times_gradient():
    features, x = _two_by_two()
    (scores,) = M.snip_scores(features, 0, 0, x)
    assert scores.flatten().tolist() == pytest.approx([1.0, 2.0, 6.0, 1.0])
    (mask,) = M.mask_from_scores([scores], 2)
    assert mask.flatten().tolist() == [0.0, 1.0, 1.0, 0.0]


def test_actgrad_scores_the_whole_kernel():
    features, x = _two_by_two()
    (scores,) = M.actgrad_kernel_scores(features, 0, 0, x)
    assert scores.shape == (1, 1)
    assert float(scores) == pytest.approx(abs(1 - 2 + 6 + 1))  # |sum_k w_k dA/dw_k|


def test_kernel_masks_take_whole_kernels_until_the_count_is_reached():
    scores, sizes = [torch.tensor([[5.0, 1.0]]), torch.tensor([[3.0]])], [4, 9]
    first, second = M.kernel_mask_from_scores(scores, sizes, 4)
    assert first.tolist() == [[1.0, 0.0]] and second.tolist() == [[0.0]]
    first, second = M.kernel_mask_from_scores(scores, sizes, 5)
    assert first.tolist() == [[1.0, 0.0]] and second.tolist() == [[1.0]]


def test_force_with_one_iteration_is_snip_and_keeps_the_count():
    torch.manual_seed(0)
    features = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3)).requires_grad_(False)
    x = torch.randn(6, 1, 6, 6)
    snip = M.mask_from_scores(M.snip_scores(features, 2, 1, x), 20)
    force = M.force_mask(features, 2, 1, x, 20, iterations=1)
    assert all(torch.equal(a, b) for a, b in zip(snip, force, strict=True))
    force10 = M.force_mask(features, 2, 1, x, 20, iterations=10)
    assert sum(int(m.sum()) for m in force10) == 20


# ---- independence ------------------------------------------------------------------------------------------


def test_overlap_against_the_hypergeometric_expectation():
    a = torch.zeros(10)
    a[:4] = 1
    b = torch.zeros(10)
    b[[0, 1, 5, 6, 7]] = 1
    stats = M.overlap_stats(a, b)
    assert stats["observed"] == 2 and stats["expected"] == pytest.approx(4 * 5 / 10)
    # P(X >= 2), X ~ hypergeometric(N=10, K=4, n=5): 1 - [C(6,5) + 4 C(6,4)] / C(10,5)
    assert stats["p_excess"] == pytest.approx(1 - (6 + 4 * 15) / 252)
    assert stats["jaccard"] == pytest.approx(2 / 7)
    same = M.overlap_stats(a, a)
    assert same["observed"] == 4 and same["p_excess"] == pytest.approx(1 / math.comb(10, 4))


# ---- detection -------------------------------------------------------------------------------------------


def test_receptive_field_of_alexnet_conv5_centre():
    from torchvision.models import alexnet

    features = alexnet().features
    # conv5 (features.10): 163 px with a 16 px jump; its first window starts at -66, so [6, 6] starts at 30
    assert M.receptive_field(features, 10, 6, 224) == (30, 193)
    assert M.receptive_field(features, 0, 0, 224) == (0, 9)  # conv1 k11 s4 p2: [-2, 9) clipped
    assert M.receptive_field(features, 0, 1, 224) == (2, 13)


def test_receptive_field_of_the_ci_cnn():
    features = small_cnn(4).features
    # k3 s2 p1, k3 s2 p1, k3 p1, k3 p1: window 23 px, jump 4, first start -11; centre of 7x7 is 3
    assert M.receptive_field(features, 6, 3, 28) == (1, 24)
    assert M.receptive_field(features, 2, 0, 28) == (0, 4)


def test_receptive_box_is_the_sources_for_alexnet_and_the_ci_cnn():
    """The box the source shrinks each image into: circuit_explorer's receptive_field_for_unit at [6, 6]
    (HDBScan_Clustering.py lines 169-170): 163 px for features.10, 131 px for features.8 (SOURCES.md 10)."""
    from torchvision.models import alexnet

    features = alexnet().features
    assert M.receptive_box(features, 10, 224) == (30, 193)  # 193 - 30 = 163
    assert M.receptive_box(features, 8, 224) == (46, 177)  # 131
    assert M.receptive_box(features, 6, 224) == (62, 161)  # receptive_field_for_unit's own docstring example
    cnn = small_cnn(4).features
    assert M.receptive_box(cnn, 6, 28) == (1, 24) and M.receptive_box(cnn, 4, 28) == (5, 20)
    assert M.receptive_box(cnn, 6, 8) == (0, 8)  # a window wider than the image is clipped to it


def test_fit_into_box_puts_the_whole_image_in_the_box_on_a_zero_canvas():
    x = torch.ones(2, 3, 224, 224)
    x[..., 112:] = 2.0  # left half 1, right half 2: nowhere zero
    out = M.fit_into_box(x, (30, 193))
    assert out.shape == x.shape
    outside = torch.ones(224, 224, dtype=torch.bool)
    outside[30:193, 30:193] = False
    assert (out[..., outside] == 0).all()  # a zero canvas around the box
    box = out[..., 30:193, 30:193]
    assert (box > 0).all()
    one, two = torch.ones(()), torch.full((), 2.0)
    assert torch.allclose(box[..., 0], one) and torch.allclose(box[..., -1], two)  # the image's edges: all of it
    assert torch.allclose(box[..., :81], one) and torch.allclose(box[..., 82:], two)  # its halves, the box's halves
    # the source's Resize on a tensor under its torchvision 0.15.1: bilinear, no antialiasing
    expected = nn.functional.interpolate(x, size=(163, 163), mode="bilinear", align_corners=False, antialias=False)
    assert torch.equal(box, expected)


def test_the_detection_input_is_the_sources_by_default():
    from PIL import Image

    from repro.experiments.subnetworks.data import IMAGENET_SIDE, imagenet_transform, input_box

    params = SubnetworkParams()
    assert params.input == "receptive_field"
    from torchvision.models import alexnet

    box = input_box(params, alexnet().features, IMAGENET_SIDE)
    assert box == (30, 193)
    photo = Image.fromarray(np.full((300, 400, 3), 255, dtype=np.uint8))  # white: nowhere the mean colour
    image = imagenet_transform(params, box)(photo)
    assert image.shape == (3, 224, 224)
    inside = torch.zeros(224, 224, dtype=torch.bool)
    inside[30:193, 30:193] = True
    assert (image[:, inside] > 0).all() and (image[:, ~inside] == 0).all()
    plain = SubnetworkParams(input="plain")
    assert input_box(plain, alexnet().features, IMAGENET_SIDE) is None
    assert (imagenet_transform(plain, None)(photo) > 0).all()  # the preprocessed image itself
    ci = SubnetworkParams(model="small_cnn", dataset="fashion_mnist", layer="features.6")
    assert input_box(ci, small_cnn(4).features, 28) == (1, 24)


def test_hdbscan_counts_two_blobs_as_two_and_one_blob_as_fewer():
    rng = np.random.default_rng(0)
    blob = rng.normal(size=(150, 8))
    bimodal = np.r_[blob, rng.normal(size=(150, 8)) + 10.0]
    count, labels = M.n_clusters(bimodal, 50)
    assert count == 2
    assert set(labels[:150]) != set(labels[150:])
    unimodal, _ = M.n_clusters(rng.normal(size=(300, 8)), 50)
    assert unimodal < 2  # one blob: one cluster or all noise, never polysemantic
    assert M.n_clusters(blob[:60], 50)[0] < 2  # too few points for two clusters
    assert M.n_clusters(blob[:40], 50)[0] == 0  # too few for one


def test_hdbscan_is_the_source_package_with_its_defaults(monkeypatch):
    import hdbscan

    made = []
    original = hdbscan.HDBSCAN

    def spy(**kwargs):
        made.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(hdbscan, "HDBSCAN", spy)
    M.n_clusters(np.random.default_rng(1).normal(size=(120, 4)), 50)
    assert made == [{"min_cluster_size": 50}]  # the source's call, nothing else set


def test_auroc_and_preservation():
    assert M.auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert M.auroc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    assert M.preservation(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == pytest.approx(0.5)


# ---- data, params, experiment -----------------------------------------------------------------------------


def test_missing_imagenet_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="image-net.org"):
        imagenet_folder()
    (tmp_path / "imagenet" / "train" / "n01440764").mkdir(parents=True)
    with pytest.raises(DataUnavailableError, match="holds no"):
        imagenet_folder()
    with pytest.raises(DataUnavailableError):
        run(SubnetworkParams(), [0], "cpu")  # full scale never falls back to a stand-in


def test_missing_alexnet_weights_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    with pytest.raises(DataUnavailableError, match="IMAGENET1K_V1"):
        load_alexnet(None)
    with pytest.raises(DataUnavailableError, match="does not exist"):
        load_alexnet(str(tmp_path / "sparse_alexnet.pt"))


def test_params_are_validated():
    with pytest.raises(pydantic.ValidationError):
        SubnetworkParams(temprature_final=100)  # a typo is refused
    with pytest.raises(pydantic.ValidationError):
        SubnetworkParams(model="alexnet", dataset="fashion_mnist")
    with pytest.raises(pydantic.ValidationError):
        SubnetworkParams(model="small_cnn", dataset="fashion_mnist", weights="x.pt")
    with pytest.raises(pydantic.ValidationError):
        SubnetworkParams(top_k=60, min_cluster_size=50)
    with pytest.raises(pydantic.ValidationError):
        SubnetworkParams(lr_drops=[150, 130])
    with pytest.raises(pydantic.ValidationError):
        SubnetworkParams(layer="classifier.1")
    with pytest.raises(pydantic.ValidationError):
        SubnetworkParams(input="crop")
    defaults = SubnetworkParams()
    assert defaults.layer_index == 10
    # the source's mask optimizer: optim.SGD(mask_params, lr=lr), no momentum, no weight decay
    assert (defaults.momentum, defaults.nesterov, defaults.weight_decay) == (0.0, False, 0.0)


def test_claim_file_loads_with_every_ci_override_valid():
    claims = [c for c in load_claims(CLAIMS / "subnetworks.toml")]
    assert len(claims) >= 8 and all(c.experiment == "subnetworks.split" for c in claims)
    assert all(c.metric in METRICS for c in claims)


TINY = dict(model="small_cnn", dataset="sklearn_digits", layer="features.6", units=[], top_k=120, min_cluster_size=10,
            epochs=2, lr_drops=[1], sweep_fractions=[0.2], cnn_channels=8, cnn_epochs=2, cnn_train_images=1000,
            force_iterations=2)  # fmt: skip


def test_tiny_run_splits_a_unit_and_is_deterministic():
    params = SubnetworkParams(**TINY)
    first = run(params, [3, 4], "cpu")
    again = run(params, [3], "cpu")
    assert [r.seed for r in first] == [3, 4]
    assert set(first[0].metrics) == set(METRICS)
    np.testing.assert_equal(first[0].metrics, again[0].metrics)  # NaN-aware; seed 3 alone gives the same
    for r in first:
        assert r.metrics["n_clusters"] >= 2  # the split unit is polysemantic by construction
        assert 0 < r.metrics["kept_fraction"] < 1 and 0 <= r.metrics["auroc_own_min"] <= 1
        assert math.isfinite(r.metrics["overlap_ratio"]) and math.isfinite(r.metrics["auroc_cs_minus_heuristics"])
        assert len(r.metrics["overlap_ratio_layer"]) == len(r.sweep["layer"]) == 4
        assert r.arrays["cluster_a_images"].dtype == np.uint8


def test_figures_draw_from_a_tiny_run():
    claim = Claim(
        id="test.subnetworks", source="subnetworks", statement="A tiny split draws its figures", evidence="test",
        experiment="subnetworks.split", metric="kept_fraction", seeds=3,  # the fewest that may decide, at alpha 0.2
        assertion={"test": "less", "threshold": 1.0, "alpha": 0.2}, params=TINY, scales={"ci": {}},
    )  # fmt: skip
    run_ = run_claim(claim, "ci", store=Store.default(), device="cpu")
    assert run_.complete
    for name, function in subnetworks_plots.FIGURES.items():
        figure = function(claim, run_)
        assert isinstance(figure, Figure), name
        assert figure_to_data_uri(figure).startswith("data:image/svg+xml;base64,")
    detection_only = claim.model_copy(update={"params": {**TINY, "split": False}})
    run_ = run_claim(detection_only, "ci", store=Store.default(), device="cpu")
    assert all(function(detection_only, run_) is None for function in subnetworks_plots.FIGURES.values())


def test_the_source_network_is_hamblins_sparse_alexnet_or_a_clear_error(tmp_path, monkeypatch):
    """A full-scale claim that names units of the sparse AlexNet never runs on torchvision's dense one."""
    from torchvision.models import alexnet

    from repro.errors import DataUnavailableError
    from repro.experiments.subnetworks import data as D

    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="alexnet_sparse_statedict.pt.*circuit_explorer"):
        D.load_alexnet(None, sparse=True)
    reference = alexnet().state_dict()
    (tmp_path / "weights").mkdir()
    # what a DataParallel training script saves: a wrapper dict and "module." prefixes
    wrapped = {"state_dict": {k.replace("features.", "features.module."): v for k, v in reference.items()}}
    torch.save(wrapped, tmp_path / "weights" / D.SPARSE_ALEXNET_FILE)
    net = D.load_alexnet(None, sparse=True)
    assert torch.equal(net.features[10].weight, reference["features.10.weight"])
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(DataUnavailableError, match="no state_dict of tensors|not a torchvision AlexNet"):
        D.load_alexnet(str(tmp_path / "other.pt"))
    torch.save(alexnet(), tmp_path / "module.pt")  # a pickled module, not a state_dict
    with pytest.raises(DataUnavailableError, match="weights_only=True"):
        D.load_alexnet(str(tmp_path / "module.pt"))


def test_overlap_counts_only_weights_that_can_reach_the_unit():
    """In the unit's own conv only its filter can matter: the other filters (kept by neither mask)
    must not enter N, or the expected overlap shrinks C-fold."""
    a = torch.zeros(8, 2, 3, 3)
    b = torch.zeros(8, 2, 3, 3)
    a[3, :, :2] = 1  # unit 3's filter: 12 of 18 weights kept by A
    b[3, :, 1:] = 1  # 12 of 18 kept by B; 6 kept by both
    everything = M.overlap_stats(a, b)
    own = torch.zeros_like(a, dtype=torch.bool)
    own[3] = True
    filter_only = M.overlap_stats(a, b, own)
    assert everything["expected"] == pytest.approx(12 * 12 / 144)
    assert filter_only["expected"] == pytest.approx(12 * 12 / 18) and filter_only["observed"] == 6
    assert filter_only["observed"] / filter_only["expected"] < 1 < everything["observed"] / everything["expected"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_smoke():
    (result,) = run(SubnetworkParams(**TINY), [3], "cuda")
    assert result.metrics["n_clusters"] >= 2
    assert all(math.isfinite(result.metrics[k]) for k in ("kept_fraction", "auroc_own_min", "overlap_ratio"))

"""The full-scale rehearsal: fabricated data in the real formats, and every full-scale claim's code path."""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from repro import registry
from repro.cli import app
from repro.fabricate import Sizes, fabricate
from repro.load import load_claims, resolve_params
from repro.rehearsal import CUTS, rehearsal_params, rehearse

CLAIMS = Path(__file__).resolve().parents[1] / "claims"


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory) -> Path:
    return fabricate(tmp_path_factory.mktemp("data"))


def test_fabricated_mnist_cifar_tiny_read_by_the_real_loaders(fabricated):
    from repro.data.images import load_cifar10, load_tiny_imagenet
    from repro.data.mnist import load_mnist

    sizes = Sizes()
    assert (fabricated / "MNIST/raw/train-images-idx3-ubyte.gz").is_file()  # the gzip path is read too
    mnist = load_mnist(fabricated)
    assert mnist.train_images.shape[0] == sizes.mnist_train and mnist.test_images.shape[0] == sizes.mnist_test
    assert set(np.unique(mnist.train_labels)) == set(range(10))
    assert 0.05 < float((mnist.train_images > 0).mean()) < 0.4  # MNIST-like ink, not uniform noise
    cifar = load_cifar10(fabricated)
    assert cifar.train_images.shape == (5 * sizes.cifar_per_batch, 3, 32, 32)
    assert cifar.test_images.shape == (sizes.cifar_test, 3, 32, 32)
    tiny = load_tiny_imagenet(fabricated)
    assert len(tiny.classes) == 200 and tiny.train_images.shape[1:] == (3, 64, 64)
    assert tiny.test_images.shape[0] == sizes.tiny_val


def test_fabricated_imagenet_folder_has_a_corrupt_exif_image_that_pil_warns_on(fabricated, monkeypatch):
    from torchvision.datasets import ImageFolder

    from repro.experiments.subnetworks.data import imagenet_folder

    monkeypatch.setenv("REPRO_DATA", str(fabricated))
    folder = ImageFolder(str(imagenet_folder("train")))
    assert len(folder.classes) == Sizes().imagenet_classes
    corrupt = [i for i, (path, _) in enumerate(folder.samples) if path.endswith("_1.JPEG")][0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image, _ = folder[corrupt]
    assert image.size[0] > 0
    assert any("Corrupt EXIF" in str(w.message) for w in caught)


def test_fabricated_checkpoints_load_through_the_experiments_loaders(fabricated, monkeypatch):
    from repro.experiments.stall.experiment import pretrained_resnet18_state
    from repro.experiments.subnetworks.data import load_alexnet

    monkeypatch.setenv("REPRO_DATA", str(fabricated))
    monkeypatch.setenv("TORCH_HOME", str(fabricated / "no-hub"))
    raw = torch.load(fabricated / "weights/alexnet_sparse_statedict.pt", weights_only=True)
    assert all(k.startswith("module.") for k in raw)  # as DataParallel saves it
    sparse = load_alexnet(None, sparse=True)
    assert float((sparse.features[10].weight == 0).float().mean()) > 0.3
    dense = load_alexnet(None)
    assert not torch.equal(dense.features[0].weight, sparse.features[0].weight)
    state = pretrained_resnet18_state(download=False)
    assert "layer4.1.bn2.running_var" in state and state["fc.weight"].shape == (1000, 512)


def test_every_experiment_has_cuts_that_name_its_params():
    for name in registry.BUILTIN:  # this package's families (an installed user distribution brings its own)
        assert name in CUTS, f"{name} has no rehearsal cuts"
        fields = registry.get(name).params.model_fields
        assert set(CUTS[name]) <= set(fields), name


def test_cuts_shorten_runs_and_keep_the_full_scale_widths():
    claims = {c.id: c for c in load_claims(CLAIMS)}
    stall = rehearsal_params(claims["stall.cifar10.as-published.silhouette-not-raised"], "least_confidence")
    assert (stall.loops, stall.epochs, stall.model, stall.pretrained) == (2, 1, "resnet18", True)
    sub = rehearsal_params(claims["subnetworks.detect.features10-named-units"])
    assert sub.model == "alexnet_sparse" and sub.n_images == 40 and sub.units == [255, 15, 167]
    phase = rehearsal_params(claims["phase.relu.theory-agreement"])
    assert phase.steps == 2 and (phase.n_r, phase.n_density, phase.restarts) == (100, 100, 10)


def test_the_resize_cut_shrinks_tiny_imagenet_and_leaves_unresized_claims_unresized():
    claims = {c.id: c for c in load_claims(CLAIMS)}
    tiny = rehearsal_params(claims["stall.tiny-imagenet.baseline-silhouette-negative"])
    assert resolve_params(claims["stall.tiny-imagenet.baseline-silhouette-negative"], "full").resize == 224
    assert tiny.resize == CUTS["stall.active_learning"]["resize"] < 224  # still resized: 64 -> 112
    cifar = rehearsal_params(claims["stall.cifar10.as-published.silhouette-not-raised"], "least_confidence")
    assert cifar.resize is None  # None is "no resize", not "all": the cut does not switch it on


def _with_run(monkeypatch, name: str, change) -> None:
    experiment = registry.get(name)

    def run(params, seeds, device):
        return change(experiment.run(params, seeds, device))

    monkeypatch.setitem(registry._REGISTRY, name, dataclasses.replace(experiment, run=run))


def _calibration_claims():
    return [c for c in load_claims(CLAIMS) if c.id == "calibration.greater.positive"]


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda rs: [dataclasses.replace(r, metrics={"value": [math.nan]}) for r in rs], "not finite"),
        (lambda rs: [dataclasses.replace(r, metrics={}) for r in rs], "lacks metrics"),
        (lambda rs: [dataclasses.replace(r, metrics={"value": [1.0, 2.0]}) for r in rs], "2 values for sweep"),
        (lambda rs: rs[:1], "came back for"),
    ],
)
def test_a_broken_metric_fails_the_rehearsal(monkeypatch, change, problem):
    """Negative controls: each way a full-scale run could hand a verdict bad metrics is caught."""
    _with_run(monkeypatch, "calibration.normal", change)
    result = rehearse(_calibration_claims())
    assert not result.ok
    assert any(problem in p for a in result.arms for p in a.problems), result.table()


def test_an_experiment_that_raises_fails_the_rehearsal_with_its_message(monkeypatch):
    def boom(results):
        raise RuntimeError("CUDA out of memory at full width")

    _with_run(monkeypatch, "calibration.normal", boom)
    result = rehearse(_calibration_claims())
    assert not result.ok and "CUDA out of memory" in result.table()


def test_data_are_fabricated_only_for_families_that_read_them(monkeypatch):
    """A user's experiments alone (skipped with their reason) and the families that generate their own
    data rehearse with nothing fabricated; a family that reads files gets them."""
    import repro.rehearsal as rehearsal

    made = []
    monkeypatch.setattr(rehearsal, "fabricate", lambda root: made.append(root))
    claims = {c.id: c for c in load_claims(CLAIMS)}
    result = rehearse([claims["calibration.greater.positive"], claims["tms.linear.m-features"]])
    assert result.ok, result.table()  # fabricate wrote nothing: these must not need its files
    assert {a.experiment for a in result.arms} <= rehearsal.GENERATED_DATA and made == []
    with monkeypatch.context() as m:
        m.delitem(CUTS, "calibration.normal")  # as if it were a user's experiment
        result = rehearse(_calibration_claims())
    assert result.ok and not result.arms and result.skipped and made == []

    class Fabricated(Exception):
        pass

    def fabricate(root):
        made.append(root)
        raise Fabricated  # the files are not needed further: the call is what this checks

    monkeypatch.setattr(rehearsal, "fabricate", fabricate)
    with pytest.raises(Fabricated):
        rehearse([claims["sae.probe.at-chance.control"]])
    assert len(made) == 1


def test_cli_rehearse_needs_full_scale_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "store"))
    runner = CliRunner()
    refused = runner.invoke(app, ["run", "--scale", "ci", "--rehearse", "calibration.greater.positive"])
    assert refused.exit_code == 2 and "--scale full" in refused.output
    done = runner.invoke(app, ["run", "--scale", "full", "--rehearse", "calibration.greater.positive"])
    assert done.exit_code == 0, done.output
    assert "every metric came out finite" in done.output
    assert not (tmp_path / "store").exists()


CLAIM_FILES = sorted(p.name for p in CLAIMS.glob("*.toml") if p.name != "sources.toml")


def test_the_rehearsal_items_cover_every_claims_file():
    assert set(CLAIM_FILES) == {p.name for p in load_claims(CLAIMS).files.values()}


@pytest.mark.rehearsal
@pytest.mark.parametrize("claims_file", CLAIM_FILES)
def test_every_full_scale_claim_rehearses_on_cpu(claims_file, fabricated, tmp_path, monkeypatch):
    """The rehearsal, as `repro run --scale full --rehearse` runs it, one claims file per item (so that
    pytest -n spreads it; all of them: about 3 minutes on 2 cores)."""
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "store"))
    data_before = os.environ.get("REPRO_DATA")
    claim_set = load_claims(CLAIMS)
    claims = [c for c in claim_set if claim_set.files[c.id].name == claims_file]
    result = rehearse(claims, data_root=fabricated)  # fabricated once per worker, read-only here
    print(result.table())
    assert result.ok, result.table()
    rehearsed = {c.id for a in result.arms for c, _ in a.claims}
    assert rehearsed | {i for i, _ in result.skipped} == {c.id for c in claims}
    assert {c.experiment for c in claims} == {a.experiment for a in result.arms}
    assert not (tmp_path / "store").exists()  # nothing written to the store
    assert os.environ.get("REPRO_DATA") == data_before

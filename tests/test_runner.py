from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from repro import registry
from repro.judge import evaluate, replicate_seeds
from repro.load import load_claims
from repro.runner import run_claim
from repro.store import Store

from .helpers import claim_text, skipped_claim_text, write_claims


@pytest.fixture
def claim(tmp_path):
    return load_claims(write_claims(tmp_path / "claims", claim_text())).get("demo.mean-positive")


def test_replicate_seeds_extend_without_changing():
    assert replicate_seeds(0, 10)[:4] == replicate_seeds(0, 4)
    assert len(set(replicate_seeds(0, 1000))) == 1000
    assert replicate_seeds(0, 3) != replicate_seeds(1, 3)


def test_run_caches_and_force_recomputes(claim, tmp_path):
    store = Store(tmp_path / "s")
    first = run_claim(claim, "ci", store=store, device="cpu")
    assert first.computed == 10 and first.verdict.outcome == "reproduced" and first.as_expected
    second = run_claim(claim, "ci", store=store, device="cpu")
    assert second.computed == 0
    assert second.verdict == first.verdict
    forced = run_claim(claim, "ci", store=store, device="cpu", force=True)
    assert forced.computed == 10 and forced.verdict == first.verdict


def test_scales_share_seeds_that_share_params(claim, tmp_path):
    store = Store(tmp_path / "s")
    run_claim(claim, "ci", store=store, device="cpu")
    full = run_claim(claim, "full", store=store, device="cpu")
    assert full.computed == 2  # the ci scale's 10 seeds are the first 10 of full's 12


def test_evaluate_without_results_is_not_run(claim, tmp_path):
    run = evaluate(claim, "ci", Store(tmp_path / "empty"))
    assert run.verdict.outcome == "error" and "not run" in run.verdict.message
    assert not run.complete


def test_experiment_crash_is_an_error_verdict(claim, tmp_path, monkeypatch):
    def crash(params, seeds, device):
        raise RuntimeError("diverged")

    original = registry.get("calibration.normal")
    monkeypatch.setitem(registry._REGISTRY, "calibration.normal", dataclasses.replace(original, run=crash))
    run = run_claim(claim, "ci", store=Store(tmp_path / "s"), device="cpu")
    assert run.verdict.outcome == "error" and "diverged" in run.verdict.message
    assert not run.as_expected


def test_nan_metric_is_an_error_never_a_pass(claim, tmp_path, monkeypatch):
    original = registry.get("calibration.normal")

    def with_nan(params, seeds, device):
        results = original.run(params, seeds, device)
        results[0].metrics["value"] = [float("nan")]
        return results

    monkeypatch.setitem(registry._REGISTRY, "calibration.normal", dataclasses.replace(original, run=with_nan))
    run = run_claim(claim, "ci", store=Store(tmp_path / "s"), device="cpu")
    assert run.verdict.outcome == "error"


def test_at_selects_one_sweep_point(tmp_path):
    body = claim_text().replace(
        "params = { mean = 1.0, sd = 0.5 }",
        "at = 2.0\nparams = { mean = -5.0, slope = 3.0, sd = 0.5, sweep = [0.0, 2.0] }",
    )
    claim = load_claims(write_claims(tmp_path / "c", body)).get("demo.mean-positive")
    run = run_claim(claim, "ci", store=Store(tmp_path / "s"), device="cpu")
    assert run.verdict.outcome == "reproduced"
    assert run.verdict.estimate == pytest.approx(1.0, abs=0.5)
    bad = claim.model_copy(update={"at": 7.0})
    assert "not a point of the sweep" in evaluate(bad, "ci", Store(tmp_path / "s")).verdict.message


def test_arms_are_paired_by_seed(tmp_path):
    claims = load_claims(write_claims(tmp_path / "c", "", name="empty.toml"))  # sources only
    assert len(claims) == 0
    from pathlib import Path

    repo = load_claims(Path(__file__).resolve().parents[1] / "claims" / "calibration.toml")
    claim = repo.get("calibration.difference.negative")
    run = run_claim(claim, "ci", store=Store(tmp_path / "s"), device="cpu")
    assert set(run.results) == {"high", "low"}
    assert [r.seed for r in run.results["high"]] == [r.seed for r in run.results["low"]] == run.seeds
    assert run.verdict.outcome == "not_reproduced"
    high = np.array([r.metrics["value"][0] for r in run.results["high"]])
    low = np.array([r.metrics["value"][0] for r in run.results["low"]])
    # Same seed, but each arm draws its own noise stream: the difference is not the mean gap exactly.
    assert np.std(high - low) > 0.1
    np.testing.assert_allclose(np.mean(high - low), 0.1, atol=3 * 0.2 * np.sqrt(2 / len(high)))


def test_a_skipped_scale_runs_nothing_and_fails_nothing(tmp_path, monkeypatch):
    claim = load_claims(write_claims(tmp_path / "claims", skipped_claim_text())).get("demo.mean-positive")

    def must_not_run(params, seeds, device):
        raise AssertionError("a skipped scale must not run its experiment")

    original = registry.get("calibration.normal")
    monkeypatch.setitem(registry._REGISTRY, "calibration.normal", dataclasses.replace(original, run=must_not_run))
    store = Store(tmp_path / "s")
    run = run_claim(claim, "ci", store=store, device="cpu")
    assert run.skipped == "no offline copy of this dataset exists"
    assert run.as_expected and run.computed == 0
    assert "skipped at scale ci" in run.verdict.message
    full = evaluate(claim, "full", store)  # the other scale is untouched: not run, not skipped
    assert full.skipped is None and not full.as_expected


def test_skip_and_expect_at_one_scale_are_refused(tmp_path):
    from repro.errors import ClaimFileError

    text = skipped_claim_text().replace("seeds = 10\nskip", 'seeds = 10\nexpect = "inconclusive"\nfinding = "x"\nskip')
    with pytest.raises(ClaimFileError, match="skip"):
        load_claims(write_claims(tmp_path / "claims", text))


def test_a_warning_in_an_experiment_is_recorded_not_raised(tmp_path, monkeypatch):
    """pytest runs with warnings as errors; a full-scale run must not die on a corrupt EXIF header."""
    import warnings

    from repro import registry

    experiment = registry.get("calibration.normal")
    original = experiment.run

    def noisy(params, seeds, device):
        warnings.warn("Corrupt EXIF data", UserWarning, stacklevel=1)
        warnings.warn("Corrupt EXIF data", UserWarning, stacklevel=1)
        return original(params, seeds, device)

    import dataclasses

    monkeypatch.setitem(registry._REGISTRY, "calibration.normal", dataclasses.replace(experiment, run=noisy))
    from pathlib import Path

    claim = load_claims(Path(__file__).resolve().parents[1] / "claims" / "calibration.toml").get(
        "calibration.greater.positive"
    )
    run = run_claim(claim, "ci", store=Store(tmp_path / "s"), device="cpu")
    assert run.verdict.outcome == "reproduced"
    assert run.results["main"][0].provenance["warnings"] == ["UserWarning: Corrupt EXIF data"]

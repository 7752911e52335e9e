"""`repro check-experiment`: every built-in experiment keeps the contract; each broken one fails by name."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from repro import registry
from repro.check_experiment import check_experiment
from repro.cli import app
from repro.errors import ExperimentRegistrationError
from repro.registry import Experiment, SeedResult


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mean: float = 0.0


def _honest(params, seeds, device):
    out = []
    for seed in seeds:
        value = float(params.mean + np.random.default_rng(seed).normal())
        out.append(
            SeedResult(seed=seed, metrics={"value": value, "curve": [value, 2 * value]}, sweep={"x": [0.0, 1.0]})
        )
    return out


def _batch_dependent(params, seeds, device):
    rng = np.random.default_rng(seeds[0])  # one stream for the whole call: a seed's value depends on its batch
    return [
        SeedResult(seed=s, metrics={"value": float(rng.normal()), "curve": [0.0, 0.0]}, sweep={"x": [0, 1]})
        for s in seeds
    ]


def _missing_metric(params, seeds, device):
    return [SeedResult(seed=s, metrics={"value": float(s)}, sweep={"x": [0.0, 1.0]}) for s in seeds]


def _nan(params, seeds, device):
    return [
        SeedResult(seed=s, metrics={"value": math.nan, "curve": [0.0, 1.0]}, sweep={"x": [0.0, 1.0]}) for s in seeds
    ]


def _undeclared(params, seeds, device):
    return [
        SeedResult(seed=s, metrics={"value": 1.0, "curve": [0.0, 1.0], "extra": 2.0}, sweep={"x": [0.0, 1.0]})
        for s in seeds
    ]


def _make(run, params=Params) -> Experiment:
    return Experiment(
        name="test.contract",
        params=params,
        run=run,
        metrics=("value", "curve"),
        metric_kinds={"value": "continuous", "curve": "continuous"},
    )


def _failed(checks) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.passed}


def test_an_honest_experiment_passes():
    checks = check_experiment(_make(_honest), fresh_process=False)
    assert not _failed(checks), _failed(checks)
    assert len(checks) == 8


@pytest.mark.parametrize(
    ("run", "failing", "says"),
    [
        (_batch_dependent, "a seed does not depend on the seeds sharing its call", "seed 12"),
        (_missing_metric, "declared metrics, finite, sweep-shaped", "declared metric(s) not produced: ['curve']"),
        (_nan, "declared metrics, finite, sweep-shaped", "metric 'value' is not finite"),
        (_undeclared, "declared metrics, finite, sweep-shaped", "undeclared metric(s) produced: ['extra']"),
    ],
)
def test_a_broken_experiment_fails_the_check_that_names_its_fault(run, failing, says):
    failed = _failed(check_experiment(_make(run), fresh_process=False))
    assert set(failed) == {failing}, failed
    assert says in failed[failing]


def test_params_that_accept_unknown_fields_fail():
    class Loose(BaseModel):
        mean: float = 0.0

    failed = _failed(check_experiment(_make(_honest, Loose), fresh_process=False))
    assert set(failed) == {"params refuse unknown fields"}
    assert "extra='forbid'" in failed["params refuse unknown fields"]


def test_a_crash_is_reported_not_raised():
    def crash(params, seeds, device):
        raise RuntimeError("out of cheese")

    failed = _failed(check_experiment(_make(crash), fresh_process=False))
    assert "out of cheese" in failed["runs on the check setting"]


def test_registration_the_same_object_twice_is_harmless_a_different_one_refused():
    experiment = _make(_honest)
    saved = dict(registry._REGISTRY)
    try:
        assert registry.register(experiment) is experiment
        assert registry.register(experiment) is experiment
        with pytest.raises(ExperimentRegistrationError, match="registered twice"):
            registry.register(dataclasses.replace(experiment, run=_nan))
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved)


def test_the_cli_exits_1_on_a_failing_check_and_2_on_an_unknown_name(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "test.contract", _make(_nan))
    result = CliRunner().invoke(app, ["check-experiment", "test.contract"])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "not finite" in result.output
    result = CliRunner().invoke(app, ["check-experiment", "calibration.normall"])
    assert result.exit_code == 2
    assert "did you mean 'calibration.normal'" in result.output


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_every_built_in_experiment_keeps_the_contract(name):
    checks = check_experiment(name, fresh_process=name == "calibration.normal")
    assert not _failed(checks), _failed(checks)

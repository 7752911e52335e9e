"""Ridge regression against least squares when samples are few: ``ridge.shrinkage``.

Each seed draws a linear problem y = X w + noise with ``n_samples`` rows and ``n_features``
columns, fits least squares and ridge (penalty ``alpha``) by their closed forms, and measures the
mean squared error of each on a fresh test set of the same problem. Everything is numpy; the
device argument is ignored, so the experiment declares it runs on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from repro import Experiment, SeedResult
from repro.registry import SweepAxis

__all__ = ["EXPERIMENT", "RidgeParams", "run"]


class RidgeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # a misspelt claim param is an error

    n_samples: int = Field(40, ge=2, le=100_000, description="Training rows per seed.")
    n_features: int = Field(30, ge=1, le=10_000, description="Columns of X (true weights ~ N(0, 1/n_features)).")
    noise: float = Field(1.0, ge=0.0, description="Standard deviation of the label noise.")
    alpha: list[float] = Field(
        default_factory=lambda: [1.0], min_length=1, description="Ridge penalties (the sweep axis)."
    )
    n_test: int = Field(2000, ge=10, le=1_000_000, description="Test rows per seed.")


def _fit(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    gram = x.T @ x + alpha * np.eye(x.shape[1])
    return np.linalg.lstsq(gram, x.T @ y, rcond=None)[0]


def run(params: RidgeParams, seeds: Sequence[int], device: object = "cpu") -> list[SeedResult]:
    results = []
    for seed in seeds:  # each seed its own generator: its result never depends on the others
        rng = np.random.default_rng(seed)
        w = rng.normal(0.0, 1.0 / np.sqrt(params.n_features), params.n_features)
        x, x_test = (
            rng.normal(size=(params.n_samples, params.n_features)),
            rng.normal(size=(params.n_test, params.n_features)),
        )
        y = x @ w + rng.normal(0.0, params.noise, params.n_samples)
        y_test = x_test @ w + rng.normal(0.0, params.noise, params.n_test)
        ols = float(np.mean((x_test @ _fit(x, y, 0.0) - y_test) ** 2))
        ridge = [float(np.mean((x_test @ _fit(x, y, a) - y_test) ** 2)) for a in params.alpha]
        results.append(
            SeedResult(
                seed=seed,
                metrics={"ols_test_mse": ols, "ridge_test_mse": ridge, "ridge_gain": [ols - r for r in ridge]},
                sweep={"alpha": list(params.alpha)},
            )
        )
    return results


EXPERIMENT = Experiment(
    name="ridge.shrinkage",
    params=RidgeParams,
    run=run,
    metrics=("ols_test_mse", "ridge_test_mse", "ridge_gain"),
    metric_kinds={"ols_test_mse": "skewed", "ridge_test_mse": "skewed", "ridge_gain": "continuous"},
    description="Test error of ridge against least squares on random linear problems.",
    devices=("cpu",),
    check_params={"n_samples": 20, "n_features": 10, "alpha": [0.1, 1.0], "n_test": 100},
    # the loader refuses a claim whose `at` is not one of the penalties it runs, before anything runs
    sweep=SweepAxis(
        name="alpha",
        fields=("alpha",),
        meaning="the values of param 'alpha'",
        points=lambda params: [float(a) for a in params.alpha],
        per_point=frozenset({"ridge_test_mse", "ridge_gain"}),
    ),
)

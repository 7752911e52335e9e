"""Known-answer data for the statistics: each seed draws value = mean + slope * x + N(0, sd^2).

Claims on this experiment (claims/calibration.toml) are the assertion kinds' own controls: the truth
is set by the params, so a positive control must come out reproduced and a negative control
not_reproduced, at both scales, for every test kind the package offers. They cost milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from repro.registry import Experiment, SeedResult

__all__ = ["EXPERIMENT", "CalibrationParams", "run"]


class CalibrationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float = Field(0.0, allow_inf_nan=False, description="True mean of the per-seed value at x = 0.")
    sd: float = Field(1.0, ge=0.0, le=1e6, description="Standard deviation of the per-seed noise.")
    slope: float = Field(0.0, allow_inf_nan=False, description="True change of the value per unit of x.")
    sweep: list[float] = Field(
        default_factory=lambda: [0.0], min_length=1, max_length=1000, description="Values of x (the sweep axis)."
    )
    integer: bool = Field(False, description="Round values to integers (count-like data, ties included).")


def run(params: CalibrationParams, seeds: Sequence[int], device: object = "cpu") -> list[SeedResult]:
    results = []
    x = np.asarray(params.sweep, dtype=float)  # (K,)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        value = params.mean + params.slope * x + rng.normal(0.0, params.sd, size=x.shape)  # (K,)
        if params.integer:
            value = np.round(value)
        results.append(SeedResult(seed=seed, metrics={"value": value.tolist()}, sweep={"x": x.tolist()}))
    return results


EXPERIMENT = Experiment(
    name="calibration.normal",
    params=CalibrationParams,
    run=run,
    metrics=("value",),
    description="Per-seed normal draws with a known mean and slope: controls for the statistics.",
)

"""Known-answer data for the statistics: each seed draws value = mean + slope * x + noise.

The noise is N(0, sd^2), or sd * (Exp(1) - 1) (mean 0, right-skewed) with ``noise = "exponential"``.
Each arm of a comparison names its own ``stream``: arms run with the same replicate seed (paired, as
every experiment's arms are), and without distinct streams their noise would be identical, so a
difference would be exactly the mean gap and its test statistic rounding error.

Claims on this experiment (claims/calibration.toml) are the assertion kinds' own controls: the truth
is set by the params, so a positive control must come out reproduced and a negative control
not_reproduced, at both scales, for every test kind the package offers. They cost milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

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
    noise: Literal["normal", "exponential"] = Field("normal", description="Noise law: normal, or skewed sd*(Exp(1)-1).")
    stream: int = Field(0, ge=0, le=2**31, description="Independent noise stream for this arm (same seed, new draws).")


def run(params: CalibrationParams, seeds: Sequence[int], device: object = "cpu") -> list[SeedResult]:
    results = []
    x = np.asarray(params.sweep, dtype=float)  # (K,)
    for seed in seeds:
        rng = np.random.default_rng([seed, params.stream]) if params.stream else np.random.default_rng(seed)
        if params.noise == "normal":
            noise = rng.normal(0.0, params.sd, size=x.shape)  # (K,)
        else:
            noise = params.sd * (rng.exponential(1.0, size=x.shape) - 1.0)  # (K,) mean 0, skewness 2
        value = params.mean + params.slope * x + noise
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

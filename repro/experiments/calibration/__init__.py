"""Known-answer data for the statistics' controls: ``calibration.normal``."""

from dataclasses import replace

from repro.experiments import kinds
from repro.experiments.calibration import experiment as _experiment

#: The registered experiment (the entry point ``repro.experiments`` names): the run module's
#: declaration with its figures, metric kinds, devices and the tiny setting ``repro check-experiment`` uses.
EXPERIMENT = replace(
    _experiment.EXPERIMENT,
    metric_kinds=kinds.CALIBRATION,
    devices=("cpu",),
    check_params=dict(mean=1.0, sd=0.5, sweep=[0.0, 1.0]),
)

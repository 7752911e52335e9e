"""Toy models of superposition (Elhage et al. 2022, zroe1, seed 002): ``tms.train`` and its figures."""

from dataclasses import replace

from repro.experiments import kinds
from repro.experiments.tms import experiment as _experiment
from repro.experiments.tms import plots as _plots

#: The registered experiment (the entry point ``repro.experiments`` names): the run module's
#: declaration with its figures, metric kinds, devices and the tiny setting ``repro check-experiment`` uses.
EXPERIMENT = replace(
    _experiment.EXPERIMENT,
    figures=_plots.FIGURES,
    metric_kinds=kinds.TMS,
    devices=("cuda",),
    check_params=dict(n_features=6, n_hidden=3, feature_probability=[1.0, 0.3], steps=60, batch=64, lr=1e-2),
)

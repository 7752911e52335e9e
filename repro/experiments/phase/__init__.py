"""Phase diagrams of one-neuron toy models (Elhage et al. 2022, zroe1): ``phase.one_neuron`` and its figures."""

from dataclasses import replace

from repro.experiments import kinds
from repro.experiments.phase import experiment as _experiment
from repro.experiments.phase import plots as _plots

#: The registered experiment (the entry point ``repro.experiments`` names): the run module's
#: declaration with its figures, metric kinds, devices and the tiny setting ``repro check-experiment`` uses.
EXPERIMENT = replace(
    _experiment.EXPERIMENT,
    figures=_plots.FIGURES,
    metric_kinds=kinds.PHASE,
    devices=("cuda",),
    check_params=dict(n_r=3, n_density=4, steps=20),
)

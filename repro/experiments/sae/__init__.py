"""A sparse autoencoder on an MNIST classifier's hidden layer: ``sae.mnist``, its models and figures."""

from dataclasses import replace

from repro.experiments import kinds
from repro.experiments.sae import experiment as _experiment
from repro.experiments.sae import plots as _plots

#: The registered experiment (the entry point ``repro.experiments`` names): the run module's
#: declaration with its figures, metric kinds, devices and the tiny setting ``repro check-experiment`` uses.
EXPERIMENT = replace(
    _experiment.EXPERIMENT,
    figures=_plots.FIGURES,
    metric_kinds=kinds.SAE,
    devices=("cuda",),
    check_params=dict(dataset="sklearn_digits", epochs=1, sae_epochs=1, top_inputs=20, dictionaries=[{"latents": 16}]),
)

"""Polysemantic AlexNet units split into subnetworks: ``subnetworks.split``, its data, methods and figures."""

from dataclasses import replace

from repro.experiments import kinds
from repro.experiments.subnetworks import experiment as _experiment
from repro.experiments.subnetworks import plots as _plots

#: The registered experiment (the entry point ``repro.experiments`` names): the run module's
#: declaration with its figures, metric kinds, devices and the tiny setting ``repro check-experiment`` uses.
EXPERIMENT = replace(
    _experiment.EXPERIMENT,
    figures=_plots.FIGURES,
    metric_kinds=kinds.SUBNETWORKS,
    devices=("cuda",),
    check_params=dict(
        model="small_cnn",
        dataset="sklearn_digits",
        layer="features.6",
        units=[],
        top_k=120,
        min_cluster_size=10,
        epochs=2,
        lr_drops=[1],
        sweep_fractions=[0.2],
        cnn_channels=8,
        cnn_epochs=2,
        cnn_train_images=1000,
        force_iterations=2,
    ),
)

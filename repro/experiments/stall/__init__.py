"""STALL: uncertainty-sampling active learning and superposition: ``stall.active_learning`` and its figures."""

from dataclasses import replace

from repro.experiments import kinds
from repro.experiments.stall import experiment as _experiment
from repro.experiments.stall import plots as _plots

#: The registered experiment (the entry point ``repro.experiments`` names): the run module's
#: declaration with its figures, metric kinds, devices and the tiny setting ``repro check-experiment`` uses.
EXPERIMENT = replace(
    _experiment.EXPERIMENT,
    figures=_plots.FIGURES,
    metric_kinds=kinds.STALL,
    devices=("cuda",),
    check_params=dict(
        dataset="fashion_mnist",
        model="small_cnn",
        pretrained=False,
        initial_pool=60,
        query_size=60,
        loops=2,
        epochs=1,
        batch=32,
        metric_test_size=60,
        tsne_max_iter=250,
        train_size=600,
        strategy="least_confidence",
    ),
)

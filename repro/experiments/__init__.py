"""Every experiment family registers here, in one visible place, with its figure functions.

Figures live in modules of their own (``*_plots.py``) so that editing a figure never changes an
experiment's code version, which keys its cached results; for the same reason each metric's kind
(which picks its default test) lives in :mod:`repro.experiments.kinds`.
"""

from dataclasses import replace

from repro.experiments import (
    active_learning,
    active_learning_plots,
    calibration,
    kinds,
    phase,
    phase_plots,
    sae,
    sae_plots,
    subnetworks,
    subnetworks_plots,
    tms,
    tms_plots,
)
from repro.registry import register

register(replace(calibration.EXPERIMENT, metric_kinds=kinds.CALIBRATION))
register(replace(tms.EXPERIMENT, figures=tms_plots.FIGURES, metric_kinds=kinds.TMS))
register(replace(phase.EXPERIMENT, figures=phase_plots.FIGURES, metric_kinds=kinds.PHASE))
register(replace(sae.EXPERIMENT, figures=sae_plots.FIGURES, metric_kinds=kinds.SAE))
register(replace(active_learning.EXPERIMENT, figures=active_learning_plots.FIGURES, metric_kinds=kinds.STALL))
register(replace(subnetworks.EXPERIMENT, figures=subnetworks_plots.FIGURES, metric_kinds=kinds.SUBNETWORKS))

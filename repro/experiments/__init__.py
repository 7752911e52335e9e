"""Every experiment family registers here, in one visible place, with its figure functions.

Figures live in modules of their own (``*_plots.py``) so that editing a figure never changes an
experiment's code version, which keys its cached results.
"""

from dataclasses import replace

from repro.experiments import (
    active_learning,
    active_learning_plots,
    calibration,
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

register(calibration.EXPERIMENT)
register(replace(tms.EXPERIMENT, figures=tms_plots.FIGURES))
register(replace(phase.EXPERIMENT, figures=phase_plots.FIGURES))
register(replace(sae.EXPERIMENT, figures=sae_plots.FIGURES))
register(replace(active_learning.EXPERIMENT, figures=active_learning_plots.FIGURES))
register(replace(subnetworks.EXPERIMENT, figures=subnetworks_plots.FIGURES))

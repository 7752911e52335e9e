"""Every experiment family registers here, in one visible place, with its figure functions.

One package per family (``tms/``, ``phase/``, ``sae/``, ``stall/``, ``subnetworks/``,
``calibration/``), each with its experiment (``experiment.py``), its models, data or methods, and its
figures (``plots.py``). The toy-model trainer that tms and phase share is :mod:`repro.experiments.toy`
(its samplers :mod:`repro.experiments.toy_data` and :mod:`repro.experiments.toy_sparse`). Figures
live in modules of their own so that editing a figure never changes an experiment's code version,
which keys its cached results; for the same reason each metric's kind (which picks its default test) lives in
:mod:`repro.experiments.kinds`.
"""

from dataclasses import replace

# Aliases never reuse a family's name: "as tms" would rebind repro.experiments.tms (the package) to
# its experiment module, and "import repro.experiments.tms.plots" would then fail.
from repro.experiments import kinds
from repro.experiments.calibration import experiment as calibration_experiment
from repro.experiments.phase import experiment as phase_experiment
from repro.experiments.phase import plots as phase_plots
from repro.experiments.sae import experiment as sae_experiment
from repro.experiments.sae import plots as sae_plots
from repro.experiments.stall import experiment as stall_experiment
from repro.experiments.stall import plots as stall_plots
from repro.experiments.subnetworks import experiment as subnetworks_experiment
from repro.experiments.subnetworks import plots as subnetworks_plots
from repro.experiments.tms import experiment as tms_experiment
from repro.experiments.tms import plots as tms_plots
from repro.registry import register

register(replace(calibration_experiment.EXPERIMENT, metric_kinds=kinds.CALIBRATION))
register(replace(tms_experiment.EXPERIMENT, figures=tms_plots.FIGURES, metric_kinds=kinds.TMS))
register(replace(phase_experiment.EXPERIMENT, figures=phase_plots.FIGURES, metric_kinds=kinds.PHASE))
register(replace(sae_experiment.EXPERIMENT, figures=sae_plots.FIGURES, metric_kinds=kinds.SAE))
register(replace(stall_experiment.EXPERIMENT, figures=stall_plots.FIGURES, metric_kinds=kinds.STALL))
register(replace(subnetworks_experiment.EXPERIMENT, figures=subnetworks_plots.FIGURES, metric_kinds=kinds.SUBNETWORKS))

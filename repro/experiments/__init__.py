"""This package's experiment families, each registered through the ``repro.experiments`` entry point.

One package per family (``tms/``, ``phase/``, ``sae/``, ``stall/``, ``subnetworks/``,
``calibration/``), each with its experiment (``experiment.py``), its models, data or methods, and its
figures (``plots.py``); the family package's ``EXPERIMENT`` (its ``__init__``) is what
``pyproject.toml``'s entry point names: the run module's declaration with its figures, metric kinds,
devices and the tiny setting ``repro check-experiment`` runs. Importing this package imports no
family: :mod:`repro.registry` imports a family when one of its claims first asks for it.

The toy-model trainer that tms and phase share is :mod:`repro.experiments.toy` (its samplers
:mod:`repro.experiments.toy_data` and :mod:`repro.experiments.toy_sparse`). Figures live in modules
of their own so that editing a figure never changes an experiment's code version, which keys its
cached results; for the same reason each metric's kind (which picks its default test) lives in
:mod:`repro.experiments.kinds`.
"""

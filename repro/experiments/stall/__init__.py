"""STALL: uncertainty-sampling active learning and superposition: ``stall.active_learning`` and its figures."""

"""Toy models of superposition (Elhage et al. 2022, zroe1, seed 002): ``tms.train`` and its figures."""

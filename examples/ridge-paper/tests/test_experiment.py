"""The example's own tests: its experiment keeps repro's contract, and repro finds it by its entry point."""

from repro import registry
from repro.check_experiment import check_experiment


def test_the_entry_point_registers_the_experiment():
    assert "ridge.shrinkage" in registry.names()
    origin = registry.origin("ridge.shrinkage")
    assert origin is not None and origin.distribution == "ridge-paper"


def test_the_experiment_keeps_the_contract():
    failed = {c.name: c.detail for c in check_experiment("ridge.shrinkage") if not c.passed}
    assert not failed, failed

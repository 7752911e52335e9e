from __future__ import annotations

import repro
from repro import registry


def test_public_names_are_exported():
    assert sorted(repro.__all__) == sorted(set(repro.__all__))
    for name in repro.__all__:
        assert hasattr(repro, name), name


def test_every_experiment_is_registered_once_with_metrics():
    names = registry.names()
    assert {"calibration.normal", "tms.train"} <= set(names)
    for name in names:
        experiment = registry.get(name)
        assert experiment.metrics, name
        assert len(experiment.code_version) == 16


def test_registering_a_name_twice_is_refused():
    import pytest

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.get("tms.train"))

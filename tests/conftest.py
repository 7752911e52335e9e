from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Every test gets its own store, so no test sees another's results."""
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "store"))


pytest_plugins = ["pytester"]

from __future__ import annotations

import os

import pytest

# pytest-xdist's workers start with COLUMNS=80, a single pytest process with none (the CLI then prints
# 200 wide): the CLI's tables would wrap on a worker and not in one process. Every test process gets
# the same width, set before any test module imports the CLI's console.
os.environ["COLUMNS"] = "200"


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Every test gets its own store, so no test sees another's results."""
    monkeypatch.setenv("REPRO_HOME", str(tmp_path / "store"))


pytest_plugins = ["pytester"]

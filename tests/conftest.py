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


#: Modules whose module-scoped fixtures are costly or hold a shared resource (a SLURM cluster, a store
#: filled by running claims): under ``pytest -n N --dist loadgroup`` each runs on one worker, so the
#: fixture is built once and two clusters never start side by side.
_ONE_WORKER = {"test_slurm_cluster", "test_report", "test_report_browser", "test_sae", "test_active_learning"}


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        module = getattr(item, "module", None)
        name = module.__name__.rsplit(".", 1)[-1] if module is not None else ""
        if name in _ONE_WORKER:
            item.add_marker(pytest.mark.xdist_group(name))

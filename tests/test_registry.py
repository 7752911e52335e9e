"""Where experiments come from: entry points (lazily), a project's [tool.repro] modules, REPRO_EXPERIMENTS
and --experiments; clashes name both origins; a reload is harmless. Each case runs in a fresh process,
as a user's would, from a project folder outside the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

MODULE = """
import numpy as np
from pydantic import BaseModel, ConfigDict
from repro import Experiment, SeedResult

class P(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mean: float = 0.0

def run(params, seeds, device):
    out = []
    for s in seeds:
        out.append(SeedResult(seed=s, metrics={"value": float(params.mean + np.random.default_rng(s).normal())}))
    return out

EXPERIMENT = Experiment(name=NAME, params=P, run=run, metrics=("value",), metric_kinds={"value": "continuous"},
                        devices=("cpu",))
"""

CLAIMS = """
[source.mine]
title = "My paper"
authors = "Me"
year = 2026
url = "https://example.org"

[[claim]]
id = "mine.positive"
source = "mine"
statement = "Values drawn with mean 1 have a mean above 0"
evidence = "By construction."
experiment = "EXPERIMENT_NAME"
metric = "value"
seeds = 12
assertion = { test = "greater", threshold = 0.0, alpha = 0.01 }
params = { mean = 1.0 }
[claim.scales.ci]
seeds = 12
"""


def _project(root: Path, name: str, *, table: str | None) -> Path:
    (root / "src" / "mypaper").mkdir(parents=True)
    (root / "src" / "mypaper" / "__init__.py").write_text("")
    (root / "src" / "mypaper" / "experiment.py").write_text(f"NAME = {name!r}\n" + MODULE)
    (root / "paper-claims").mkdir()
    (root / "paper-claims" / "mine.toml").write_text(CLAIMS.replace("EXPERIMENT_NAME", name))
    if table is not None:
        (root / "pyproject.toml").write_text(textwrap.dedent(table))
    return root


def _repro(root: Path, *args: str, env: dict[str, str] | None = None, code: str | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "REPRO_EXPERIMENTS"))}
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "repro", *args]
    done = subprocess.run(command, cwd=root, env={**clean, "COLUMNS": "200", "REPRO_HOME": str(root / "store"),
                          **(env or {})}, capture_output=True, text=True, timeout=300)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_project_table_registers_a_module_that_is_not_installed(tmp_path):
    root = _project(
        tmp_path,
        "mypaper.normal",
        table="""
        [tool.repro]
        claims = "paper-claims"
        store = "my-store"
        experiments = ["mypaper.experiment:EXPERIMENT"]
        python-path = ["src"]
    """,
    )
    code, out = _repro(root, "run", "--scale", "ci", env={"REPRO_HOME": ""})
    assert code == 0, out
    assert "1 of 1 claims as expected" in out
    records = sorted((root / "my-store").glob("results/mypaper.normal/*/*.json"))
    assert len(records) == 12  # the table's store, not the working folder's .repro
    record = records[0]
    origin = json.loads(record.read_text())["provenance"]["experiment_origin"]
    assert origin["how"].startswith("[tool.repro] in") and origin["target"] == "mypaper.experiment:EXPERIMENT"
    code, out = _repro(root, "check-experiment", "mypaper.normal")
    assert code == 0 and "8 of 8 checks passed" in out, out


def test_the_experiments_option_and_variable_register_a_module(tmp_path):
    root = _project(tmp_path, "mypaper.normal", table=None)
    env = {"PYTHONPATH": str(root / "src")}
    code, out = _repro(root, "list", "--claims", "paper-claims", env=env)
    assert code == 2 and "unknown experiment 'mypaper.normal'" in out and "--experiments" in out
    code, out = _repro(root, "--experiments", "mypaper.experiment", "run", "--claims", "paper-claims", env=env)
    assert code == 0 and "1 of 1 claims as expected" in out, out
    code, out = _repro(root, "list", "--claims", "paper-claims",
                       env={**env, "REPRO_EXPERIMENTS": "mypaper.experiment:EXPERIMENT"})  # fmt: skip
    assert code == 0, out


def test_a_taken_name_is_refused_naming_both_origins(tmp_path):
    root = _project(tmp_path, "tms.train", table=None)
    code, out = _repro(root, "--experiments", "mypaper.experiment", "schema", env={"PYTHONPATH": str(root / "src")})
    assert code == 2, out
    assert "experiment 'tms.train' is registered twice" in out
    assert "repro-claims" in out and "mypaper.experiment" in out


def test_entry_points_load_lazily_and_a_reload_is_harmless(tmp_path):
    root = _project(tmp_path, "mypaper.normal", table=None)
    code, out = _repro(
        root,
        env={"PYTHONPATH": str(root / "src")},
        code=textwrap.dedent("""
        import importlib, sys
        from repro import registry
        names = registry.names()
        assert "tms.train" in names and "repro.experiments.tms" not in sys.modules, "listing imported a family"
        registry.get("calibration.normal")
        assert "repro.experiments.tms" not in sys.modules, "one family's import pulled in another"
        import mypaper.experiment as module
        registry.register(module.EXPERIMENT)
        registry.register(module.EXPERIMENT)  # the same object: harmless
        module = importlib.reload(module)  # a notebook re-running its cell: new objects, same definitions
        registry.register(module.EXPERIMENT)
        assert registry.get("mypaper.normal") is module.EXPERIMENT
        print("ok")
    """),
    )
    assert code == 0 and out.strip().endswith("ok"), out

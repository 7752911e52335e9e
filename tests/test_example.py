"""examples/ridge-paper: a paper's own experiment, in its own installed distribution, checked by repro
with no edit to this package (its entry point registers it; its [tool.repro] table says where its
claims and store live). scripts/install.sh installs it; these tests run what its README says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ridge-paper"


def _env(store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "REPRO_EXPERIMENTS"))}
    return {**env, "REPRO_HOME": str(store), "COLUMNS": "200"}


def _run(*args: str, store: Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, *args], cwd=EXAMPLE, env=_env(store), capture_output=True, text=True, timeout=timeout_s
    )
    done.stdout += done.stderr
    return done


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    names = {e.name: e.dist.name if e.dist else None for e in metadata.entry_points(group="repro.experiments")}
    assert names.get("ridge.shrinkage") == "ridge-paper", (
        "the example distribution is not installed: scripts/install.sh installs it "
        "(pip install -e examples/ridge-paper)"
    )


def test_repro_run_and_report_from_the_example_folder(tmp_path):
    store = tmp_path / "store"
    run = _run("-m", "repro", "run", "--scale", "ci", store=store)
    assert run.returncode == 0, run.stdout
    assert "3 of 3 claims as expected" in run.stdout
    out = tmp_path / "report"
    report = _run("-m", "repro", "report", "--scale", "ci", "-o", str(out), store=store)
    assert report.returncode == 0, report.stdout
    verdicts = json.loads((out / "verdicts.json").read_text())
    rows = {row["id"]: row for row in verdicts["claims"]} if "claims" in verdicts else verdicts
    assert set(rows) >= {"ridge.beats-ols-few-samples", "ridge.beats-ols-many-samples", "ridge.huge-penalty.control"}
    record = json.loads(next(store.glob("results/ridge.shrinkage/*/*.json")).read_text())
    origin = record["provenance"]["experiment_origin"]
    assert origin["distribution"] == "ridge-paper" and origin["target"] == "ridge_paper.experiment:EXPERIMENT"
    assert record["provenance"]["claims"]["file"] == "claims/ridge.toml"
    html = (out / "index.html").read_text()
    assert "ridge-paper 0.1.0 (ridge_paper.experiment:EXPERIMENT)" in html


def test_the_local_pool_and_the_latex_export_from_the_example_folder(tmp_path):
    store = tmp_path / "store"
    pool = _run("-m", "repro", "run", "--scale", "ci", "--executor", "local", "--workers", "2", store=store)
    assert pool.returncode == 0, pool.stdout
    assert "3 of 3 claims as expected" in pool.stdout
    export = _run("-m", "repro", "export", "--format", "latex", store=store)
    assert export.returncode == 0, export.stdout
    assert "store with the claims in claims." in export.stdout  # [tool.repro] claims, relative to the folder
    assert "\\csname repro@ridge.beats-ols-few-samples@verdict\\endcsname{reproduced}" in export.stdout


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_pytest_in_the_example_folder(tmp_path, workers):
    done = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", *workers, store=tmp_path / "store")
    assert done.returncode == 0, done.stdout
    assert "8 passed" in done.stdout  # its 2 tests and 3 claims at both scales: [full] runs on the CPU


def test_the_full_scale_items_of_a_cpu_experiment_run_without_cuda(tmp_path):
    done = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rs", "claims", store=tmp_path / "s")
    assert done.returncode == 0, done.stdout
    assert "3 passed" in done.stdout and "skipped" not in done.stdout


def test_check_experiment_passes_the_example():
    done = subprocess.run(
        [sys.executable, "-m", "repro", "check-experiment", "ridge.shrinkage"],
        cwd=EXAMPLE, capture_output=True, text=True, timeout=300, env=_env(Path("unused")),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 of 8 checks passed" in done.stdout


def test_an_at_that_is_not_a_point_of_the_user_s_sweep_exits_2_at_load(tmp_path):
    claims = (EXAMPLE / "claims" / "ridge.toml").read_text().replace("at = 1.0\n", "at = 2.0\n", 1)
    (tmp_path / "ridge.toml").write_text(claims)
    (tmp_path / "sources.toml").write_text((EXAMPLE / "claims" / "sources.toml").read_text())
    done = _run("-m", "repro", "list", "--claims", str(tmp_path), store=tmp_path / "store")
    assert done.returncode == 2, done.stdout
    assert "claim 'ridge.beats-ols-few-samples': field 'at': 2 is not a point of the sweep axis 'alpha'" in done.stdout


def test_the_rehearsal_skips_a_user_experiment_with_its_reason(tmp_path):
    done = _run("-m", "repro", "run", "--scale", "full", "--rehearse", store=tmp_path / "store")
    assert done.returncode == 0, done.stdout
    assert "ridge.beats-ols-few-samples: the rehearsal covers this package's families" in done.stdout

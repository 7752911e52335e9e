from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import repro
from repro import registry

REPO = Path(__file__).resolve().parents[1]


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


def test_registering_a_name_twice_is_refused_unless_it_is_the_same_experiment():
    import dataclasses

    import pytest

    tms = registry.get("tms.train")
    assert registry.register(tms) is tms  # the same object again: harmless
    with pytest.raises(ValueError, match="registered twice: by repro-claims"):
        registry.register(dataclasses.replace(tms, run=registry.get("calibration.normal").run))


def test_the_built_in_entry_points_are_the_registry_s_fallback_table():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["repro.experiments"]
    assert declared == registry.BUILTIN


def _lint_imports(config: Path) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(executable), "--config", str(config), "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_the_import_layers_hold():
    """pyproject's import-linter contracts: the report never computes, experiments never import the
    report / runner / judge / store / statistics, the statistics import no torch, a claim nothing."""
    done = _lint_imports(REPO / "pyproject.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_import_linter_catches_a_broken_layer(tmp_path):
    """Negative control: a contract the code breaks (the CLI imports the runner) is reported broken."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "repro"\n\n[[tool.importlinter.contracts]]\nname = "broken on purpose"\n'
        'type = "forbidden"\nsource_modules = ["repro.cli"]\nforbidden_modules = ["repro.runner"]\n'
    )
    done = _lint_imports(config)
    assert done.returncode != 0 and "BROKEN" in done.stdout


def _mypy(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    # The pydantic plugin and every dependency come from this interpreter's environment.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_package_type_checks():
    """mypy on repro/ at pyproject's [tool.mypy] settings (default strictness, pydantic's plugin)."""
    done = _mypy("--config-file", str(REPO / "pyproject.toml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout


def test_mypy_catches_a_type_error(tmp_path):
    """Negative control: the same configuration reports a module that passes a str where an int goes."""
    module = tmp_path / "broken.py"
    module.write_text("def double(n: int) -> int:\n    return 2 * n\n\n\ndouble('two')\n")
    done = _mypy("--config-file", str(REPO / "pyproject.toml"), str(module), cwd=tmp_path)
    assert done.returncode == 1 and 'incompatible type "str"' in done.stdout, done.stdout + done.stderr


def test_ruff_finds_nothing():
    """pyproject's ruff rules and format over the package, its tests and benchmarks."""
    ruff = Path(sys.executable).with_name("ruff")
    paths = ["repro", "tests", "benchmarks"]
    for command in ([str(ruff), "check", *paths], [str(ruff), "format", "--check", *paths]):
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

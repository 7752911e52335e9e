"""A user's project: the ``[tool.repro]`` table of the nearest ``pyproject.toml`` above the working folder.

A paper's repository that is not installed as a distribution says here where its claims and store
live and which of its modules hold experiments::

    [tool.repro]
    claims = "claims"                            # default for --claims (a file or folder)
    store = ".repro"                             # default store (REPRO_HOME still wins)
    experiments = ["mypaper.experiment:EXPERIMENT"]  # module:attribute, or a module that registers
    python-path = ["src"]                        # folders put on sys.path first (default: the project's own)

Paths are relative to the folder holding the ``pyproject.toml``. Every process that computes (the
CLI, the local pool, pytest-xdist workers, SLURM jobs) starts in the same working folder and reads
the same table. The environment variable ``REPRO_EXPERIMENTS`` (and the CLI's ``--experiments``,
which sets it for the processes it starts) adds module specs in the same form, comma-separated.
An installed distribution registers its experiments with an entry point instead
(``[project.entry-points."repro.experiments"]``, :mod:`repro.registry`).
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from repro.errors import ClaimFileError

__all__ = ["ENV_EXPERIMENTS", "Project", "current", "env_specs"]

#: Module specs (``module`` or ``module:attribute``), comma-separated, added to the project's.
ENV_EXPERIMENTS = "REPRO_EXPERIMENTS"
_KEYS = {"claims", "store", "experiments", "python-path"}


@dataclass(frozen=True)
class Project:
    """The ``[tool.repro]`` table of one ``pyproject.toml`` (or nothing, where none is found)."""

    root: Path | None = None
    claims: Path | None = None
    store: Path | None = None
    experiments: tuple[str, ...] = ()
    python_path: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def pyproject(self) -> Path | None:
        return None if self.root is None else self.root / "pyproject.toml"


def _strings(value: object, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ClaimFileError([f"{where}: [tool.repro] field '{key}': a list of non-empty strings, not {value!r}"])
    return tuple(v.strip() for v in value)


def read(pyproject: Path) -> Project | None:
    """The ``[tool.repro]`` table of this file, validated; None when the file has none."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ClaimFileError([f"{pyproject}: cannot read it for [tool.repro]: {exc}"]) from None
    table = data.get("tool", {}).get("repro")
    if table is None:
        return None
    where = str(pyproject)
    if not isinstance(table, dict):
        raise ClaimFileError([f"{where}: [tool.repro] must be a table"])
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ClaimFileError([f"{where}: [tool.repro] has unknown field(s) {unknown}; known: {sorted(_KEYS)}"])
    root = pyproject.parent.resolve()
    paths = {}
    for key in ("claims", "store"):
        if key in table:
            if not isinstance(table[key], str) or not table[key].strip():
                raise ClaimFileError([f"{where}: [tool.repro] field '{key}': a path, not {table[key]!r}"])
            paths[key] = root / table[key]
    python_path = _strings(table.get("python-path", ["."]), where, "python-path")
    return Project(
        root=root,
        claims=paths.get("claims"),
        store=paths.get("store"),
        experiments=_strings(table.get("experiments", []), where, "experiments"),
        python_path=tuple(root / p for p in python_path),
    )


@functools.lru_cache(maxsize=8)
def _find(start: Path) -> Project:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            found = read(candidate)
            if found is not None:
                return found
    return Project()


def current() -> Project:
    """The project of the working folder: the nearest ``pyproject.toml`` above it with a ``[tool.repro]``."""
    return _find(Path.cwd().resolve())


def env_specs() -> tuple[str, ...]:
    """Module specs from ``REPRO_EXPERIMENTS`` (comma-separated), in order."""
    raw = os.environ.get(ENV_EXPERIMENTS, "")
    return tuple(spec.strip() for spec in raw.split(",") if spec.strip())

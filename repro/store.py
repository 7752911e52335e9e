"""Content-addressed per-seed results: the only place runs, reports and pytest items meet.

Layout under the store root (``.repro/`` in the current directory, or ``$REPRO_HOME``)::

    results/<experiment>/<key[:2]>/<key>.json   metrics, sweep, params, seed, provenance
    results/<experiment>/<key[:2]>/<key>.npz    arrays for figures (numpy, never pickle)
    figures/<key[:2]>/<key>.svg                 the report's drawn figures (repro.report.cache)

The key hashes (experiment, code version, resolved params, seed), so a finished seed is never
recomputed and two claims with the same setting share results. Writes are atomic: each file goes
to a temporary name in the same folder and is moved into place with ``os.replace``; the .npz goes
first and the .json last, so a result exists exactly when its .json does. A run killed at any
instant leaves either a whole result or none (plus, at worst, a stray temporary file that no
reader looks at and the next store open clears).

Several runners may share one store (processes of a pool, SLURM jobs, pytest-xdist workers, two
people's ``repro run``). Before computing a result a runner takes its lock,
``locks/<experiment>/<key[:2]>/<key>.lock`` (an OS file lock via ``filelock``: the kernel drops it
when its holder dies, so a crashed runner never blocks the next), and checks the store again under
it: a result is computed once, by whoever locked it first, and the others wait and read it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from filelock import FileLock, Timeout

from repro import project
from repro.errors import StoreError

__all__ = ["Observed", "Store", "StoredResult", "result_key"]

_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600.0
FORMAT_VERSION = 1


def result_key(experiment: str, code_version: str, params: Mapping[str, Any], seed: int) -> str:
    """sha256 of the canonical JSON of everything that determines a seed's result."""
    payload = {
        "format": FORMAT_VERSION,
        "experiment": experiment,
        "code_version": code_version,
        "params": params,
        "seed": int(seed),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _to_json(value: Any) -> Any:
    """Non-finite floats become null (strict JSON); they read back as NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.generic):
        return _to_json(value.item())
    return value


def _from_json_metric(value: Any) -> float | list[float]:
    if isinstance(value, list):
        return [math.nan if v is None else float(v) for v in value]
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class StoredResult:
    """One seed's result as read back from the store."""

    key: str
    experiment: str
    params: dict[str, Any]
    seed: int
    metrics: dict[str, float | list[float]]
    sweep: dict[str, list[float]]
    provenance: dict[str, Any]
    runtime_s: float
    path: Path

    def arrays(self) -> dict[str, np.ndarray]:
        npz = self.path.with_suffix(".npz")
        if not npz.exists():
            return {}
        with np.load(npz, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}


class Observed(Protocol):
    """What judging reads of a result (:func:`repro.judge.observations`): a StoredResult, or a stand-in."""

    @property
    def metrics(self) -> Mapping[str, float | list[float]]: ...

    @property
    def sweep(self) -> Mapping[str, list[float]]: ...


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @classmethod
    def default(cls) -> Store:
        """$REPRO_HOME, else the project's ``[tool.repro] store``, else ``.repro`` in the working folder."""
        configured = project.current().store
        return cls(os.environ.get("REPRO_HOME") or configured or Path.cwd() / ".repro")

    # -- paths -------------------------------------------------------------------------------------
    def _path(self, experiment: str, key: str) -> Path:
        return self.root / "results" / experiment / key[:2] / f"{key}.json"

    def has(self, experiment: str, key: str) -> bool:
        return self._path(experiment, key).is_file()

    def _lock_path(self, experiment: str, key: str) -> Path:
        return self.root / "locks" / experiment / key[:2] / f"{key}.lock"

    # -- locking -----------------------------------------------------------------------------------
    @contextmanager
    def locked(self, experiment: str, keys: Iterable[str], *, wait: bool) -> Iterator[set[str]]:
        """Hold the locks of ``keys`` for the block; yields the keys whose lock this runner holds.

        ``wait=False`` takes only the locks that are free now (another runner is computing the rest);
        ``wait=True`` waits for every one. Locks are taken in sorted key order, so runners that wait
        on overlapping sets cannot deadlock. The lock files stay behind (empty): deleting a lock file
        that another process has open would let two runners hold "the" lock at once.
        """
        held: set[str] = set()
        with ExitStack() as stack:
            for key in sorted(set(keys)):
                path = self._lock_path(experiment, key)
                path.parent.mkdir(parents=True, exist_ok=True)
                lock = FileLock(path)
                try:
                    lock.acquire(timeout=-1 if wait else 0)
                except Timeout:
                    continue
                stack.callback(lock.release)
                held.add(key)
            yield held

    # -- reading -----------------------------------------------------------------------------------
    def load(self, experiment: str, key: str) -> StoredResult | None:
        path = self._path(experiment, key)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path}: unreadable result ({exc}); delete it and run again") from exc
        return StoredResult(
            key=key,
            experiment=record["experiment"],
            params=record["params"],
            seed=int(record["seed"]),
            metrics={k: _from_json_metric(v) for k, v in record["metrics"].items()},
            sweep={k: [float(x) for x in v] for k, v in record.get("sweep", {}).items()},
            provenance=record.get("provenance", {}),
            runtime_s=float(record.get("runtime_s", 0.0)),
            path=path,
        )

    def __iter__(self) -> Iterator[Path]:
        yield from sorted(p for p in (self.root / "results").glob("*/*/*.json") if not p.name.startswith(_TMP_PREFIX))

    # -- writing -----------------------------------------------------------------------------------
    def write_atomic(self, target: Path, data: bytes) -> None:
        """Write ``data`` to ``target`` (a path under the root) all at once or not at all."""
        self._atomic_write(target, lambda handle: handle.write(data))

    def _atomic_write(self, target: Path, write) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name ends in .partial, so no reader's *.json / *.npz pattern ever sees it.
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".partial", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def save(
        self,
        experiment: str,
        key: str,
        *,
        params: Mapping[str, Any],
        seed: int,
        metrics: Mapping[str, float | list[float]],
        sweep: Mapping[str, list[float]],
        arrays: Mapping[str, np.ndarray],
        provenance: Mapping[str, Any],
        runtime_s: float,
    ) -> None:
        path = self._path(experiment, key)
        if arrays:
            arrays_np = {name: np.asarray(a) for name, a in arrays.items()}
            # numpy's stub lets **kwds bind allow_pickle too; no stored array is named so.
            self._atomic_write(path.with_suffix(".npz"), lambda h: np.savez_compressed(h, **arrays_np))  # type: ignore[arg-type]
        record = {
            "format": FORMAT_VERSION,
            "key": key,
            "experiment": experiment,
            "params": dict(params),
            "seed": int(seed),
            "metrics": _to_json(dict(metrics)),
            "sweep": _to_json(dict(sweep)),
            "provenance": _to_json(dict(provenance)),
            "runtime_s": float(runtime_s),
        }
        text = json.dumps(record, sort_keys=True, indent=1, allow_nan=False)
        self._atomic_write(path, lambda h: h.write(text.encode()))

    def clear_stale_temporaries(self, older_than_s: float = _STALE_TMP_SECONDS) -> int:
        """Remove temporary files left by a killed writer (old enough that no live writer owns them)."""
        cutoff = time.time() - older_than_s
        removed = 0
        temporaries = [
            *(self.root / "results").glob(f"*/*/{_TMP_PREFIX}*"),
            *(self.root / "figures").glob(f"*/{_TMP_PREFIX}*"),
        ]
        for tmp in temporaries:
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except OSError:  # gone already, or not ours to remove (a read-only store)
                pass
        return removed

"""Drawn figures, kept in the store: each figure is drawn once per distinct input, whatever the report.

Layout under the store root (beside ``results/``)::

    figures/<key[:2]>/<key>.svg    the figure as compact SVG (repro.report.encode)
    figures/<key[:2]>/<key>.none   the function had nothing to draw for that input

The key hashes everything a figure is drawn from (:func:`figure_inputs`): the function's name and
code (the source of its module, of every ``repro`` module it takes names from, and of the report's
figure modules; see :func:`code_digest`), the versions of the libraries that draw and encode it,
the stored results it reads (each seed's result key and the date it was computed, per arm), and
the claim: the fields the function declares with :func:`draws_from`, or, when it declares none,
the whole declaration, the verdict and the scale. A change to any of them is a new key, so an entry
is never stale; entries of old keys are merely unused (delete ``figures/`` to reclaim the space).

Writes go through :meth:`repro.store.Store.write_atomic` (a temporary file moved into place), so a
report killed while writing leaves no partial figure; a failed figure is not kept (it is retried
by the next report). Functions that cannot be keyed by their source (lambdas, functions defined
inside functions, closures) are drawn every time. A process reads each module's source once: a
module reloaded in a running process (a notebook) needs ``_module_digest.cache_clear()``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro.plotting import draws_from, results_only  # re-exported: the marks the cache keys on
from repro.store import Store

__all__ = ["FigureCache", "code_digest", "draws_from", "figure_inputs", "results_only"]

log = logging.getLogger(__name__)

FORMAT = 1
#: Modules whose code shapes every figure: the drawing and encoding of the report itself.
REPORT_MODULES = ("repro.report.figures", "repro.report.encode", "repro.report.cache")
LIBRARIES = ("matplotlib", "numpy", "pillow")


def _json(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def figure_inputs(function: Callable[..., Any], claim: Any, run: Any) -> dict[str, Any]:
    """What the figure is drawn from, as JSON-ready data: the results it reads and the claim's part."""
    results = [[arm, [[r.key, r.provenance.get("date")] for r in rs]] for arm, rs in sorted(run.results.items())]
    reads = getattr(function, "figure_reads", None)
    if reads is None:
        about = {"claim": _json(claim), "verdict": _json(run.verdict), "scale": run.scale}
    else:
        about = {
            "claim": {name: _json(getattr(claim, name)) for name in reads["claim"]},
            "verdict": {name: _json(getattr(run.verdict, name)) for name in reads["verdict"]},
        }
    return {"results": results, **about}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _origins(module: Any) -> set[str]:
    """The ``repro`` modules a module takes names from (its imports), itself included."""
    names = {module.__name__}
    for value in vars(module).values():
        origin = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(origin, str) and origin.split(".")[0] == "repro":
            names.add(origin)
    return names


@functools.cache
def _module_digest(name: str) -> str:
    digest = hashlib.sha256()
    for each in sorted(_origins(importlib.import_module(name)) | set(REPORT_MODULES)):
        digest.update(each.encode() + b"\0" + inspect.getsource(sys.modules[each]).encode() + b"\0")
    return digest.hexdigest()


@functools.cache
def _libraries() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in LIBRARIES}


def code_digest(function: Callable[..., Any]) -> str | None:
    """Hash of the code that draws ``function``'s figure; None when its source cannot say (see the module doc)."""
    if not inspect.isfunction(function) or function.__closure__ or "<" in function.__qualname__:
        return None
    try:
        return _module_digest(function.__module__)
    except (OSError, TypeError, ImportError, KeyError):  # no source on disk (an interactive session)
        return None


class FigureCache:
    """The store's drawn figures (see the module doc); ``MISSING`` from :meth:`get` means draw it."""

    MISSING = object()

    def __init__(self, store: Store):
        self.store = store
        self.root = store.root / "figures"

    def key(self, function: Callable[..., Any], inputs: dict[str, Any]) -> str | None:
        code = code_digest(function)
        if code is None:
            return None
        payload = {
            "format": FORMAT,
            "function": f"{function.__module__}.{function.__qualname__}",
            "code": code,
            "libraries": _libraries(),
            "inputs": inputs,
        }
        return hashlib.sha256(canonical(payload).encode()).hexdigest()

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def get(self, key: str) -> str | None | object:
        """The cached SVG text, None (nothing to draw), or ``MISSING``."""
        try:
            return self._path(key, ".svg").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass
        return None if self._path(key, ".none").is_file() else self.MISSING

    def put(self, key: str, svg: str | None) -> None:
        """Keep a drawn figure (None: nothing to draw); a store that cannot take it costs only a redraw later."""
        path = self._path(key, ".none" if svg is None else ".svg")
        try:
            self.store.write_atomic(path, b"" if svg is None else svg.encode("utf-8"))
        except OSError as exc:  # read-only or full: the page is still written
            log.warning("could not keep figure %s in the store: %s", path, exc)

"""Portable CPU numerics: the same result bits on every x86-64 CPU, whatever its ISA and core count.

Two things make a CPU result depend on the machine that computed it:

1. **Kernels picked by instruction set at run time.** ATen's vectorised kernels (AVX2 or AVX-512), MKL's
   GEMM paths, oneDNN's convolutions, numpy's SIMD loops and OpenBLAS's kernels each choose by the CPU;
   an AVX-512 kernel sums in another order than an AVX2 one, so the last bits differ, and over thousands
   of optimizer steps a seed's weights, and sometimes its verdict, move (benchmarks/README.md,
   "Portable numerics").
2. **Intra-op threads.** A reduction split over T threads adds T partial sums; 1 and 2 threads differ.

:func:`pin` (run when ``repro`` is imported, so before torch or numpy load in every process the package
starts: the CLI, the local pool, pytest and its xdist workers, SLURM jobs) sets every library's dispatch
to one level, :data:`LEVEL` (x86-64-v3: AVX2 and FMA, in every Intel CPU since Haswell, 2013, but for
some low-end Pentium, Celeron and Atom parts, and every AMD CPU since Excavator, 2015). :func:`computing`
runs an experiment call on the CPU with one intra-op thread in torch and in every BLAS and OpenMP pool;
experiments parallelise across seeds on their own Python threads (:func:`parallel_width`), and how they
share the seeds among threads never changes what a seed computes.

**Across vendors.** MKL honours a named CNR branch (``MKL_CBWR=AVX2``) on Intel CPUs only; on any other
CPU it silently runs its AUTO branch (oneMKL developer guide; an AMD EPYC reads back branch AUTO under
``AVX2,STRICT``), so an Intel and an AMD machine ran different GEMM paths under the same pins. The pin is
the COMPATIBLE branch, the one MKL runs alike on every x86-64 vendor, and :func:`check` reads the branch
back from MKL (:func:`mkl_branch`) and refuses to compute in another. Its cost is small: these models' GEMMs
are small (benchmarks/README.md, "Portable numerics").

**What is not pinned: oneDNN's convolutions.** ``ONEDNN_MAX_CPU_ISA`` caps oneDNN's instruction set, but
some of its kernels size their blocking from the cache sizes the CPU reports (e.g. its AVX2 backward-data
work split, its brgemm convolutions), which no variable fixes, so a convolution's last bits may still differ
between CPU models. torch's own convolution (im2col and MKL's COMPATIBLE GEMM, oneDNN and NNPACK off) would
pin them too, at 4.7 times the time of a training step of the ci CNNs (13.6 against 63.7 ms, one thread,
measured): not taken; the conv families (stall, subnetworks) say so in benchmarks/README.md.

``REPRO_NUMERICS=native`` opts out (each library's fastest kernels and the process's threads: results
may then differ between CPUs). It is part of every result's store key, so native and portable results
never mix, and each result's provenance records the level and what each library really dispatched to.
On a CPU without AVX2 and FMA, or not x86-64, nothing is pinned and the provenance says so.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "LEVEL",
    "PINS",
    "NumericsError",
    "check",
    "computing",
    "describe",
    "fingerprint",
    "mkl_branch",
    "mode",
    "parallel_width",
    "pin",
]

#: The one instruction-set level every computing process is pinned to.
LEVEL = "x86-64-v3"

#: What each library reads (once, when it loads or first dispatches) to choose its kernels.
PINS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's vectorised kernels (default / avx2 / avx512)
    # MKL's conditional numerical reproducibility, strict. Only the COMPATIBLE branch (SSE2 without
    # rcpps/rsqrtps) is honoured on every vendor's CPU: MKL runs a named ISA branch (AVX2, ...) on Intel
    # CPUs only and its AUTO branch elsewhere (oneMKL developer guide, "Getting Started with Conditional
    # Numerical Reproducibility"; an AMD EPYC reports branch AUTO under MKL_CBWR=AVX2, see mkl_branch()).
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # and the functions CNR does not cover
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (torch's mkldnn convolutions; see the module's note on them)
    "DNNL_MAX_CPU_ISA": "AVX2",  # its older name
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's OpenBLAS (DYNAMIC_ARCH builds)
    "NPY_DISABLE_CPU_FEATURES": "",  # numpy's run-time SIMD dispatch above AVX2: its names, below
}


def _numpy_avx512_targets() -> str:
    """numpy's dispatch targets above x86-64-v3, by the installed numpy's naming (read without importing
    it: it reads the variable once, when it loads). A name numpy does not dispatch on is an ImportWarning."""
    try:
        major, minor = (int(part) for part in metadata.version("numpy").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return "X86_V4 AVX512_ICL AVX512_SPR"
    if (major, minor) >= (2, 4):  # psABI groups
        return "X86_V4 AVX512_ICL AVX512_SPR"
    return "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL"


PINS["NPY_DISABLE_CPU_FEATURES"] = _numpy_avx512_targets()

#: MKL's CNR branch codes (mkl_cbwr.h), to read back which branch MKL really runs.
_MKL_BRANCHES = {0: "OFF", 1: "BRANCH_OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1",
                 8: "SSE4_2", 9: "AVX", 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1",
                 14: "AVX512_E1", 15: "AVX512_E2", 16: "AVX512_E3", 17: "AVX512_E4", 18: "AVX2_E1",
                 19: "AVX512_E5"}  # fmt: skip

#: Where REPRO_NUMERICS is not set or is "portable", the pins apply; "native" opts out.
VARIABLE = "REPRO_NUMERICS"

_state: dict[str, Any] = {"pinned": False, "reason": "pin() has not run", "loaded_before": []}
_width = 1


class NumericsError(RuntimeError):
    """A process that should compute with pinned numerics cannot (torch or numpy loaded before repro)."""


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags (Linux), None where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def _unpinnable() -> str | None:
    """Why this machine cannot take the pins, or None."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"not x86-64 ({platform.machine()}): its kernels are its own"
    flags = _cpu_flags()
    if flags is None:
        return "the CPU's features could not be read (/proc/cpuinfo)"
    missing = sorted({"avx2", "fma"} - flags)
    if missing:
        return f"this CPU lacks {', '.join(missing)}, which {LEVEL} needs"
    return None


def mode() -> str:
    """``LEVEL`` where results are pinned, "native" where not (opted out, or a CPU that cannot)."""
    requested = os.environ.get(VARIABLE, "portable")
    if requested not in ("portable", "native"):
        raise NumericsError(f"{VARIABLE} must be 'portable' or 'native', not {requested!r}")
    if requested == "native" or _unpinnable() is not None:
        return "native"
    return LEVEL


def fingerprint() -> str:
    """What of the numerics shapes a result's bits: part of every experiment's code version."""
    current = mode()
    if current == "native":
        return "native"
    return current + ";" + ";".join(f"{k}={v}" for k, v in sorted(PINS.items()))


def pin() -> dict[str, Any]:
    """Set :data:`PINS` in os.environ, overriding what was there, unless opted out or impossible.

    Call before torch and numpy load (``import repro`` does); a library already loaded keeps what it
    chose, which :func:`check` then refuses.
    """
    loaded = [name for name in ("torch", "numpy") if name in sys.modules]
    reason = _unpinnable()
    if os.environ.get(VARIABLE, "portable") == "native":
        reason = f"{VARIABLE}=native"
    if reason is None:
        os.environ.update(PINS)
    _state.update(pinned=reason is None, reason=reason, loaded_before=loaded)
    return dict(_state)


def mkl_branch() -> str | None:
    """The CNR branch torch's MKL runs ("COMPATIBLE", "AUTO", "AVX2", ...; "+STRICT" where strict), read
    back from MKL itself; None where torch is not loaded or its MKL cannot be asked (another BLAS).

    MKL fixes its branch at its first call, so the answer is read once per process (every result's
    provenance asks) and kept."""
    if "torch" not in sys.modules:
        return None
    if "mkl_branch" not in _state:
        _state["mkl_branch"] = _read_mkl_branch()
    return _state["mkl_branch"]


def _read_mkl_branch() -> str | None:
    import ctypes

    import torch

    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get = ctypes.CDLL(str(library)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.argtypes, get.restype = [ctypes.c_int], ctypes.c_int
    if torch.backends.mkl.is_available():  # MKL reads MKL_CBWR on its first call: make sure it was made
        torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    setting = get(-1) & 0xFFFFFFFF  # MKL_CBWR_ALL: the branch, with 0x10000 for STRICT
    branch = get(1)
    return _MKL_BRANCHES.get(branch, f"branch {branch}") + ("+STRICT" if setting & 0x10000 else "")


def _dispatch() -> dict[str, Any]:
    """What each loaded library really dispatches to now."""
    found: dict[str, Any] = {}
    if "torch" in sys.modules:
        import torch

        found["torch"] = torch.backends.cpu.get_cpu_capability()
        branch = mkl_branch()
        if branch is not None:
            found["mkl"] = branch
    if "numpy" in sys.modules:
        import numpy

        core = getattr(numpy, "_core", None) or getattr(numpy, "core", None)  # numpy 2 / numpy 1
        features = getattr(getattr(core, "_multiarray_umath", None), "__cpu_features__", {})
        found["numpy_avx512"] = bool(features.get("X86_V4") or features.get("AVX512_SKX"))
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        libraries = threadpool_info()
        cores = sorted({str(lib.get("architecture")) for lib in libraries if lib.get("internal_api") == "openblas"})
        if cores:
            found["openblas"] = cores
    return found


def describe() -> dict[str, Any]:
    """For a result's provenance: the level asked for, and what each library dispatched to."""
    info: dict[str, Any] = {"level": mode(), "dispatch": _dispatch()}
    if not _state["pinned"]:
        info["not_pinned"] = _state["reason"]
    return info


def check() -> None:
    """Raise :class:`NumericsError` where this process should compute pinned but does not.

    Imports torch (and threadpoolctl): call where a result is about to be computed.
    """
    if mode() == "native":
        return
    import numpy  # noqa: F401  (loads OpenBLAS, so that its kernel is checked too)
    import torch  # noqa: F401

    found = _dispatch()
    wrong = []
    if found.get("torch") != "AVX2":
        wrong.append(f"torch dispatches to {found.get('torch')}")
    if found.get("mkl", "COMPATIBLE+STRICT") != "COMPATIBLE+STRICT":
        wrong.append(f"MKL runs its {found['mkl']} branch")
    if found.get("numpy_avx512"):
        wrong.append("numpy dispatches to AVX-512")
    if any(core != PINS["OPENBLAS_CORETYPE"] for core in found.get("openblas", [])):
        wrong.append(f"OpenBLAS runs {', '.join(found['openblas'])} kernels")
    if wrong:
        before = ", ".join(_state["loaded_before"]) or "a library"
        raise NumericsError(
            f"numerics are not pinned to {LEVEL} in this process ({'; '.join(wrong)}): {before} was loaded "
            f"before repro. Import repro before torch and numpy, or set {VARIABLE}=native (results may then "
            "differ between CPUs, and are stored apart from portable ones)"
        )


def parallel_width() -> int:
    """How many Python threads an experiment may spread its seeds over (1 outside :func:`computing`)."""
    return _width


@contextlib.contextmanager
def computing(width: int, device_type: str = "cpu") -> Iterator[None]:
    """One experiment call's numerics: on a CPU, one intra-op thread in torch and in every BLAS and
    OpenMP pool (restored after), and ``width`` threads for the experiment to share its seeds over.

    On another device the process's threads are left as they are (a GPU's results are its own whatever
    the CPU does); with ``REPRO_NUMERICS=native`` torch takes ``width`` intra-op threads.
    """
    global _width
    previous_width, _width = _width, max(1, width)
    if device_type != "cpu":
        try:
            yield
        finally:
            _width = previous_width
        return
    import torch
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    threads = torch.get_num_threads()
    if mode() == "native":  # the fastest: the worker's share of the cores in torch's own kernels too
        torch.set_num_threads(_width)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            _width = previous_width
        return
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)
        _width = previous_width

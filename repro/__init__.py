"""repro: claims of superposition and interpretability research, declared as data and judged by statistics."""

from __future__ import annotations

# First, before anything loads torch or numpy: every process that computes pins the CPU's kernels to
# one instruction-set level (repro/numerics.py), so results do not depend on the CPU.
from repro import numerics as _numerics

_numerics.pin()

from repro._version import __version__  # noqa: E402
from repro.claim import Assertion, Claim, Scale, Source  # noqa: E402
from repro.errors import (  # noqa: E402
    ClaimFileError,
    DataUnavailableError,
    DeviceUnavailableError,
    ReproError,
    StoreError,
    UnknownClaimError,
    UnknownExperimentError,
)
from repro.judge import ClaimRun, evaluate  # noqa: E402
from repro.load import ClaimSet, load_claims  # noqa: E402
from repro.registry import Experiment, SeedResult  # noqa: E402
from repro.runner import run_claim  # noqa: E402
from repro.stats import Verdict, decide  # noqa: E402
from repro.store import Store  # noqa: E402

__all__ = [
    "Assertion",
    "Claim",
    "ClaimFileError",
    "ClaimRun",
    "ClaimSet",
    "DataUnavailableError",
    "DeviceUnavailableError",
    "Experiment",
    "ReproError",
    "Scale",
    "SeedResult",
    "Source",
    "Store",
    "StoreError",
    "UnknownClaimError",
    "UnknownExperimentError",
    "Verdict",
    "__version__",
    "decide",
    "evaluate",
    "load_claims",
    "run_claim",
]

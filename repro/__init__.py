"""repro: claims of superposition and interpretability research, declared as data and judged by statistics."""

from __future__ import annotations

from repro._version import __version__
from repro.claim import Assertion, Claim, Scale, Source
from repro.errors import (
    ClaimFileError,
    DataUnavailableError,
    DeviceUnavailableError,
    ReproError,
    StoreError,
    UnknownClaimError,
    UnknownExperimentError,
)
from repro.judge import ClaimRun, evaluate
from repro.load import ClaimSet, load_claims
from repro.registry import Experiment, SeedResult
from repro.runner import run_claim
from repro.stats import Verdict, decide
from repro.store import Store

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

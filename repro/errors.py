"""Every error a user can hit is one of these, with a message that says what to do.

ReproError
├── ClaimFileError        a claims file is malformed (names file, claim id and field); exit 2
│   └── ClaimsNotFoundError the claims path names nothing (says which path was looked for); exit 2
├── UnknownExperimentError an experiment name that nothing registered; exit 2
├── ExperimentRegistrationError two experiments under one name, or an object that is not one; exit 2
├── UnknownClaimError     a claim id on the command line that no file declares; exit 2
├── DataUnavailableError  a full-scale dataset or weights file is missing (says how to get it)
├── DeviceUnavailableError --device cuda where CUDA is absent
├── StoreError            a result in the store cannot be read
└── BaselineError         a verdicts.json or results.json that cannot be read (names the file); exit 2
"""

from __future__ import annotations

__all__ = [
    "BaselineError",
    "ClaimFileError",
    "ClaimsNotFoundError",
    "DataUnavailableError",
    "DeviceUnavailableError",
    "ExperimentRegistrationError",
    "ReproError",
    "StoreError",
    "UnknownClaimError",
    "UnknownExperimentError",
]


class ReproError(Exception):
    """Base of every error repro raises on purpose."""

    exit_code = 1


class ClaimFileError(ReproError):
    """A claims file failed validation. ``problems`` holds one line per problem."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class ClaimsNotFoundError(ClaimFileError):
    """The claims file or folder is not there: the CLI adds how to name another (``--claims``)."""


class UnknownExperimentError(ReproError):
    exit_code = 2


class ExperimentRegistrationError(ReproError, ValueError):
    """An experiment that cannot be registered: a taken name (both origins named), or a broken declaration."""

    exit_code = 2


class UnknownClaimError(ReproError):
    exit_code = 2


class DataUnavailableError(ReproError):
    exit_code = 2


class DeviceUnavailableError(ReproError):
    exit_code = 2


class StoreError(ReproError):
    pass


class BaselineError(ReproError):
    """A verdict baseline (verdicts.json) or report (results.json) that cannot be read; names the file."""

    exit_code = 2

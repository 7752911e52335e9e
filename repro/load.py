"""claims/*.toml -> validated claims. Every problem names the file, the claim id and the field.

A claims file holds ``[[claim]]`` tables and, optionally, ``[source.KEY]`` tables. A folder is read
whole (``*.toml``, sorted); a single file is read with the ``sources.toml`` beside it, so a user can
keep claims of their own anywhere. Nothing runs until every file has validated: a bad file is
refused before any experiment starts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from repro import registry
from repro.claim import SCALES, Claim, Source
from repro.errors import ClaimFileError, UnknownClaimError, UnknownExperimentError

__all__ = ["ClaimSet", "load_claims", "resolve_params"]

_TOP_LEVEL_KEYS = {"claim", "source"}


@dataclass(frozen=True)
class ClaimSet:
    """Claims in file order, the sources they cite, and where each claim was declared."""

    claims: tuple[Claim, ...]
    sources: dict[str, Source]
    files: dict[str, Path]

    def __iter__(self):
        return iter(self.claims)

    def __len__(self) -> int:
        return len(self.claims)

    def get(self, claim_id: str) -> Claim:
        for claim in self.claims:
            if claim.id == claim_id:
                return claim
        raise UnknownClaimError(f"no claim '{claim_id}' in {sorted(set(map(str, self.files.values())))}")

    def select(self, ids: Iterable[str]) -> list[Claim]:
        """Claims by id, or by prefix ('tms.' selects a family); unknown names are an error."""
        chosen: list[Claim] = []
        for wanted in ids:
            matches = [c for c in self.claims if c.id == wanted or c.id.startswith(wanted.rstrip(".") + ".")]
            if not matches:
                raise UnknownClaimError(f"no claim matches '{wanted}' (try `repro list`)")
            chosen.extend(m for m in matches if m not in chosen)
        return chosen


def _field(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc) or "(claim)"


def _format(error: dict[str, Any], prefix: tuple[Any, ...] = ()) -> str:
    field = _field(prefix + tuple(error["loc"]))
    got = error.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
    return f"field '{field}': {error['msg']}{shown}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ClaimFileError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ClaimFileError([f"{path}: cannot be read: {exc.strerror}"]) from None


def _files(path: Path) -> tuple[list[Path], list[Path]]:
    """(claim files, extra files read only for their sources)."""
    if path.is_dir():
        files = sorted(p for p in path.glob("*.toml") if p.is_file())
        if not files:
            raise ClaimFileError([f"{path}: no *.toml claims files in this folder"])
        return files, []
    if path.is_file():
        beside = path.parent / "sources.toml"
        return [path], ([beside] if beside.is_file() and beside != path else [])
    raise ClaimFileError([f"{path}: no such claims file or folder"])


def resolve_params(claim: Claim, scale: str, arm: str = "main") -> BaseModel:
    """The experiment's validated params for one claim, scale and arm."""
    experiment = registry.get(claim.experiment)
    return experiment.params.model_validate(claim.raw_params(scale, arm))


def _check_against_experiment(claim: Claim) -> list[str]:
    """Problems that need the registry: experiment name, metric name, params at every scale and arm."""
    try:
        experiment = registry.get(claim.experiment)
    except UnknownExperimentError as exc:
        return [f"field 'experiment': {exc}"]
    problems = []
    if claim.metric not in experiment.metrics:
        problems.append(
            f"field 'metric': '{claim.metric}' is not a metric of {experiment.name} "
            f"(it has: {', '.join(experiment.metrics)})"
        )
    model_fields = set(experiment.params.model_fields)
    for scale in SCALES:
        for arm in claim.arm_names():
            try:
                experiment.params.model_validate(claim.raw_params(scale, arm))
            except ValidationError as exc:
                for error in exc.errors():
                    # Name the layer a bad key came from: the arm's overrides, the scale's, or params.
                    key = error["loc"][0] if error["loc"] else None
                    if claim.arms and key in claim.arms[arm]:
                        where = f"arms.{arm}"
                    elif key in claim.scale(scale).overrides:
                        where = f"scales.{scale}"
                    else:
                        where = "params"
                    if error["type"] == "extra_forbidden":
                        hint = f"; {experiment.name} takes: {', '.join(sorted(model_fields))}"
                        problems.append(_format(error, (where,)).replace("(got", "(value") + hint)
                    else:
                        problems.append(_format(error, (where,)))
    return sorted(set(problems), key=problems.index)


def load_claims(path: str | Path) -> ClaimSet:
    """Read, validate and cross-check every claim under ``path``; raise ClaimFileError listing all problems."""
    root = Path(path)
    claim_files, source_only = _files(root)
    problems: list[str] = []
    sources: dict[str, Source] = {}
    raw_claims: list[tuple[Path, int, dict[str, Any]]] = []

    for file in claim_files + source_only:
        data = _read_toml(file)
        for key in sorted(set(data) - _TOP_LEVEL_KEYS):
            problems.append(f"{file}: unknown top-level key '{key}' (a claims file holds [[claim]] and [source.KEY])")
        for key, entry in (data.get("source") or {}).items():
            try:
                source = Source.model_validate(entry)
            except ValidationError as exc:
                problems.extend(f"{file}: source '{key}': {_format(e)}" for e in exc.errors())
                continue
            if key in sources:
                problems.append(f"{file}: source '{key}' is declared twice")
            sources[key] = source
        if file in claim_files:
            entries = data.get("claim", [])
            if not isinstance(entries, list):
                problems.append(f"{file}: 'claim' must be an array of tables: write [[claim]]")
                continue
            raw_claims.extend((file, index, entry) for index, entry in enumerate(entries))

    claims: list[Claim] = []
    files: dict[str, Path] = {}
    for file, index, entry in raw_claims:
        label = f"claim '{entry.get('id')}'" if isinstance(entry.get("id"), str) else f"claim #{index + 1}"
        try:
            claim = Claim.model_validate(entry)
        except ValidationError as exc:
            problems.extend(f"{file}: {label}: {_format(e)}" for e in exc.errors())
            continue
        if claim.id in files:
            problems.append(f"{file}: {label}: field 'id': duplicate of the claim in {files[claim.id]}")
            continue
        if claim.source not in sources:
            known = ", ".join(sorted(sources)) or "none"
            problems.append(f"{file}: {label}: field 'source': unknown source '{claim.source}' (known: {known})")
        problems.extend(f"{file}: {label}: {p}" for p in _check_against_experiment(claim))
        claims.append(claim)
        files[claim.id] = file

    if problems:
        raise ClaimFileError(problems)
    return ClaimSet(claims=tuple(claims), sources=sources, files=files)

"""claims/*.toml -> validated claims. Every problem names the file, the claim id and the field.

A claims file holds ``[[claim]]`` tables and, optionally, ``[source.KEY]`` tables. A folder is read
whole (``*.toml``, sorted); a single file is read with the ``sources.toml`` beside it, so a user can
keep claims of their own anywhere. Nothing runs until every file has validated: a bad file is
refused before any experiment starts.
"""

from __future__ import annotations

import codecs
import os
import stat
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from repro import registry
from repro.claim import SCALES, Claim, Proportion, Source, binomial_min_seeds, min_seeds
from repro.errors import ClaimFileError, UnknownClaimError, UnknownExperimentError

__all__ = ["ClaimSet", "load_claims", "resolve_params", "with_default_method"]

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

    def family(self, claim: Claim) -> str | None:
        """The claim's Holm family: its ``family``, or '<claims file name>.<source>'; None for a control."""
        if claim.control:
            return None
        if claim.family:
            return claim.family
        file = self.files.get(claim.id)
        return f"{file.stem if file is not None else 'claims'}.{claim.source}"

    def family_size(self, claim: Claim, scale: str) -> int:
        """Claims corrected together with ``claim`` at ``scale`` (1 for a control or a skipped scale)."""
        family = self.family(claim)
        if family is None or claim.skipped(scale):
            return 1
        return sum(1 for c in self.claims if not c.skipped(scale) and self.family(c) == family)


_INT64 = (-(2**63), 2**63 - 1)
#: Claims nest a few levels (claim.scales.ci.KEY, a list of lists in params); far deeper is a broken
#: file, and refusing it here keeps recursion in repr, pydantic and the store's hashing safe.
_MAX_DEPTH = 32
#: A message quotes what it found, not a megabyte of it.
_SHOWN = 80


def _display(path: Path) -> str:
    """The path as text that can always be printed (a name that is not UTF-8 gets \\x escapes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _name(key: Any) -> str:
    """A key as written, escaped where control characters would garble the message, and cut short."""
    text = str(key)
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _label(entry: dict[str, Any], index: int) -> str:
    claim_id = entry.get("id")
    if isinstance(claim_id, str) and claim_id.isprintable() and 0 < len(claim_id) <= 120:
        return f"claim '{claim_id}'"
    return f"claim #{index + 1}"


def _field(loc: Iterable[Any]) -> str:
    return ".".join(_name(part) for part in loc) or "(claim)"


def _format(error: dict[str, Any], prefix: tuple[Any, ...] = ()) -> str:
    field = _field(prefix + tuple(error["loc"]))
    got = error.get("input")
    shown = f" (got {_show(got)})" if got is not None and not isinstance(got, dict) else ""
    message = error["msg"] if len(error["msg"]) <= 4 * _SHOWN else error["msg"][: 4 * _SHOWN - 3] + "..."
    return f"field '{field}': {message}{shown}"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _decode(data: bytes, where: str) -> str:
    """UTF-8 text, or a ClaimFileError saying where the first byte that is not UTF-8 sits."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ClaimFileError([f"{where}: saved as UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8"])
    if data.startswith(codecs.BOM_UTF8):
        raise ClaimFileError(
            [f"{where}: starts with a UTF-8 byte order mark, which TOML does not allow: save it as UTF-8 without BOM"]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8")) + 1  # the bytes before exc.start decoded
        raise ClaimFileError(
            [
                f"{where}: not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                f"(line {line}, column {column}): {exc.reason}; TOML files must be saved as UTF-8"
            ]
        ) from None


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse one file. Every way a file can fail to parse is a ClaimFileError naming it, never a traceback."""
    where = _display(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ClaimFileError([f"{where}: is a folder, not a claims file"])
        if not stat.S_ISREG(mode):  # opening a FIFO would wait for a writer forever
            raise ClaimFileError(
                [f"{where}: not a regular file (a FIFO, socket or device): claims files are plain files"]
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ClaimFileError([f"{where}: cannot be read: {_os_reason(exc)}"]) from None
    text = _decode(data, where)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ClaimFileError([f"{where}: not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ClaimFileError([f"{where}: arrays or inline tables nested too deeply to read"]) from None
    except ValueError:  # int() refuses a literal of more than 4300 digits
        raise ClaimFileError(
            [f"{where}: an integer has too many digits (TOML integers are 64-bit: -2**63 .. 2**63-1)"]
        ) from None


def _locate(data: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """'claim 'ID': field 'a.b'' for a path into the parsed file, as the schema errors say it."""
    if len(loc) >= 2 and loc[0] == "claim" and isinstance(data["claim"], list) and isinstance(loc[1], int):
        entry = data["claim"][loc[1]]
        label = _label(entry, loc[1]) if isinstance(entry, dict) else f"claim #{loc[1] + 1}"
        return f"{label}: field '{_field(loc[2:])}'" if len(loc) > 2 else label
    if len(loc) >= 2 and loc[0] == "source" and isinstance(data["source"], dict):
        return f"source '{_name(loc[1])}': field '{_field(loc[2:])}'" if len(loc) > 2 else f"source '{_name(loc[1])}'"
    return f"field '{_field(loc)}'"


def _check_values(data: dict[str, Any]) -> list[str]:
    """Values tomllib accepts but nothing after it can use: integers beyond TOML's 64-bit range
    (repr of one of more than 4300 digits raises) and nesting deep enough to exhaust recursion
    (dotted keys nest without limit). Walked with a stack, so the walk itself cannot recurse too deep.
    """
    problems: list[str] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack and len(problems) < 10:
        loc, value = stack.pop()
        if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
            problems.append(f"{_locate(data, loc)}: integer outside TOML's 64-bit range (-2**63 .. 2**63-1)")
        elif isinstance(value, dict | list):
            if len(loc) > _MAX_DEPTH:
                problems.append(f"{_locate(data, loc[:4])}: nests more than {_MAX_DEPTH} levels deep")
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((loc + (key,), item) for key, item in reversed(list(items)))
    return problems


def _files(path: Path) -> tuple[list[Path], list[Path]]:
    """(claim files, extra files read only for their sources)."""
    where = _display(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ClaimFileError([f"{where}: no such claims file or folder"]) from None
    except OSError as exc:  # a symlink loop, a folder on the way that cannot be searched, a name too long
        raise ClaimFileError([f"{where}: cannot be read: {_os_reason(exc)}"]) from None
    except ValueError:  # a NUL in the path
        raise ClaimFileError([f"{where}: not a valid path"]) from None
    if stat.S_ISDIR(mode):
        try:
            files = sorted(p for p in path.iterdir() if p.name.endswith(".toml") and p.is_file())
        except OSError as exc:
            raise ClaimFileError([f"{where}: cannot list this folder: {_os_reason(exc)}"]) from None
        if not files:
            raise ClaimFileError([f"{where}: no *.toml claims files in this folder"])
        return files, []
    if stat.S_ISREG(mode):
        beside = path.parent / "sources.toml"
        return [path], ([beside] if beside.is_file() and beside != path else [])
    raise ClaimFileError(
        [f"{where}: not a regular file or folder (a FIFO, socket or device): give a claims file or a folder of them"]
    )


def resolve_params(claim: Claim, scale: str, arm: str = "main") -> BaseModel:
    """The experiment's validated params for one claim, scale and arm."""
    experiment = registry.get(claim.experiment)
    return experiment.params.model_validate(claim.raw_params(scale, arm))


def with_default_method(claim: Claim) -> Claim:
    """The claim with its assertion's ``method`` filled in from the metric's kind when it names none.

    Resolved once, here, so that the verdict, `repro show`, the report and the baseline all name
    the test that actually decides.
    """
    assertion = claim.assertion
    if getattr(assertion, "method", "unset") is not None:
        return claim
    kind = registry.get(claim.experiment).metric_kinds[claim.metric]
    method = registry.default_method(kind, paired=getattr(assertion, "paired", True))
    return claim.model_copy(update={"assertion": assertion.model_copy(update={"method": method})})


def _check_against_experiment(claim: Claim) -> list[str]:
    """Problems that need the registry: experiment name, metric name, params at every scale and arm."""
    try:
        experiment = registry.get(claim.experiment)
    except UnknownExperimentError:
        known = ", ".join(registry.names())
        return [f"field 'experiment': unknown experiment '{_name(claim.experiment)}' (registered: {known})"]
    problems = []
    if claim.metric not in experiment.metrics:
        problems.append(
            f"field 'metric': '{_name(claim.metric)}' is not a metric of {experiment.name} "
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
        where = _display(file)
        try:
            data = _read_toml(file)
        except ClaimFileError as exc:
            problems.extend(exc.problems)
            continue
        if value_problems := _check_values(data):
            problems.extend(f"{where}: {p}" for p in value_problems)
            continue
        for key in sorted(set(data) - _TOP_LEVEL_KEYS):
            problems.append(
                f"{where}: unknown top-level key '{_name(key)}' (a claims file holds [[claim]] and [source.KEY])"
            )
        table = data.get("source", {})
        if not isinstance(table, dict):
            problems.append(f"{where}: 'source' must be a table of sources: write [source.KEY] (got {_show(table)})")
            table = {}
        for key, entry in table.items():
            if not isinstance(entry, dict):
                problems.append(
                    f"{where}: source '{_name(key)}' must be a table with title, authors, year and url: "
                    f"write [source.{_name(key)}] (got {_show(entry)})"
                )
                continue
            try:
                source = Source.model_validate(entry)
            except ValidationError as exc:
                problems.extend(f"{where}: source '{_name(key)}': {_format(e)}" for e in exc.errors())
                continue
            if key in sources:
                problems.append(f"{where}: source '{_name(key)}' is declared twice")
            sources[key] = source
        if file in claim_files:
            entries = data.get("claim", [])
            if not isinstance(entries, list):
                problems.append(f"{where}: 'claim' must be an array of tables: write [[claim]] (got {_show(entries)})")
                continue
            for index, entry in enumerate(entries):
                if isinstance(entry, dict):
                    raw_claims.append((file, index, entry))
                else:
                    problems.append(
                        f"{where}: claim #{index + 1} must be a table: write [[claim]] (got {_show(entry)})"
                    )

    claims: list[Claim] = []
    files: dict[str, Path] = {}
    for file, index, entry in raw_claims:
        where, label = _display(file), _label(entry, index)
        try:
            claim = Claim.model_validate(entry)
        except ValidationError as exc:
            problems.extend(f"{where}: {label}: {_format(e)}" for e in exc.errors())
            continue
        except ArithmeticError as exc:  # a validator's arithmetic on an extreme value, e.g. alpha = 1e-310
            problems.append(f"{where}: {label}: a number is too extreme to check ({exc}): use an ordinary value")
            continue
        if claim.id in files:
            problems.append(f"{where}: {label}: field 'id': duplicate of the claim in {_display(files[claim.id])}")
            continue
        if claim.source not in sources:
            known = ", ".join(_name(key) for key in sorted(sources)) or "none"
            problems.append(
                f"{where}: {label}: field 'source': unknown source '{_name(claim.source)}' (known: {known})"
            )
        found = _check_against_experiment(claim)
        problems.extend(f"{where}: {label}: {p}" for p in found)
        claims.append(claim if found else with_default_method(claim))
        files[claim.id] = file

    if problems:
        raise ClaimFileError(problems)
    claim_set = ClaimSet(claims=tuple(claims), sources=sources, files=files)
    problems = [f"{files[c.id]}: claim '{c.id}': {p}" for c in claim_set for p in _family_floor(claim_set, c)]
    if problems:
        raise ClaimFileError(problems)
    return claim_set


def _family_floor(claim_set: ClaimSet, claim: Claim) -> list[str]:
    """Seeds too few for the claim ever to decide within its family.

    Holm's first step compares the smallest p of a family of m claims with alpha / m, and a claim
    whose seeds cannot reach that could never be decided whatever its family's results: the same
    rule as :func:`repro.claim.min_seeds`, at alpha / m (for a binomial claim on one value per seed,
    min_fraction ** seeds < alpha / m).
    """
    problems = []
    alpha = claim.assertion.alpha
    for scale in SCALES:
        m = claim_set.family_size(claim, scale)
        if m == 1 or claim.skipped(scale):
            continue
        n, needed = claim.n_seeds(scale), min_seeds(alpha / m)
        family = claim_set.family(claim)
        if n < needed:
            problems.append(
                f"field 'seeds': {n} seeds at scale {scale} cannot decide within family '{family}' ({m} claims): "
                f"Holm's first step tests at alpha / {m} = {alpha / m:.3g}, which needs at least {needed} seeds "
                "(0.5**seeds below it); raise the seeds or declare a smaller family"
            )
        elif isinstance(claim.assertion, Proportion) and claim.at is not None:
            p0 = claim.assertion.min_fraction
            needed = binomial_min_seeds(p0, alpha / m)
            if n < needed:
                problems.append(
                    f"field 'seeds': {n} seeds at scale {scale} cannot decide within family '{family}' ({m} claims): "
                    f"min_fraction**seeds = {p0**n:.3g} is not below alpha / {m} = {alpha / m:.3g}, which needs at "
                    f"least {needed} seeds"
                )
    return problems

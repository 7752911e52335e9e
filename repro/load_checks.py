"""Reading one claims file safely, before any validation: the checks against hostile input.

Every way a file can fail to be read (a folder, a FIFO, unreadable, UTF-16 or a BOM, bytes that are
not UTF-8, TOML that does not parse) and every value tomllib accepts that nothing after it can use
(integers beyond 64 bits, nesting deep enough to exhaust recursion) becomes a
:class:`~repro.errors.ClaimFileError` naming the file and the place, never a traceback; the
message helpers here quote what they found escaped and cut short. Apart from :mod:`repro.load`,
which validates claims against the schema and the registry, because none of this needs either.
"""

from __future__ import annotations

import codecs
import difflib
import os
import stat
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.errors import ClaimFileError, ClaimsNotFoundError

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

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


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'; did you mean 'a' or 'b'?' for the choices closest to a mistyped name (difflib), or ''."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.6)
    quoted = " or ".join(f"'{_name(c)}'" for c in close)
    return f"; did you mean {quoted}?" if close else ""


def _label(entry: dict[str, Any], index: int) -> str:
    claim_id = entry.get("id")
    if isinstance(claim_id, str) and claim_id.isprintable() and 0 < len(claim_id) <= 120:
        return f"claim '{claim_id}'"
    return f"claim #{index + 1}"


def _field(loc: Iterable[Any]) -> str:
    return ".".join(_name(part) for part in loc) or "(claim)"


def _format(error: ErrorDetails, prefix: tuple[Any, ...] = ()) -> str:
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


def _looked_for(path: Path) -> str:
    """' (looked for /abs/path)' for a relative path, which reads differently from another folder; else ''."""
    try:
        absolute = path.absolute()
    except OSError:  # the working folder itself is gone
        return ""
    return "" if path.is_absolute() else f" (looked for {_display(absolute)})"


def _files(path: Path) -> tuple[list[Path], list[Path]]:
    """(claim files, extra files read only for their sources)."""
    where = _display(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ClaimsNotFoundError([f"{where}: no such claims file or folder{_looked_for(path)}"]) from None
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

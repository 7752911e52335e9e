"""Pre-registration the tool enforces: a declaration moves only with a note that says exactly how.

An expected verdict is evidence only if everything that decides it was fixed before the result was
seen. The committed baseline (``reports/<scale>/verdicts.json``, :mod:`repro.baseline`) holds, for
each claim, its :func:`declaration` (every field that can move a verdict: the assertion with its
threshold, margin, alpha and method, the metric and sweep point, the family and control flag, the
root seed and the seed counts, the sequential design, the expectations, and the params at every
scale) and the digest of every change note it has seen. Against that row:

- every declared field that differs needs a change note the baseline has not seen whose machine-
  readable ``fields`` name it with exactly the committed value before and the declared value after;
- every note the baseline has seen is still there, unedited (notes are never deleted: the baseline
  keeps their digests, so regenerating it in the same commit does not hide a deletion; the history
  test compares with the previous commit's baseline as well);
- a raised seed count keeps its root seed only where the note says why (``root_seed_kept``): a run
  planned from a pilot draws fresh seeds, so the pilot's seeds do not decide it again.

Notes live in ``claims/history/<file>.toml`` (:func:`repro.load.history_file`), so that a claims file
reads as its claims' current declarations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from repro.claim import SCALES, Change, Claim

__all__ = ["declaration", "leaves", "note_digest", "note_digests", "problems"]

#: How a change note's ``fields`` name a field that is absent on one side (TOML has no null).
UNSET = "unset"
_MISSING = object()


def declaration(claim: Claim) -> dict[str, Any]:
    """Every declared field of ``claim`` that can move its verdict, as JSON data."""
    out: dict[str, Any] = {
        "experiment": claim.experiment,
        "metric": claim.metric,
        "at": claim.at,
        "assertion": claim.assertion.model_dump(mode="json"),
        "family": claim.family,
        "control": claim.control,
        "seed": claim.seed,
        "seeds": {scale: claim.n_seeds(scale) for scale in SCALES},
        "expect": {scale: "skipped" if claim.skipped(scale) else claim.expected(scale) for scale in SCALES},
        "sequential": None if claim.sequential is None else claim.sequential.model_dump(mode="json"),
        "params": {
            scale: {arm: claim.raw_params(scale, arm) for arm in claim.arm_names()}
            if claim.arms
            else claim.raw_params(scale, "main")
            for scale in SCALES
        },
    }
    # Plain JSON types, as the baseline file holds them; an unset field is absent (a note says "unset").
    return json.loads(json.dumps({key: value for key, value in out.items() if value is not None}, sort_keys=True))


def leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """``data`` flattened to its leaves by dotted path (a dict's keys; lists and scalars are leaves)."""
    if isinstance(data, Mapping) and (data or not prefix):
        out: dict[str, Any] = {}
        for key in sorted(data):
            out.update(leaves(data[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def note_digest(note: Change) -> str:
    """A note's identity: the sha256 prefix of its canonical JSON (any edit is a different note)."""
    canonical = json.dumps(note.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def note_digests(claim: Claim) -> list[str]:
    return [note_digest(note) for note in claim.changed]


def _at(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _named_in_words(what: str, path: str) -> bool:
    """The rule for notes and rows older than ``fields`` and note digests: the note's ``what`` names the
    field ("seeds", "threshold", "root seed", ...)."""
    text, parts = what.lower(), path.split(".")
    words = {"root seed" if part == "seed" else part.replace("_", " ") for part in (parts[0], parts[-1])}
    return any(word in text for word in words - {"assertion", "params", "ci", "full"})


def _same(a: Any, b: Any) -> bool:
    a, b = (UNSET if v is _MISSING else v for v in (a, b))
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or a == b


def _show(value: Any) -> str:
    return json.dumps(UNSET if value is _MISSING else value)


def problems(claim: Claim, committed: Mapping[str, Any] | None, seen: Sequence[str] | None) -> list[str]:
    """Why ``claim``'s declaration and notes disagree with its committed baseline row; empty when they agree.

    ``committed`` is the row's declaration and ``seen`` its note digests. ``seen`` None is a row written
    before the baseline kept them: then only the fields it holds are compared, every note counts as new,
    and a note from before ``fields`` registers a field its ``what`` names in words (the old rule).
    """
    if committed is None:
        return []
    out: list[str] = []
    digests = note_digests(claim)
    seen_set = set(seen or ())
    lost = [d for d in seen or () if d not in digests]
    if lost:
        out.append(
            f"{claim.id}: {len(lost)} change note(s) the baseline has seen are gone or edited (digest "
            f"{', '.join(lost)}): a note is never deleted or rewritten; restore it in the claims file's history "
            "file, and add a new note for a new change"
        )
    fresh = [note for note, digest in zip(claim.changed, digests, strict=True) if digest not in seen_set]
    if seen is None:  # a row from before notes were recorded: every note counts as one it may not have seen
        fresh = list(claim.changed)
    current = declaration(claim)
    keys = set(current) | set(committed)
    if seen is None:  # a row written before every field was declared: compare the fields it holds
        keys = {key for key in current if key in committed}
    before_leaves = leaves({key: committed[key] for key in keys if key in committed})
    after_leaves = leaves({key: current[key] for key in keys if key in current})
    moved = {
        path: (before_leaves.get(path, _MISSING), after_leaves.get(path, _MISSING))
        for path in sorted(set(before_leaves) | set(after_leaves))
        if not _same(before_leaves.get(path, _MISSING), after_leaves.get(path, _MISSING))
    }
    covered: set[str] = set()
    covering: dict[str, Change] = {}
    for note in fresh:
        for path, (before, after) in (note.fields or {}).items():
            old, new = _at(committed, path), _at(current, path)
            if not (_same(old, before) and _same(new, after)):
                out.append(
                    f"{claim.id}: the note of {note.date} says {path} moved {json.dumps(before)} -> "
                    f"{json.dumps(after)}, but since the baseline it moved {_show(old)} -> {_show(new)}"
                )
                continue
            for leaf in moved:
                if leaf == path or leaf.startswith(path + "."):
                    covered.add(leaf)
                    covering[leaf] = note
    for path, (old, new) in moved.items():
        if path not in covered and seen is None and any(_named_in_words(note.what, path) for note in fresh):
            continue  # a row from before note digests, against a note from before ``fields``: named in words
        if path not in covered:
            out.append(
                f"{claim.id}: {path} changed from {_show(old)} to {_show(new)} since the baseline, with no new "
                f"change note whose fields give it: add to the claims file's history file a [[change]] with "
                f'claim = "{claim.id}", date, what, why, before and fields = {{ "{path}" = [{_show(old)}, '
                f"{_show(new)}] }}"
            )
    if "seed" not in moved:
        for scale in SCALES:
            path = f"seeds.{scale}"
            old, new = moved.get(path, (None, None))
            if isinstance(old, int) and isinstance(new, int) and new > old:
                raised_by = covering.get(path)
                if raised_by is not None and raised_by.root_seed_kept is None:
                    out.append(
                        f"{claim.id}: seeds at {scale} raised {old} -> {new} on the same root seed {claim.seed}, so "
                        f"the first {old} seeds are the ones the earlier run saw: give the claim a fresh root seed "
                        "(field seed, in the same note), or say in the note's root_seed_kept why it keeps them"
                    )
    return out

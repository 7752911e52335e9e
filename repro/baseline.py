"""The verdict baseline (``reports/ci/verdicts.json``): write it, read it, diff two of them, check claims against it.

Pre-registration: an expectation is evidence only if it was fixed before the result was seen. The
baseline records, per claim, the verdict a run gave, what the claim declared when it did (the
assertion, seeds, family, params and expected verdict at each scale) and the digests of its change
notes. :func:`diff` lists the claims whose
verdict moved, whose estimate left the old interval or whose p crossed alpha;
:func:`preregistration_problems` says which claims disagree with a committed baseline, or changed a
declared field without a change note that gives the field's before and after (:mod:`repro.preregistration`).

Every function here is pure except :func:`read` and :func:`write`. The file's bytes are
deterministic: keys sorted, rows sorted by id, floats rounded to :data:`SIGNIFICANT` significant
digits (numeric noise from a rerun does not churn a committed file), no dates and no paths.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from repro import fragility, preregistration, registry
from repro.claim import SCALES, Claim
from repro.errors import BaselineError
from repro.judge import ClaimRun
from repro.load import resolve_params

__all__ = [
    "BASELINE_FORMAT",
    "SIGNIFICANT",
    "Baseline",
    "Delta",
    "Row",
    "declared",
    "diff",
    "dumps",
    "full_expect_of",
    "full_status",
    "params_digest",
    "parse",
    "preregistration_problems",
    "read",
    "row",
    "rows",
    "status_of",
    "write",
]

BASELINE_FORMAT = 1
#: The committed full-scale baseline (relative to the working directory, as the store is): a full-scale
#: expectation is "measured" only where it holds a row computed with the claim as it is declared now.
FULL_BASELINE = Path("reports") / "full" / "verdicts.json"
#: Significant digits every float of the baseline is rounded to.
SIGNIFICANT = 6
_NOT_RUN = re.compile(r"^(error:\s*)?not run\b", re.IGNORECASE)
_FLOATS = ("estimate", "ci_low", "ci_high", "ci_level", "ci_low_adjusted", "ci_high_adjusted", "ci_level_adjusted",
           "p_value", "p_adjusted", "p_opposite", "p_opposite_adjusted", "alpha")  # fmt: skip


def status_of(run: ClaimRun) -> str:
    """The verdict's outcome; "skipped" for a declared skip; "not_run" for an error saying results are missing."""
    if run.skipped:
        return "skipped"
    if run.verdict.outcome == "error" and _NOT_RUN.match(run.verdict.message.strip()):
        return "not_run"
    return run.verdict.outcome


def _round(x: float | None) -> float | None:
    """``x`` to SIGNIFICANT significant digits (None and non-finite values pass through for validation)."""
    if x is None or not math.isfinite(x):
        return x
    return float(f"{x:.{SIGNIFICANT}g}")


class Row(BaseModel):
    """One claim's verdict at one scale, and what the claim declared when it was judged.

    ``declared`` and ``code_version`` are None for a row read from a report's results.json, which
    does not hold them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field(min_length=1)
    scale: str
    verdict: str = Field(description="reproduced, not_reproduced, inconclusive, error, not_run or skipped.")
    expect: str | None = Field(description="The verdict the claim expects at this scale; None where skipped.")
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float | None
    p_value: float | None
    p_adjusted: float | None
    p_opposite: float | None
    p_opposite_adjusted: float | None
    alpha: float
    family: str | None
    family_size: int = Field(ge=1)
    test: str
    n: int = Field(ge=0)
    seeds: int = Field(ge=0, description="Replicate seeds at this scale.")
    code_version: str | None
    declared: dict[str, Any] | None = Field(
        description="What the claim declared when this row was written (repro.preregistration.declaration)."
    )
    notes: list[str] | None = Field(
        default=None,
        description="Digests of every change note the claim had when this row was written, oldest first "
        "(repro.preregistration.note_digest): a note the baseline has seen is never deleted or edited.",
    )
    margin: dict[str, int | bool | None] | None = Field(
        default=None,
        description="The decision margin (repro.fragility): seeds, leave_one_out (seeds whose leaving out alone "
        "moves the verdict), decides (the fewest seeds whose removal moves it; null: more than 3), near (seeds "
        "within the smallest effect of the threshold), fragile (one seed decides).",
    )
    metrics_digest: str | None = Field(
        default=None,
        description="sha256 prefix of every per-seed value the verdict read, bit for bit: the same verdict with "
        "another digest is the same verdict on different numbers.",
    )
    params_digest: str | None = Field(
        default=None,
        description="sha256 prefix of the resolved params of every arm at this scale: a row computed with other "
        "params (another setting) does not measure the claim as it is declared now.",
    )
    full_expect: str | None = Field(
        default=None,
        description="measured: a full-scale run of the claim as declared now (reports/full/verdicts.json) gave the "
        "expected full-scale verdict; contradicted: it gave another; predicted: no such run exists.",
    )
    ci_low_adjusted: float | None = Field(
        default=None,
        description="The interval at the Holm level that decides (ci_low, ci_high are at the raw level): it "
        "excludes the threshold exactly when p_adjusted (or p_opposite_adjusted) rejects. null: judged alone.",
    )
    ci_high_adjusted: float | None = None
    ci_level_adjusted: float | None = Field(default=None, description="Its two-sided level, 1 - 2*alpha_j.")

    @field_validator(*_FLOATS)
    @classmethod
    def _rounded(cls, x: float | None) -> float | None:
        return _round(x)

    @property
    def p_deciding(self) -> float | None:
        """The p that decides: Holm-adjusted within the family when present, else the raw p (judged alone)."""
        return self.p_adjusted if self.p_adjusted is not None else self.p_value


@dataclass(frozen=True)
class Baseline:
    """The rows of one verdicts.json or results.json, by claim id, and where they were read from."""

    scale: str
    rows: dict[str, Row]
    origin: str = ""


# -- rows from a judged run ------------------------------------------------------------------------


def declared(claim: Claim) -> dict[str, Any]:
    """What the claim declares that a result must not move (:func:`repro.preregistration.declaration`):
    the assertion with its method, metric, sweep point, family, control flag, root seed, seeds, sequential
    design, expectation at each scale ("skipped" where skipped) and the params at each scale."""
    return preregistration.declaration(claim)


def params_digest(claim: Claim, scale: str) -> str:
    """sha256 prefix of the claim's resolved params at ``scale``, every arm (defaults included)."""
    params = {arm: resolve_params(claim, scale, arm).model_dump(mode="json") for arm in claim.arm_names()}
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def full_status(claim: Claim, full: Baseline | None, code_version: str | None = None) -> str:
    """ "measured" when ``full`` (the full-scale baseline) holds a verdict of the claim computed as it is
    declared now (same declaration, same params, same experiment code) and that verdict is the one the claim
    expects at full scale; "contradicted" when such a verdict is another; else "predicted"."""
    entry = None if full is None else full.rows.get(claim.id)
    if entry is None or entry.verdict not in ("reproduced", "not_reproduced", "inconclusive"):
        return "predicted"
    if code_version is None:
        code_version = registry.get(claim.experiment).code_version
    same = (
        entry.declared == declared(claim)
        and entry.code_version == code_version
        and entry.params_digest == params_digest(claim, "full")
    )
    if not same:
        return "predicted"
    return "measured" if entry.verdict == claim.expected("full") else "contradicted"


def read_full(path: Path = FULL_BASELINE) -> Baseline | None:
    """The committed full-scale baseline, or None where there is none (or it cannot be read)."""
    try:
        return read(path) if path.is_file() else None
    except BaselineError:
        return None


def row(run: ClaimRun, code_version: str | None = None, margins: Mapping[str, fragility.Margin | None] | None = None,
        full: Baseline | None = None) -> Row:  # fmt: skip
    """The baseline row of one judged claim (``code_version``: its experiment's, looked up when None;
    ``margins``: decision margins by claim id, from :func:`repro.fragility.margins`; computed here for
    this claim alone, outside its family, when None)."""
    claim, v = run.claim, run.verdict
    if code_version is None:
        code_version = registry.get(claim.experiment).code_version
    margin = fragility.margin(run) if margins is None else margins.get(claim.id)
    return Row(
        id=claim.id, scale=run.scale, verdict=status_of(run), expect=None if run.skipped else run.expected,
        estimate=v.estimate, ci_low=v.ci_low, ci_high=v.ci_high, ci_level=v.ci_level, p_value=v.p_value,
        p_adjusted=v.p_adjusted, p_opposite=v.p_opposite, p_opposite_adjusted=v.p_opposite_adjusted,
        alpha=v.alpha, family=v.family, family_size=v.family_size, test=v.test, n=v.n, seeds=len(run.seeds),
        code_version=code_version, declared=declared(claim), notes=preregistration.note_digests(claim),
        metrics_digest=run.metrics_digest,
        margin=None if margin is None else margin.to_json(), params_digest=params_digest(claim, run.scale),
        full_expect=full_expect_of(run, full, code_version), ci_low_adjusted=v.ci_low_adjusted,
        ci_high_adjusted=v.ci_high_adjusted, ci_level_adjusted=v.ci_level_adjusted,
    )  # fmt: skip


def full_expect_of(run: ClaimRun, full: Baseline | None, code_version: str | None = None) -> str | None:
    """A row's full_expect: at full scale what this run says of the expectation (measured, contradicted, or
    predicted where it decided nothing); at ci :func:`full_status` from the full baseline."""
    claim = run.claim
    if claim.skipped("full"):
        return None
    if run.scale == "full":
        status = status_of(run)
        if status not in ("reproduced", "not_reproduced", "inconclusive"):
            return "predicted"
        return "measured" if status == claim.expected("full") else "contradicted"
    return full_status(claim, full, code_version)


def rows(runs: Iterable[ClaimRun], margins: Mapping[str, fragility.Margin | None] | None = None,
         full: Baseline | None = None) -> list[Row]:  # fmt: skip
    """Baseline rows of judged claims, sorted by id (each experiment's code version computed once;
    ``margins``: the runs' decision margins where the caller has them, else computed here; ``full``: the
    full-scale baseline that says which full-scale expectations are measured)."""
    versions: dict[str, str] = {}
    out = []
    runs = list(runs)
    margins = fragility.margins(runs) if margins is None else margins
    for run in runs:
        name = run.claim.experiment
        if name not in versions:
            versions[name] = registry.get(name).code_version
        out.append(row(run, versions[name], margins, full))
    return sorted(out, key=lambda r: r.id)


# -- the file ------------------------------------------------------------------------------------------


def dumps(rows_: Sequence[Row], scale: str) -> str:
    """The verdicts.json text: deterministic for the same rows (sorted keys and rows, rounded floats)."""
    document = {
        "format": BASELINE_FORMAT,
        "kind": "repro verdicts",
        "scale": scale,
        "claims": [r.model_dump(mode="json") for r in sorted(rows_, key=lambda r: r.id)],
    }
    return json.dumps(document, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def write(path: Path, rows_: Sequence[Row], scale: str) -> Path:
    """Write verdicts.json (see :func:`dumps`) to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dumps(rows_, scale).encode("utf-8"))
    return path


def read(path: Path) -> Baseline:
    """Read a verdicts.json or a report's results.json; BaselineError (exit 2) names the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: not UTF-8 text, so not a verdicts.json or results.json") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: not valid JSON: {exc}") from None
    return parse(document, origin=str(path))


def parse(document: Any, origin: str = "<document>") -> Baseline:
    """Rows from a parsed verdicts.json (``kind`` "repro verdicts") or results.json (``claims`` with ``status``)."""
    if not isinstance(document, dict) or not isinstance(document.get("claims"), list):
        raise BaselineError(f"{origin}: not a verdicts.json or results.json (no 'claims' list)")
    scale = document.get("scale")
    if scale not in SCALES:
        raise BaselineError(f"{origin}: field 'scale' must be one of {list(SCALES)}, got {scale!r}")
    is_baseline = document.get("kind") == "repro verdicts"
    if is_baseline and document.get("format") != BASELINE_FORMAT:
        raise BaselineError(f"{origin}: verdicts format {document.get('format')!r}; this repro reads {BASELINE_FORMAT}")
    out: dict[str, Row] = {}
    for index, entry in enumerate(document["claims"]):
        label = f"claim '{entry['id']}'" if isinstance(entry, dict) and "id" in entry else f"claim #{index + 1}"
        try:
            parsed = Row.model_validate(entry if is_baseline else _from_results(entry, scale))
        except (ValidationError, KeyError, TypeError, AttributeError) as exc:
            raise BaselineError(f"{origin}: {label}: {_problem(exc)}") from None
        if parsed.id in out:
            raise BaselineError(f"{origin}: {label}: listed twice")
        out[parsed.id] = parsed
    return Baseline(scale=scale, rows=out, origin=origin)


def _from_results(entry: Mapping[str, Any], scale: str) -> dict[str, Any]:
    """A results.json claim as a row's fields (no code version, no declared fields)."""
    v = entry["verdict"]
    return {
        "id": entry["id"], "scale": scale, "verdict": entry["status"],
        "expect": None if entry["status"] == "skipped" else entry.get("expect"),
        **{k: v.get(k) for k in ("estimate", "ci_low", "ci_high", "ci_level", "p_value", "p_opposite", "p_adjusted",
                                  "p_opposite_adjusted", "family", "ci_low_adjusted", "ci_high_adjusted",
                                  "ci_level_adjusted")},
        "alpha": v["alpha"], "family_size": v.get("family_size", 1), "test": v["test"], "n": v["n"],
        "seeds": len(entry["seeds"]), "code_version": None, "declared": None,
        "metrics_digest": entry.get("metrics_digest"),
    }  # fmt: skip


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"field '{'.'.join(map(str, e['loc'])) or '(row)'}': {e['msg']}" for e in exc.errors())
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return f"malformed ({exc})"


# -- diff ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    """One claim that differs between two baselines, and why (``reasons`` in plain words)."""

    id: str
    old: Row | None
    new: Row | None
    reasons: tuple[str, ...]

    @property
    def moved(self) -> bool:
        """The verdict moved, or the claim is only on one side: what fails ``repro diff``."""
        return self.old is None or self.new is None or self.old.verdict != self.new.verdict


def _crossed(old: Row, new: Row) -> bool:
    p_old, p_new = old.p_deciding, new.p_deciding
    return p_old is not None and p_new is not None and (p_old < old.alpha) != (p_new < new.alpha)


def _outside(old: Row, new: Row) -> bool:
    if new.estimate is None or old.ci_low is None or old.ci_high is None:
        return False
    return not old.ci_low <= new.estimate <= old.ci_high


def diff(old: Mapping[str, Row], new: Mapping[str, Row]) -> list[Delta]:
    """Every claim whose verdict moved, whose new estimate lies outside the old CI, whose deciding p
    (adjusted when present, else raw) crossed its alpha, or that is only on one side; sorted by id.

    A claim with none of these whose per-seed values differ (both sides carry a metrics digest, and
    they differ) is listed as "same verdict, different numbers": a numerics drift (another CPU, another
    library build) that has not moved a verdict yet. It does not fail a diff."""
    out = []
    for claim_id in sorted(set(old) | set(new)):
        a, b = old.get(claim_id), new.get(claim_id)
        if a is None or b is None:
            out.append(Delta(claim_id, a, b, ("only in new",) if a is None else ("only in old",)))
            continue
        reasons = []
        if a.verdict != b.verdict:
            reasons.append("verdict moved")
        if _outside(a, b):
            reasons.append("estimate outside the old CI")
        if _crossed(a, b):
            reasons.append("p crossed alpha")
        if not reasons and a.metrics_digest and b.metrics_digest and a.metrics_digest != b.metrics_digest:
            reasons.append("same verdict, different numbers")
        if reasons:
            out.append(Delta(claim_id, a, b, tuple(reasons)))
    return out


# -- pre-registration ------------------------------------------------------------------------------------


def preregistration_problems(claims: Iterable[Claim], committed: Baseline) -> list[str]:
    """Why the claims disagree with a committed baseline; empty when they agree.

    Each claim must be in the baseline; the baseline's verdict must equal what the claim expects at
    the baseline's scale ("skipped" where the claim skips it), and where one seed decides it (its
    decision margin) the claim declares it fragile at that scale; a declared field that differs from
    the baseline's, a note the baseline has seen and the claim lost, or seeds raised on the same root
    seed without a reason are :func:`repro.preregistration.problems`. A row the claims no longer declare
    is stale. Regenerate the baseline with ``repro report``.
    """
    problems = []
    seen = set()
    scale = committed.scale
    for claim in claims:
        seen.add(claim.id)
        entry = committed.rows.get(claim.id)
        if entry is None:
            problems.append(f"{claim.id}: not in the baseline {committed.origin} (run it and regenerate the baseline)")
            continue
        expected = "skipped" if claim.skipped(scale) else claim.expected(scale)
        if entry.verdict != expected:
            problems.append(
                f"{claim.id}: the baseline's {scale} verdict is {entry.verdict}, the claim expects {expected}"
            )
        margin = entry.margin or {}
        if entry.verdict == expected and margin.get("fragile") and not claim.fragile(scale):
            moved = f"{margin.get('leave_one_out')} of {margin.get('seeds')} seeds move it when left out"
            problems.append(
                f"{claim.id}: its expected {scale} verdict is fragile (one seed decides it: {moved}): give it the "
                f"seeds `repro plan` asks, or declare why it stays fragile in scales.{scale}.fragile"
            )
        problems.extend(preregistration.problems(claim, entry.declared, entry.notes))
    stale = sorted(set(committed.rows) - seen)
    problems.extend(f"{claim_id}: in the baseline, but no claims file declares it" for claim_id in stale)
    return problems

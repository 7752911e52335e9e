r"""Export judged verdicts for a paper to quote: ``repro export --format latex``.

The text defines ``\repro{<claim id>}{<field>}``, which expands to one stored value (a LaTeX error
names an unknown claim or field), and ``\reproclaimtable``, a ``tabular`` of every claim sorted by
id. It can be ``\input`` in the preamble or the body; it saves and restores the catcode of ``@``
(so it can also be read where ``@`` is already a letter). The values come from the same judged
claims the report shows (:func:`repro.judge.judge_all` on the store), formatted as the report's
page formats them: estimates, intervals and thresholds to 4 significant digits, p values to 2;
scientific form as ``\ensuremath{3.2\times10^{-5}}`` (text or math mode), a minus as ``-``, a
missing value as ``--``; text fields with LaTeX's special characters escaped.

Determinism: no date, no absolute path and no version, definitions and rows sorted by claim id, so
the same store gives byte-identical text (showyourwork's ``\variable`` is the precedent).

The interval fields (``low``, ``high``, ``interval``, ``level``) are the interval the verdict is
decided at: the one at the Holm level within the claim's family where the verdict has it, else the raw
one; the ``raw*`` fields are at the raw level. ``p`` is the p that decides (Holm-adjusted within the
family, else raw; a sequential claim's anytime p), ``rawp`` the raw p, ``evalue`` a sequential
claim's e-value against "the claim is false" (``--`` for a fixed-seed claim).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from repro.baseline import status_of
from repro.judge import ClaimRun
from repro.stats_verdict import Verdict, level_text

__all__ = ["FIELDS", "FORMATS", "claims_label", "escape", "latex", "number"]

#: The formats ``repro export`` writes (results.json stays the machine format).
FORMATS: tuple[str, ...] = ("latex",)

#: Each claim's fields, in the order they are defined.
FIELDS: tuple[str, ...] = (
    "verdict",
    "expect",
    "estimate",
    "low",
    "high",
    "interval",
    "level",
    "rawlow",
    "rawhigh",
    "rawinterval",
    "rawlevel",
    "seeds",
    "p",
    "rawp",
    "evalue",
    "alpha",
    "threshold",
    "metric",
    "statement",
)

#: A verdict's status (:func:`repro.baseline.status_of`) in words.
VERDICTS: dict[str, str] = {
    "reproduced": "reproduced",
    "not_reproduced": "not reproduced",
    "inconclusive": "inconclusive",
    "error": "error",
    "not_run": "not run",
    "skipped": "skipped",
}

MISSING = "--"

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "\n": " ",
    "\r": " ",
    "\t": " ",
}
_ESCAPES = str.maketrans(_SPECIAL)


def escape(text: str) -> str:
    """``text`` for LaTeX's text mode: every special character escaped, line breaks as spaces."""
    return text.translate(_ESCAPES)


def number(x: float | None, digits: int = 4) -> str:
    r"""``x`` to ``digits`` significant digits; ``--`` for None; scientific form in math:
    ``\ensuremath{3.2\times10^{-5}}``."""
    if x is None:
        return MISSING
    if math.isnan(x):
        return MISSING
    if math.isinf(x):
        return r"\ensuremath{\infty}" if x > 0 else r"\ensuremath{-\infty}"
    text = f"{x + 0.0:.{digits}g}"  # + 0.0: no "-0"
    if text == "-0":
        text = "0"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = rf"10^{{{int(exponent)}}}"
    return rf"\ensuremath{{{power}}}" if mantissa == "1" else rf"\ensuremath{{{mantissa}\times{power}}}"


def p_value(p: float | None) -> str:
    """A p value as the report's page shows it: 2 significant digits."""
    return number(p, digits=2)


def claims_label(path: str | Path, cwd: Path | None = None) -> str:
    """The claims path for the header: as given when relative; relative to ``cwd`` (the working
    directory) when it lies under it; else only its name (never an absolute path)."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to((cwd or Path.cwd()).resolve()).as_posix() or "."
    except ValueError:
        return path.name


def _interval(low: float | None, high: float | None, bounds: str | None) -> str:
    if low is None or high is None or bounds is None:
        return MISSING
    return f"{bounds[0]}{number(low)}, {number(high)}{bounds[1]}"


def _level(level: float | None, low: float | None) -> str:
    return MISSING if level is None or low is None else escape(level_text(level))


def _deciding(v: Verdict) -> tuple[float | None, float | None, str | None, float | None]:
    """(low, high, bounds, level) of the interval the verdict is decided at: the Holm level's, else the raw."""
    if v.ci_low_adjusted is not None and v.ci_high_adjusted is not None:
        return v.ci_low_adjusted, v.ci_high_adjusted, v.ci_bounds_adjusted or v.ci_bounds, v.ci_level_adjusted
    return v.ci_low, v.ci_high, v.ci_bounds, v.ci_level


def values(run: ClaimRun) -> dict[str, str]:
    """Every field of one judged claim, as LaTeX text (the keys are :data:`FIELDS`)."""
    claim, v = run.claim, run.verdict
    status = status_of(run)
    low, high, bounds, level = _deciding(v)
    metric = claim.metric if claim.at is None else f"{claim.metric} at {claim.at:g}"
    out = {
        "verdict": VERDICTS[status],
        "expect": MISSING if run.skipped else VERDICTS[run.expected],
        "estimate": number(v.estimate),
        "low": number(low),
        "high": number(high),
        "interval": _interval(low, high, bounds),
        "level": _level(level, low),
        "rawlow": number(v.ci_low),
        "rawhigh": number(v.ci_high),
        "rawinterval": _interval(v.ci_low, v.ci_high, v.ci_bounds),
        "rawlevel": _level(v.ci_level, v.ci_low),
        "seeds": MISSING if status in ("not_run", "skipped") else str(len(run.seeds)),
        "p": p_value(v.p_adjusted if v.p_adjusted is not None else v.p_value),
        "rawp": p_value(v.p_value),
        "evalue": MISSING if v.sequential is None else number(v.sequential.e_value),
        "alpha": number(v.alpha),
        "threshold": number(v.threshold),
        "metric": escape(metric),
        "statement": escape(claim.statement),
    }
    assert tuple(out) == FIELDS
    return out


_PREAMBLE = r"""\expandafter\edef\csname repro@restoreat\endcsname{\catcode64=\the\catcode64\relax}
\makeatletter
\providecommand*{\repro@unknown}[2]{%
  \PackageError{repro}{No value '\detokenize{#2}' for claim '\detokenize{#1}'}{%
    The claim id or the field is misspelt, or the claim is not in this export.}%
  \textbf{??}}
\providecommand*{\repro}[2]{%
  \ifcsname repro@#1@#2\endcsname
    \expandafter\@firstoftwo
  \else
    \expandafter\@secondoftwo
  \fi
  {\csname repro@#1@#2\endcsname}{\repro@unknown{#1}{#2}}}
"""


def latex(runs: Sequence[ClaimRun], scale: str, claims: str) -> str:
    r"""The LaTeX text of judged claims (``runs``, as :func:`repro.judge.judge_all` gives them) at ``scale``;
    ``claims``: the claims path as the header names it (:func:`claims_label`). The same runs give the same bytes.
    """
    ordered = sorted(runs, key=lambda r: r.claim.id)
    where = claims.replace("\n", " ").replace("\r", " ")
    lines = [
        f"% repro export --format latex: the verdicts of {len(ordered)} claims at {scale} scale, judged from the",
        f"% store with the claims in {where}. Generated: regenerate it rather than edit it.",
        "%",
        r"% \input this file (in the preamble or the body), then write \repro{<claim id>}{<field>} and",
        r"% \reproclaimtable (a tabular: claim, verdict, estimate, interval, seeds, p; sorted by claim id).",
        "% Fields: " + ", ".join(FIELDS) + ".",
        "% low, high, interval and level are the interval the verdict is decided at (at the Holm level within the",
        "% claim's family, else the raw one); rawlow, rawhigh, rawinterval and rawlevel are at the raw level.",
        "% p decides (Holm-adjusted within the family, else raw; anytime-valid for a sequential claim); rawp is",
        "% the raw p; evalue is a sequential claim's e-value. Estimates, intervals and thresholds to 4",
        "% significant digits, p to 2, as in the report; -- where there is no value.",
        _PREAMBLE.rstrip("\n"),
    ]
    for run in ordered:
        lines.append(f"% {run.claim.id}")
        for name, value in values(run).items():
            lines.append(rf"\expandafter\def\csname repro@{run.claim.id}@{name}\endcsname{{{value}}}")
    lines += [
        r"\providecommand*{\reproclaimtable}{}",
        r"\renewcommand*{\reproclaimtable}{%",
        r"  \begin{tabular}{llrlrr}",
        r"    \hline",
        r"    Claim & Verdict & Estimate & Interval & Seeds & \ensuremath{p} \\",
        r"    \hline",
    ]
    for run in ordered:
        cid = run.claim.id
        cells = [rf"\texttt{{{escape(cid)}}}"] + [
            rf"\repro{{{cid}}}{{{name}}}" for name in ("verdict", "estimate", "interval", "seeds", "p")
        ]
        lines.append("    " + " & ".join(cells) + r" \\")
    lines += [
        r"    \hline",
        r"  \end{tabular}}",
        r"\csname repro@restoreat\endcsname",
    ]
    return "\n".join(lines) + "\n"

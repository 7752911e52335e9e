"""A verdict's decision margin: how many seeds would have to change before the verdict moves.

A verdict that one seed decides is an accident of the seed list: leave that seed out, or let it land
on the other side of the threshold on another CPU, and the verdict moves. For a judged claim,
:func:`margin` finds

- ``leave_one_out``: the seeds whose leaving out alone moves the verdict (each re-decided with the
  claim's own test, and within its Holm family with the other members' p-values as they are);
- ``decides``: the fewest seeds whose removal moves the verdict: 1 when any single seed does, else
  seeds taken out one at a time, each time the one that brings the verdict nearest to moving, up to
  :data:`DEPTH` (None: the verdict held after that many);
- ``near``: the seeds within the claim's ``smallest_effect`` of its threshold (margin) where that
  effect is in the metric's units (t-type and signed-rank tests of a location or a paired
  difference); None where it is a share of seeds or not declared.

A verdict is *fragile* when one seed decides it. Sequential claims (whose verdict is the stop of an
e-process, not a test on a fixed seed list) and verdicts that are errors, skips or not run get none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from repro import stats
from repro.claim import Difference, Greater, Less
from repro.judge import ClaimRun, observations
from repro.plan import is_sign_test

__all__ = ["DEPTH", "Margin", "margin", "margins"]

#: How many seeds the greedy search takes out before it calls a verdict robust beyond that.
DEPTH = 3


@dataclass(frozen=True)
class Margin:
    """How far a verdict is from moving, in seeds (see the module's docstring)."""

    seeds: int
    leave_one_out: int
    decides: int | None
    near: int | None

    @property
    def fragile(self) -> bool:
        return self.decides == 1

    @property
    def label(self) -> str:
        if self.decides is None:
            return f"robust: more than {DEPTH} seeds decide"
        if self.decides == 1:
            which = "one seed" if self.leave_one_out == 1 else f"any of {self.leave_one_out} seeds"
            return f"fragile: {which} alone decides"
        return f"robust: {self.decides} seeds decide"

    def to_json(self) -> dict[str, int | bool | None]:
        return {"seeds": self.seeds, "leave_one_out": self.leave_one_out, "decides": self.decides,
                "near": self.near, "fragile": self.fragile}  # fmt: skip


@dataclass(frozen=True)
class _Family:
    """The other members' raw p-values and this claim's place among them, for Holm."""

    index: int
    p: list[float]
    p_opposite: list[float]
    name: str
    size: int


def _family(run: ClaimRun, members: Sequence[ClaimRun]) -> _Family | None:
    v = run.verdict
    if v.family is None or v.family_size <= 1:
        return None
    ids = [m.claim.id for m in members]
    if run.claim.id not in ids:
        return None
    index = ids.index(run.claim.id)

    def raw(m: ClaimRun, name: str) -> float:
        value = getattr(m.verdict, name)
        return 1.0 if value is None else float(value)

    pad = [1.0] * max(0, v.family_size - len(members))  # members not judged here count as p = 1, as in Holm's run
    return _Family(index, [raw(m, "p_value") for m in members] + pad, [raw(m, "p_opposite") for m in members] + pad,
                   v.family, v.family_size)  # fmt: skip


def _decide(run: ClaimRun, values: dict[str, np.ndarray], sweep: np.ndarray | None,
            family: _Family | None) -> stats.Verdict:  # fmt: skip
    verdict = stats.decide(run.claim.assertion, values, sweep)
    if family is None or verdict.outcome == "error" or verdict.p_value is None:
        return verdict
    p, p_opp = list(family.p), list(family.p_opposite)
    p[family.index], p_opp[family.index] = verdict.p_value, float(verdict.p_opposite or 1.0)
    adjusted, adjusted_opp = stats.holm(p), stats.holm(p_opp)
    return stats.adjust(verdict, p_adjusted=adjusted[family.index], p_opposite_adjusted=adjusted_opp[family.index],
                        family=family.name, family_size=family.size)  # fmt: skip


def _without(values: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {arm: array[keep] for arm, array in values.items()}


def _pressure(outcome: str, verdict: stats.Verdict) -> float:
    """How near ``verdict`` is to leaving ``outcome`` (larger is nearer): the p that keeps it there."""
    p = verdict.p_adjusted if verdict.p_adjusted is not None else verdict.p_value
    p_opp = verdict.p_opposite_adjusted if verdict.p_opposite_adjusted is not None else verdict.p_opposite
    p, p_opp = (1.0 if p is None else p), (1.0 if p_opp is None else p_opp)
    if outcome == "reproduced":
        return p
    if outcome == "not_reproduced":
        return p_opp
    return -min(p, p_opp)


def _near(run: ClaimRun, values: dict[str, np.ndarray]) -> int | None:
    a, delta = run.claim.assertion, run.claim.smallest_effect
    if delta is None or is_sign_test(run.claim) or getattr(a, "method", None) not in ("t", "wilcoxon"):
        return None
    if isinstance(a, (Greater, Less)) and values["main"].ndim == 1:
        return int(np.sum(np.abs(values["main"] - a.threshold) <= delta))
    if isinstance(a, Difference) and a.paired and values[a.a].ndim == 1:
        signed = a.margin if a.direction == "greater" else -a.margin
        return int(np.sum(np.abs(values[a.a] - values[a.b] - signed) <= delta))
    return None


def margin(run: ClaimRun, members: Sequence[ClaimRun] = ()) -> Margin | None:
    """The decision margin of a judged claim; ``members``: its Holm family's judged runs (itself among them)."""
    outcome = run.verdict.outcome
    if run.claim.sequential is not None or run.skipped or outcome == "error" or not run.complete:
        return None
    values, sweep = observations(run.claim, run.results)
    n = len(run.seeds)
    family = _family(run, members)
    keep = np.ones(n, dtype=bool)
    flips, decides = 0, None
    for depth in range(1, DEPTH + 1):
        best, best_pressure = -1, -np.inf
        for i in np.flatnonzero(keep):
            trial = keep.copy()
            trial[i] = False
            verdict = _decide(run, _without(values, trial), sweep, family)
            if verdict.outcome == "error":  # bad data without this seed (no spread left): says nothing
                continue
            if verdict.outcome != outcome:
                flips += depth == 1
                decides = depth
                if depth > 1:
                    break
                continue
            pressure = _pressure(outcome, verdict)
            if pressure > best_pressure:
                best, best_pressure = int(i), pressure
        if decides is not None or best < 0:
            break
        keep[best] = False
    return Margin(seeds=n, leave_one_out=flips, decides=decides, near=_near(run, values))


def margins(runs: Sequence[ClaimRun]) -> dict[str, Margin | None]:
    """claim id -> its margin, each family's members taken from ``runs``."""
    families: dict[str, list[ClaimRun]] = {}
    for run in runs:
        if run.verdict.family is not None:
            families.setdefault(run.verdict.family, []).append(run)
    return {run.claim.id: margin(run, families.get(run.verdict.family or "", [])) for run in runs}

"""Judging claims from the store: per-claim verdicts, then the family's multiple-comparison correction.

A claim's verdict is decided by its Holm-adjusted p, within its family (``family`` in the claim;
by default the claims of one source in one claims file, e.g. ``tms.zroe1``: one paper's claims about
one question; controls are judged alone). The correction needs every member's
p, so a claim is judged with its family: :func:`judge` reads all members from the store. A member
without results (not run, failed, skipped is excluded) counts as p = 1, which can only raise the
others' adjusted p (Holm is monotone in every p): a partly run family never reproduces more.

Judging reads only the store and runs nothing; :mod:`repro.runner` computes.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence

from repro import stats
from repro.claim import Claim
from repro.load import ClaimSet
from repro.runner import ClaimRun, evaluate
from repro.store import Store

__all__ = ["correct", "family_members", "judge", "judge_all"]


def _families(claim_set: ClaimSet, scale: str) -> dict[str, list[Claim]]:
    """Every family at ``scale``: the claims not skipped there and not controls, in file order."""
    families: dict[str, list[Claim]] = defaultdict(list)
    for claim in claim_set:
        family = claim_set.family(claim)
        if family is not None and not claim.skipped(scale):
            families[family].append(claim)
    return families


def family_members(claim: Claim, claim_set: ClaimSet, scale: str) -> list[Claim]:
    """The claims tested together with ``claim`` at this scale (itself included), in file order."""
    family = claim_set.family(claim)
    if family is None or claim.skipped(scale):
        return [claim]
    return _families(claim_set, scale)[family]


def correct(runs: Sequence[ClaimRun], claim_set: ClaimSet, scale: str) -> list[ClaimRun]:
    """Holm within each family; members absent from ``runs`` or without a p count as p = 1.

    An inconclusive verdict then reports its planning figure where the claim declares a smallest_effect.
    """
    by_id = {run.claim.id: run for run in runs}
    holm: dict[str, tuple[float, float, str, int]] = {}  # claim id -> (p, opposite p, family, size)
    for family, members in _families(claim_set, scale).items():
        ids = [c.id for c in members]
        p = stats.holm([_p(by_id.get(i), "p_value") for i in ids])
        p_opp = stats.holm([_p(by_id.get(i), "p_opposite") for i in ids])
        holm.update((i, (p[k], p_opp[k], family, len(ids))) for k, i in enumerate(ids))
    out = []
    for run in runs:
        verdict, size = run.verdict, 1
        if run.claim.id in holm:
            p, p_opp, family, size = holm[run.claim.id]
            verdict = stats.adjust(verdict, p_adjusted=p, p_opposite_adjusted=p_opp, family=family, family_size=size)
        figure = _plan_figure(run, size) if verdict.outcome == "inconclusive" else None
        if figure is not None:
            message = verdict.message.replace(verdict.shortfall, figure) if verdict.shortfall else verdict.message
            verdict = verdict.model_copy(update={"shortfall": figure, "message": message})
        out.append(dataclasses.replace(run, verdict=verdict))
    return out


def _plan_figure(run: ClaimRun, family_size: int) -> str | None:
    """The planning figure an inconclusive verdict reports (never observed power), where one exists."""
    if run.claim.smallest_effect is None or not run.complete:
        return None
    from repro.plan import plan_claim
    from repro.runner import observations

    values, sweep = observations(run.claim, run.results)
    plan = plan_claim(run.claim, values, sweep, family_size)
    if plan.seeds.get(0.8) is None:
        return None
    return f"{plan.figure()}, against {run.verdict.units} now"


def _p(run: ClaimRun | None, name: str) -> float:
    value = None if run is None else getattr(run.verdict, name)
    return 1.0 if value is None else float(value)


def judge_all(claims: Iterable[Claim], scale: str, store: Store, claim_set: ClaimSet) -> list[ClaimRun]:
    """Every given claim judged from the store, each within its whole family (members read as needed)."""
    chosen = list(claims)
    needed: dict[str, Claim] = {}
    for claim in chosen:
        for member in family_members(claim, claim_set, scale):
            needed.setdefault(member.id, member)
    runs = correct([evaluate(c, scale, store) for c in needed.values()], claim_set, scale)
    by_id = {run.claim.id: run for run in runs}
    return [by_id[c.id] for c in chosen]


def judge(claim: Claim, scale: str, store: Store, claim_set: ClaimSet) -> ClaimRun:
    """One claim judged from the store within its family."""
    return judge_all([claim], scale, store, claim_set)[0]

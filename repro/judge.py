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

from collections import defaultdict
from collections.abc import Iterable, Sequence

from repro import stats
from repro.claim import Claim
from repro.load import ClaimSet
from repro.runner import ClaimRun, evaluate
from repro.store import Store

__all__ = ["correct", "family_members", "family_of", "judge", "judge_all"]


def family_of(claim: Claim, claim_set: ClaimSet) -> str | None:
    """The claim's multiple-comparison family, or None for a control (judged alone)."""
    return claim_set.family(claim)


def family_members(claim: Claim, claim_set: ClaimSet, scale: str) -> list[Claim]:
    """The claims tested together with ``claim`` at this scale (itself included), in file order."""
    family = family_of(claim, claim_set)
    if family is None or claim.skipped(scale):
        return [claim]
    return [c for c in claim_set if not c.skipped(scale) and family_of(c, claim_set) == family]


def correct(runs: Sequence[ClaimRun], claim_set: ClaimSet, scale: str) -> list[ClaimRun]:
    """Holm within each family; members absent from ``runs`` or without a p count as p = 1."""
    by_id = {run.claim.id: run for run in runs}
    families: dict[str, list[Claim]] = defaultdict(list)
    for claim in claim_set:
        family = family_of(claim, claim_set)
        if family is not None and not claim.skipped(scale):
            families[family].append(claim)
    out = []
    for run in runs:
        family = family_of(run.claim, claim_set)
        v = run.verdict
        if family is None or run.skipped or v.p_value is None or v.p_opposite is None:
            out.append(_with_plan(run, 1))
            continue
        members = families[family]
        p = [_p(by_id.get(c.id), "p_value") for c in members]
        p_opp = [_p(by_id.get(c.id), "p_opposite") for c in members]
        i = [c.id for c in members].index(run.claim.id)
        adjusted, adjusted_opp = stats.holm(p)[i], stats.holm(p_opp)[i]
        corrected = stats.adjust(v, p_adjusted=adjusted, p_opposite_adjusted=adjusted_opp, family=family,
                                 family_size=len(members), shortfall=_plan_figure(run, len(members)))  # fmt: skip
        out.append(ClaimRun(run.claim, run.scale, corrected, run.seeds, run.results, run.computed, run.wall_s))
    return out


def _plan_figure(run: ClaimRun, family_size: int) -> str | None:
    """The planning figure an inconclusive verdict reports (never observed power), where one exists."""
    if run.claim.smallest_effect is None or run.verdict.outcome == "error" or not run.complete:
        return None
    from repro.plan import plan_claim
    from repro.runner import observations

    values, sweep = observations(run.claim, run.results)
    plan = plan_claim(run.claim, values, sweep, family_size)
    if plan.seeds.get(0.8) is None:
        return None
    return f"{plan.figure()}, against {run.verdict.units} now"


def _with_plan(run: ClaimRun, family_size: int) -> ClaimRun:
    figure = None if run.verdict.outcome != "inconclusive" else _plan_figure(run, family_size)
    if figure is None:
        return run
    v = run.verdict
    message = v.message.replace(v.shortfall, figure) if v.shortfall else v.message
    verdict = v.model_copy(update={"shortfall": figure, "message": message})
    return ClaimRun(run.claim, run.scale, verdict, run.seeds, run.results, run.computed, run.wall_s)


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

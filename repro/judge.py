"""Judging claims from the store: per-claim verdicts, then the family's multiple-comparison correction.

A claim's verdict is decided by its Holm-adjusted p, within its family (``family`` in the claim;
by default the claims of one source in one claims file, e.g. ``tms.zroe1``: one paper's claims about
one question; controls are judged alone). The correction needs every member's
p, so a claim is judged with its family: :func:`judge` reads all members from the store. A member
without results (not run, failed, skipped is excluded) counts as p = 1, which can only raise the
others' adjusted p (Holm is monotone in every p): a partly run family never reproduces more.

Judging reads only the store and runs nothing; :mod:`repro.runner` computes. :class:`ClaimRun` (a
claim judged at one scale, with the stored results it rests on) and :func:`evaluate` (one claim's
verdict from the store) live here, used by the runner, the report, the pytest items and the CLI.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydantic import BaseModel

from repro import registry, stats
from repro.claim import Claim, Trend
from repro.load import ClaimSet, resolve_params
from repro.stats_interval import with_holm_interval
from repro.stats_verdict import deciding_alpha, holm_levels
from repro.store import Observed, Store, StoredResult, result_key

__all__ = [
    "ClaimRun",
    "SequentialState",
    "correct",
    "evaluate",
    "evaluate_sequential",
    "family_members",
    "judge",
    "judge_all",
    "keys_of",
    "observations",
    "replicate_seeds",
    "seeds_wanted",
    "sequential_state",
]


def replicate_seeds(root: int, n: int) -> list[int]:
    """Replicate seeds from numpy's SeedSequence.spawn: seed i does not change when n grows."""
    children = np.random.SeedSequence(root).spawn(n)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in children]


@dataclass
class ClaimRun:
    """A claim judged at one scale: the verdict and the stored results it rests on."""

    claim: Claim
    scale: str
    verdict: stats.Verdict
    seeds: list[int]
    results: dict[str, list[StoredResult]] = field(default_factory=dict)
    computed: int = 0
    wall_s: float = 0.0

    @classmethod
    def failed(cls, claim: Claim, scale: str, message: str, *, wall_s: float = 0.0, computed: int = 0) -> ClaimRun:
        """The claim judged 'error' without reading the store: a failed experiment or job, or a skipped scale."""
        seeds = replicate_seeds(claim.seed, claim.n_seeds(scale))
        verdict = stats.error_verdict(claim.assertion, message)
        return cls(claim, scale, verdict, seeds, wall_s=wall_s, computed=computed)

    @property
    def skipped(self) -> str | None:
        """Why the claim is not run at this scale (declared ``skip``), or None."""
        return self.claim.skipped(self.scale)

    @property
    def expected(self) -> str:
        return self.claim.expected(self.scale)

    @property
    def as_expected(self) -> bool:
        """The verdict equals the expected one; a declared skip expects nothing and is never a failure."""
        return self.skipped is not None or self.verdict.outcome == self.expected

    @property
    def complete(self) -> bool:
        return all(len(r) == len(self.seeds) for r in self.results.values()) and bool(self.results)

    @property
    def metrics_digest(self) -> str | None:
        """sha256 (16 hex digits) of every stored per-seed value the verdict reads, bit for bit (floats by
        repr), arm by arm in seed order; None without results. Two runs with the same digest computed the
        same numbers; the same verdict with another digest is the same verdict on different numbers."""
        if not self.results or not any(self.results.values()):
            return None
        exact = {
            arm: [[r.seed, _exact(_select(self.claim, r))] for r in results]
            for arm, results in sorted(self.results.items())
        }
        text = json.dumps(exact, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def runtime_s(self) -> float:
        """Compute time behind the stored results (each call's wall time shared by its seeds)."""
        total = 0.0
        for results in self.results.values():
            for r in results:
                n_in_call = max(1, len(r.provenance.get("seeds_in_call", [r.seed])))
                total += r.provenance.get("call_wall_time_s", r.runtime_s) / n_in_call
        return total

    def failure_text(self) -> str:
        v = self.verdict
        ci = "n/a" if v.ci_low is None else f"[{v.ci_low:.4g}, {v.ci_high:.4g}] ({v.ci_level:.0%} {v.ci_method})"
        p = "n/a" if v.p_value is None else f"{v.p_value:.3g}"
        est = "n/a" if v.estimate is None else f"{v.estimate:.4g}"
        return (
            f"{self.claim.id} [{self.scale}]: expected {self.expected}, got {v.outcome}\n"
            f"  statement: {self.claim.statement}\n"
            f"  metric:    {self.claim.metric}" + (f" at {self.claim.at:g}" if self.claim.at is not None else "") + "\n"
            f"  estimate:  {est}  CI {ci}  threshold {v.threshold}\n"
            f"  test:      {v.test}  p = {p}  alpha = {v.alpha}  n = {v.n}\n"
            f"  why:       {v.message}"
        )


def keys_of(claim: Claim, scale: str, seeds: Sequence[int]) -> dict[str, tuple[BaseModel, list[str]]]:
    """arm -> (its resolved params, the store keys of ``seeds``) at ``scale``."""
    experiment = registry.get(claim.experiment)
    version = experiment.code_version
    keyed = {}
    for arm in claim.arm_names():
        params = resolve_params(claim, scale, arm)
        dumped = params.model_dump(mode="json")
        keyed[arm] = (params, [result_key(experiment.name, version, dumped, s) for s in seeds])
    return keyed


def _exact(value: Any) -> Any:
    """Floats as their repr (every bit, NaN and infinities included), lists element by element."""
    if isinstance(value, (list, tuple)):
        return [_exact(v) for v in value]
    return repr(float(value))


def _select(claim: Claim, result: Observed) -> float | list[float]:
    value = result.metrics[claim.metric]
    if claim.at is None or not isinstance(value, list):
        return value
    if len(result.sweep) != 1:
        raise ValueError(f"claim {claim.id}: 'at' needs an experiment with one sweep axis, got {list(result.sweep)}")
    axis, points = next(iter(result.sweep.items()))
    matches = [i for i, x in enumerate(points) if math.isclose(x, claim.at, rel_tol=1e-9, abs_tol=1e-12)]
    if len(matches) != 1:
        raise ValueError(f"claim {claim.id}: at = {claim.at} is not a point of the sweep {axis} = {points}")
    return value[matches[0]]


def observations(
    claim: Claim, results: Mapping[str, Sequence[Observed]]
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-arm arrays for stats.decide: (n_seeds,) scalars, or (n_seeds, K) along the sweep."""
    values: dict[str, np.ndarray] = {}
    sweep = None
    for arm, arm_results in results.items():
        rows = [_select(claim, r) for r in arm_results]
        array = np.asarray(rows, dtype=float)
        if array.ndim == 2 and array.shape[1] == 1 and not isinstance(claim.assertion, Trend):
            array = array[:, 0]
        values[arm] = array
        if arm_results and arm_results[0].sweep:
            sweep = np.asarray(next(iter(arm_results[0].sweep.values())), dtype=float)
    return values, sweep


def evaluate(
    claim: Claim, scale: str, store: Store, *, wall_s: float = 0.0, computed: int = 0, family_size: int = 1
) -> ClaimRun:
    """Judge a claim from stored results alone; missing seeds make it 'error' (not run).

    A claim whose scale declares ``skip`` is judged on nothing: its verdict says why it is not run.
    A sequential claim is judged on the stored prefix of its seeds up to its stop
    (:func:`evaluate_sequential`; ``family_size`` sets its bar).
    """
    if claim.skipped(scale):
        message = f"skipped at scale {scale}: {claim.skipped(scale)}"
        return ClaimRun.failed(claim, scale, message, wall_s=wall_s, computed=computed)
    if claim.sequential is not None:
        return evaluate_sequential(claim, scale, store, family_size, wall_s=wall_s, computed=computed)
    seeds = replicate_seeds(claim.seed, claim.n_seeds(scale))
    keyed = keys_of(claim, scale, seeds)
    results: dict[str, list[StoredResult]] = {}
    for arm, (_, keys) in keyed.items():
        loaded = [store.load(claim.experiment, k) for k in keys]
        results[arm] = [r for r in loaded if r is not None]
    run = ClaimRun(claim, scale, verdict=None, seeds=seeds, results=results, computed=computed, wall_s=wall_s)  # type: ignore[arg-type]
    missing = sum(len(seeds) - len(r) for r in results.values())
    if missing:
        run.verdict = stats.error_verdict(
            claim.assertion, f"not run: {missing} of {len(seeds) * len(results)} results missing at scale {scale}"
        )
        return run
    try:
        values, sweep = observations(claim, results)
        run.verdict = stats.decide(claim.assertion, values, sweep)
    except (ValueError, KeyError) as exc:
        run.verdict = stats.error_verdict(claim.assertion, str(exc))
    return run


# -- sequential claims ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SequentialState:
    """A sequential claim's stored prefix and the decision on it (None: undecided so far)."""

    seeds: list[int]  # every seed the claim may spend (max_seeds), in spawn order
    results: dict[str, list[StoredResult]]  # arm -> the stored prefix, the same length in every arm
    stopped_at: int | None  # seeds up to the decision, when a side has crossed its bar
    decision: object | None  # repro.sequential.SequentialDecision on the stored prefix
    batch: int  # seeds computed between two looks
    error: str | None = None  # the prefix cannot be judged (a value outside the bounds, NaN, ...): stopped

    @property
    def stored(self) -> int:
        return min((len(r) for r in self.results.values()), default=0)

    @property
    def wanted(self) -> int:
        """Seeds the next step of the run needs stored: what is there when decided or every seed is
        stored, else the stored prefix rounded up to the next whole batch, at most max_seeds."""
        cap = len(self.seeds)
        if self.stopped_at is not None or self.stored >= cap:
            return self.stored
        return min(cap, (self.stored // self.batch + 1) * self.batch)


def sequential_state(claim: Claim, scale: str, store: Store, family_size: int = 1) -> SequentialState:
    """Read the longest stored prefix of a sequential claim's seeds and decide on it.

    The decision is the first seed at which either e-process's running maximum exceeds
    ``family_size / alpha`` (Ville's inequality makes any such stop valid), so it does not depend on
    how many further seeds other claims or runs have stored: the verdict is the same however the
    seeds were computed.
    """
    from repro import sequential

    assert claim.sequential is not None
    design = claim.sequential
    seeds = replicate_seeds(claim.seed, claim.n_seeds(scale))
    results: dict[str, list[StoredResult]] = {}
    for arm, (_, keys) in keys_of(claim, scale, seeds).items():
        prefix = []
        for key in keys:
            loaded = store.load(claim.experiment, key)
            if loaded is None:
                break
            prefix.append(loaded)
        results[arm] = prefix
    n = min((len(r) for r in results.values()), default=0)
    results = {arm: r[:n] for arm, r in results.items()}
    if n < 2:
        return SequentialState(seeds, results, None, None, design.batch)
    try:  # data no e-process can read stop this claim's run as an error; other claims run on
        values, sweep = observations(claim, results)
        path = sequential.sequential_path(
            claim.assertion, values, sweep, method=design.method, bounds=design.bounds, sigma=design.sigma
        )
    except (ValueError, KeyError) as exc:
        return SequentialState(seeds, results, n, None, design.batch, error=str(exc).strip("'\""))
    decision = sequential.decide_sequential(path, claim.assertion.alpha, level_divisor=family_size)
    stopped = decision.stopped_at if decision.outcome != "inconclusive" else None
    return SequentialState(seeds, results, stopped, decision, design.batch)


def seeds_wanted(claim: Claim, scale: str, store: Store, family_size: int = 1) -> int:
    """How many of a sequential claim's seeds the next step of its run needs in the store
    (:attr:`SequentialState.wanted`)."""
    return sequential_state(claim, scale, store, family_size).wanted


def evaluate_sequential(
    claim: Claim, scale: str, store: Store, family_size: int = 1, *, wall_s: float = 0.0, computed: int = 0
) -> ClaimRun:
    """A sequential claim's verdict from its stored prefix: decided at its stop, inconclusive when every
    seed is spent undecided, 'not run' while the run has more seeds to spend; 'error' where the data
    contradict the method's assumption (a value outside betting's bounds, a spread above
    subgaussian's sigma, both e-processes crossed) or cannot be read, never a pass."""
    assert claim.sequential is not None
    design, alpha = claim.sequential, claim.assertion.alpha
    state = sequential_state(claim, scale, store, family_size)
    cap = len(state.seeds)
    run = ClaimRun(claim, scale, verdict=None, seeds=state.seeds, results=state.results, computed=computed,  # type: ignore[arg-type]
                   wall_s=wall_s)  # fmt: skip
    if state.stopped_at is None and state.stored < cap:
        run.verdict = stats.error_verdict(
            claim.assertion,
            f"not run: the sequential run is undecided after {state.stored} of at most {cap} seeds at scale {scale}",
        )
        return run
    if state.error is not None:
        run.verdict = stats.error_verdict(
            claim.assertion, f"{state.error} (sequential {design.method}, {state.stored} seeds stored at scale {scale})"
        )
        return run
    from repro.sequential import SequentialDecision  # loaded already, by sequential_state

    d = state.decision
    assert isinstance(d, SequentialDecision), "decided, or every seed (at least 2) stored: the prefix was decided on"
    used = state.stopped_at or cap
    run.seeds = state.seeds[:used]
    run.results = {arm: r[:used] for arm, r in state.results.items()}
    bar = family_size / alpha
    if d.outcome == "error":  # the stop is void: the verdict keeps the record of where and why
        record = stats.SequentialRecord(
            method=design.method, batch=design.batch, max_seeds=cap, seeds_used=used, e_value=d.e_value,
            e_opposite=d.e_opposite, bar=bar, stopped=f"void after {used} of at most {cap} seeds: {d.reason}",
        )  # fmt: skip
        verdict = stats.error_verdict(claim.assertion, d.reason)
        test = f"anytime-valid {design.method} e-process (testing by betting)"
        run.verdict = verdict.model_copy(update={"test": test, "sequential": record, "n": used, "units": used})
        return run
    values, sweep = observations(claim, run.results)
    # The estimate and what the claim tests, in words, from the fixed test of the same estimand:
    # the median under the sign e-process, the mean under betting or a sub-Gaussian boundary.
    assertion = claim.assertion
    if hasattr(assertion, "method"):
        assertion = assertion.model_copy(update={"method": "sign" if design.method == "sign" else "t"})
    fixed = stats.decide(assertion, values, sweep)
    if state.stopped_at is not None:
        side = "against 'the claim is false'" if d.outcome == "reproduced" else "against 'the claim holds'"
        e = d.e_value if d.outcome == "reproduced" else d.e_opposite
        stopped = f"an e-value {side} reached {e:.3g} > {bar:.3g} after {used} of at most {cap} seeds"
    else:
        stopped = (f"every seed spent: after {cap} seeds the e-values are {d.e_value:.3g} and {d.e_opposite:.3g} "
                   f"(opposite), neither above {bar:.3g}")  # fmt: skip
    record = stats.SequentialRecord(
        method=design.method, batch=design.batch, max_seeds=cap, seeds_used=used, e_value=d.e_value,
        e_opposite=d.e_opposite, bar=bar, stopped=stopped,
    )  # fmt: skip
    p, p_opp = min(1.0, d.p_anytime), min(1.0, d.p_opposite_anytime)
    # A median's confidence sequence has no finite bound until enough seeds agree: no interval then.
    finite = math.isfinite(d.cs_low) and math.isfinite(d.cs_high)
    low, high = (float(d.cs_low), float(d.cs_high)) if finite else (None, None)
    # Only a stop decides: undecided, the anytime p is above the bar (fewer seeds than min_seeds aside,
    # which stay inconclusive as in every kind); both sides crossed is an error above, never a pass.
    outcome = d.outcome if state.stopped_at is not None else "inconclusive"
    label = {"reproduced": "Reproduced", "not_reproduced": "Not reproduced", "inconclusive": "Inconclusive"}[outcome]
    run.verdict = fixed.model_copy(update={
        "outcome": outcome, "test": f"anytime-valid {design.method} e-process (testing by betting)",
        "ci_low": low, "ci_high": high, "ci_method": f"time-uniform confidence sequence ({design.method})",
        "p_value": p, "p_opposite": p_opp, "p_adjusted": None, "p_opposite_adjusted": None,
        "shortfall": "" if outcome != "inconclusive" else f"raise the seeds (max_seeds, now {cap}) to let it run on",
        "message": f"{label}: {fixed.tested}: {stopped}.", "sequential": record,
    })  # fmt: skip
    return run


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
    The interval at the Holm level that decides is set beside the raw one (a fixed-seed claim with
    its results): at the level of the member's Holm step (:func:`repro.stats_verdict.holm_levels`),
    the claim's when it reproduces, the opposite's when it does not, the smaller when neither, so it
    excludes the threshold exactly when the adjusted verdict does (up to the seed floor).
    """
    by_id = {run.claim.id: run for run in runs}
    # claim id -> (p, opposite p, family, size, claim's Holm level, opposite's Holm level)
    holm: dict[str, tuple[float, float, str, int, float, float]] = {}
    for family, members in _families(claim_set, scale).items():
        ids = [c.id for c in members]
        raw, raw_opp = [_p(by_id.get(i), "p_value") for i in ids], [_p(by_id.get(i), "p_opposite") for i in ids]
        ps, ps_opp = stats.holm(raw), stats.holm(raw_opp)
        alphas = [c.assertion.alpha for c in members]
        levels, levels_opp = holm_levels(raw, alphas), holm_levels(raw_opp, alphas)
        holm.update((i, (ps[k], ps_opp[k], family, len(ids), levels[k], levels_opp[k])) for k, i in enumerate(ids))
    out = []
    for run in runs:
        verdict, size = run.verdict, 1
        # The planning figure is a fixed-n power calculation: a sequential claim reports its stop instead.
        fixed = run.claim.sequential is None
        if run.claim.id in holm:
            p, p_opp, family, size, level, level_opp = holm[run.claim.id]
            verdict = stats.adjust(verdict, p_adjusted=p, p_opposite_adjusted=p_opp, family=family, family_size=size)
            if fixed and run.complete and verdict.outcome != "error" and verdict.ci_low is not None:
                values, sweep = observations(run.claim, run.results)
                alpha_j = deciding_alpha(verdict.outcome, level, level_opp)
                verdict = with_holm_interval(verdict, run.claim.assertion, values, sweep, alpha_j)
        figure = _plan_figure(run, size) if verdict.outcome == "inconclusive" and fixed else None
        if figure is not None:
            message = verdict.message.replace(verdict.shortfall, figure) if verdict.shortfall else verdict.message
            verdict = verdict.model_copy(update={"shortfall": figure, "message": message})
        out.append(replace(run, verdict=verdict))
    return out


def _plan_figure(run: ClaimRun, family_size: int) -> str | None:
    """The planning figure an inconclusive verdict reports (never observed power), where one exists."""
    if run.claim.smallest_effect is None or not run.complete:
        return None
    from repro.plan import plan_claim

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
    sizes = {c.id: claim_set.family_size(c, scale) for c in needed.values()}
    runs = correct([evaluate(c, scale, store, family_size=sizes[c.id]) for c in needed.values()], claim_set, scale)
    by_id = {run.claim.id: run for run in runs}
    return [by_id[c.id] for c in chosen]


def judge(claim: Claim, scale: str, store: Store, claim_set: ClaimSet) -> ClaimRun:
    """One claim judged from the store within its family."""
    return judge_all([claim], scale, store, claim_set)[0]

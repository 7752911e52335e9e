"""Seeds needed before a run: power at the claim's declared ``smallest_effect``, never at the observed one.

A plan answers "how many seeds does this claim need to decide, if the effect is at least the
smallest one worth detecting?" for 80 % and 95 % power. It plans at alpha / m, where m is the
size of the claim's Holm family: Holm's first step, so the claim decides whatever its family does.
The spread (standard deviation) is read from stored results of the claim's setting (a pilot run,
usually the ci scale's); the effect is the declared one, so this is a planning figure and not
"observed power", which only restates the p-value.

Closed forms where the test has one: the t-tests (statsmodels' power solvers), TOST (each of its
two one-sided t-tests at (1 + power) / 2), the exact binomial test over seeds. The sign tests
(``method = "sign"``, per-seed fractions of cells, per-seed rho) are exact binomial power at
q = P(a seed lies strictly beyond the threshold), and there ``smallest_effect`` is stated on that
scale, as q - 1/2 (0.4: nine seeds in ten beyond): the sign test's power depends on q alone, and the
metrics it is chosen for (counts, AUROCs piled at 1.0, fractions, a failure mode in some seeds) are
exactly those whose spread says nothing about q through a normal shape. The signed-rank test uses
the t-test's n over its efficiency 3/pi (0.955); Monte Carlo permutation tests use the t-test's n.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.power import TTestIndPower, TTestPower

from repro.claim import Claim, Difference, Equivalent, Proportion, Trend, is_sign_test, min_seeds

__all__ = ["POWERS", "Plan", "plan_claim", "seeds_for_power"]

POWERS = (0.8, 0.95)
_MAX_SEEDS = 10_000


@dataclass(frozen=True)
class Plan:
    """Seeds for each power in :data:`POWERS`, or why there is no figure."""

    claim_id: str
    test: str
    alpha: float
    planning_alpha: float
    family_size: int
    smallest_effect: float | None
    spread: float | None
    seeds: dict[float, int | None]
    how: str
    note: str = ""

    def figure(self) -> str:
        """One phrase for an inconclusive verdict: the planning figure, or what is missing for one."""
        if self.seeds.get(POWERS[0]) is None:
            return self.note or "no plan"
        return (
            f"the plan gives {self.seeds[POWERS[0]]} seeds for {POWERS[0]:.0%} power at smallest_effect "
            f"{self.smallest_effect:g} (alpha {self.planning_alpha:.3g}; {self.how})"
        )


def _spread(claim: Claim, values: dict[str, np.ndarray], sweep: np.ndarray | None) -> float | None:
    """The per-seed standard deviation behind the claim's test (of the differences, for paired arms)."""
    a = claim.assertion
    if isinstance(a, (Difference, Equivalent)):
        x, y = values.get(a.a), values.get(a.b)
        if x is None or y is None or x.size < 2 or y.size < 2:
            return None
        if a.paired and x.shape == y.shape:
            return float(np.std(x - y, ddof=1))
        return float(math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2))
    x = values.get("main")
    if x is None or x.shape[0] < 2:
        return None
    if isinstance(a, Trend) and sweep is not None and x.ndim == 2:
        from repro.stats_exact import _spearman  # the same rho the test uses

        centred = stats.rankdata(sweep) - (sweep.size + 1) / 2
        return float(np.std(_spearman(x, centred), ddof=1))
    if isinstance(a, Proportion) and x.ndim == 2:
        return None  # the per-seed fraction's spread depends on the predicate: planned on the fraction scale
    return float(np.std(x, ddof=1)) if x.ndim == 1 else None


def _sign_seeds(q: float, alpha: float, power: float) -> int | None:
    """Smallest n whose exact one-sided sign test reaches ``power`` when each seed is beyond w.p. q."""
    return _binomial_seeds(0.5, q, alpha, power)


def _binomial_seeds(p0: float, p1: float, alpha: float, power: float) -> int | None:
    """Smallest n for the exact binomial test of "fraction > p0" to reach ``power`` at fraction p1.

    An exact test's power is saw-toothed in n (the critical count moves in whole steps, so 16 seeds
    can have less power than 14), so this is the smallest n from which every n up to twice it also
    reaches the power: adding seeds to a planned run never loses it.
    """
    if p1 <= p0 or p1 > 1:
        return None
    last_short = 0  # the largest n so far whose test falls short of the power
    for n in range(1, 2 * _MAX_SEEDS + 1):
        # The test rejects from c seeds beyond, the smallest c with P(X >= c | p0) < alpha.
        c = int(stats.binom.isf(alpha, n, p0)) + 1
        if stats.binom.sf(c - 1, n, p0) >= alpha:  # isf's boundary: P(X >= c) equal to alpha
            c += 1
        if c > n or stats.binom.sf(c - 1, n, p1) < power:
            last_short = n
        if n % 2 == 0 and last_short < n // 2:
            return n // 2 if n // 2 <= _MAX_SEEDS else None
    return None


def _t_seeds(effect: float, alpha: float, power: float, *, paired: bool = True) -> int | None:
    if not math.isfinite(effect) or effect <= 0:
        return None
    solver = TTestPower() if paired else TTestIndPower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # solver chatter; a failure just means no figure
        try:
            solved = solver.solve_power(effect_size=effect, alpha=alpha, power=power, alternative="larger")
            n = float(np.squeeze(solved))
        except (ValueError, ArithmeticError, RuntimeError):
            return None
    return math.ceil(n) if math.isfinite(n) and n < _MAX_SEEDS else None


def seeds_for_power(claim: Claim, spread: float | None, power: float, alpha: float,
                    cells: bool = False) -> tuple[int | None, str]:  # fmt: skip
    """(seeds, how) for one power; seeds None when no figure exists (no effect declared, no spread).

    ``cells``: a proportion claim reads several cells per seed (decided on per-seed fractions).
    """
    a, delta = claim.assertion, claim.smallest_effect
    if delta is None:
        return None, "no smallest_effect declared"
    method = getattr(a, "method", None)
    if isinstance(a, Proportion) and not cells:
        return _binomial_seeds(a.min_fraction, a.min_fraction + delta, alpha, power), "exact binomial power"
    if (isinstance(a, Proportion) and cells) or is_sign_test(claim):
        # delta is the share of seeds beyond the threshold (min_fraction, min_rho) above one half.
        q = 0.5 + delta
        return _sign_seeds(q, alpha, power), f"exact sign-test power at q = 1/2 + smallest_effect = {q:g}"
    if spread is None:
        return None, "no stored results to read the spread from: run the claim once at any scale"
    if spread == 0:
        return min_seeds(alpha), "every stored seed equal: the sign test's floor"
    effect = delta / spread
    if isinstance(a, Equivalent):
        n = _t_seeds(a.margin / spread, alpha, 1 - (1 - power) / 2, paired=a.paired)
        return n, "TOST: each one-sided t-test at (1 + power) / 2, true difference 0"
    paired = not (isinstance(a, Difference) and not a.paired)
    n = _t_seeds(effect, alpha, power, paired=paired)
    if method == "wilcoxon" and n is not None:
        return math.ceil(n / (3 / math.pi)), "t-test power over the signed-rank test's efficiency 3/pi"
    label = "t-test power (statsmodels)" + ("" if paired else ", seeds per arm")
    return n, label + (" as an approximation of the permutation test" if method == "permutation" else "")


def plan_claim(claim: Claim, values: dict[str, np.ndarray] | None, sweep: np.ndarray | None,
               family_size: int = 1) -> Plan:  # fmt: skip
    """The plan for one claim, with the spread read from ``values`` (stored per-seed results) if any."""
    from repro.stats_verdict import _primary_test

    a = claim.assertion
    planning_alpha = a.alpha / family_size
    spread = _spread(claim, values, sweep) if values else None
    cells = values is not None and bool(values) and "main" in values and values["main"].ndim == 2
    seeds: dict[float, int | None] = {}
    how, note = "", ""
    for power in POWERS:
        n, how = seeds_for_power(claim, spread, power, planning_alpha, cells)
        seeds[power] = None if n is None else max(n, min_seeds(a.alpha))
        if n is None:
            note = how
    return Plan(
        claim_id=claim.id, test=_primary_test(a), alpha=a.alpha, planning_alpha=planning_alpha,
        family_size=family_size, smallest_effect=claim.smallest_effect, spread=spread, seeds=seeds, how=how,
        note=note,
    )  # fmt: skip

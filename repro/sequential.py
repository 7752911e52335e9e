"""Anytime-valid verdicts for seeds run in batches: e-processes (testing by betting) and confidence sequences.

Why: a claim that runs seeds in batches and looks after each batch is optionally stopping, and a
fixed-n test applied at every look rejects a true null far more often than alpha (docs/statistics.md
measures it). An e-process E_t is nonnegative with E_0 = 1 and is dominated by a supermartingale under
H0, so Ville's inequality gives P(sup_t E_t >= 1/alpha) <= alpha: stopping at the first seed where
E_t >= 1/alpha errs at most alpha whatever the stopping rule, and 1 / sup E is a p-value valid at any
time (Ramdas, Grünwald, Vovk & Shafer 2023). As in :mod:`repro.stats` each claim gets two one-sided
e-processes, the claim's (H0: the claim is false) and the opposite (H0: the claim holds), and a
confidence sequence (CS) that is the set of thresholds at which neither has crossed 1/alpha (each
bound at alpha, two-sided 1 - 2*alpha, running intersection over seeds).

Constructions (``method``), on y = the per-seed value signed by the claim's direction:

- ``sign`` (no assumption; default): B_i = 1 when seed i is strictly beyond the threshold (a seed on
  it counts against the claim, as the fixed sign test). Claim side H0: P(B = 1) <= p0; opposite side
  H0: P(B = 1) >= p0 (:func:`repro.stats.sign_test`'s second p: ties count for it). Each is the mean
  over 20 alternatives q of the likelihood ratio prod (q/p0)^B ((1-q)/(1-p0))^(1-B), i.e. of constant
  bets prod (1 + lambda (B - p0)), lambda = (q - p0) / (p0 (1 - p0)) in (0, 1/p0) (resp. (-1/(1-p0), 0)):
  every factor has mean <= 1 under the whole composite H0. p0 = 1/2; p0 = min_fraction for a proportion
  with one value per seed. CS: order statistics for a median, bisection on p for a fraction.
- ``betting`` (the claim states bounds [lo, hi]): Waudby-Smith & Ramdas' (2024) capital process on the
  metric rescaled to [0, 1], with their predictable plug-in bets lambda_t = sqrt(2 log(1/alpha) /
  (sigma_hat^2_{t-1} t log(1 + t))) truncated at c/m (c = 1/2: every factor >= 1/2). Claim side H0:
  mean <= threshold; opposite H0: mean >= threshold; log(1/alpha), not their log(2/alpha), as each side
  is one-sided at alpha. CS: inversion on a grid of 500 means (the capital falls as m rises).
- ``subgaussian`` (the claim states sigma, a sub-Gaussian scale of one seed's value): the one-sided
  normal mixture of Howard, Ramdas, McAuliffe & Sekhon (2021), M_t = int_{lambda >= 0} exp(lambda S_t -
  lambda^2 V_t / 2) dF(lambda), S_t = sum (y_i - threshold), V_t = sigma^2 t, F half-normal of variance
  rho; closed form 2 (1 + rho V)^(-1/2) exp(rho S^2 / (2 (1 + rho V))) Phi(S / sqrt(V + 1/rho)). rho =
  (-2 log alpha + log(1 - 2 log alpha)) / (15 sigma^2), their rule for the tightest boundary at V =
  15 sigma^2: near 15 seeds. CS: the means where neither one-sided mixture has crossed. A decision
  is checked against the declared sigma (:func:`spread_violation`): seeds that spread more make it
  ``error``, as does any path on which both sides crossed (:func:`decide_sequential`).

References: Waudby-Smith, I. & Ramdas, A. (2024) "Estimating means of bounded random variables by
betting", JRSS-B 86(1); Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021) "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2); Ramdas, A., Grünwald, P.,
Vovk, V. & Shafer, G. (2023) "Game-theoretic statistics and safe anytime-valid inference", Statist. Sci. 38(4).

E-values are computed in log space and reported capped at 1e300 (every alpha decides long before).
This module maps each kind onto the constructions and scans for the stop; the constructions
themselves (e-processes and CS on signed values) are in :mod:`repro.sequential_constructions`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

from repro.claim import Difference, Equivalent, Greater, Less, Proportion, Trend, min_seeds
from repro.sequential_constructions import _bernoulli_log_e, _Context, _fraction_edge, _running
from repro.sequential_constructions import _mixture_log_e as _mixture_log_e  # re-exported, as before the split
from repro.sequential_constructions import _rho as _rho  # re-exported, as before the split
from repro.stats_exact import _spearman
from repro.stats_verdict import holm

__all__ = [
    "METHODS",
    "SPREAD_LEVEL",
    "SequentialDecision",
    "SequentialPath",
    "decide_sequential",
    "holm_anytime",
    "sequential_path",
    "spread_violation",
]

METHODS = ("sign", "betting", "subgaussian")
SPREAD_LEVEL = 0.1  # level of the check that a subgaussian claim's seeds spread no more than its sigma
_LOG_E_MAX = math.log(1e300)


@dataclass(frozen=True)
class SequentialPath:
    """The e-processes and CS after each seed 1..n (seed order is the time axis); plain floats.

    ``cs_low`` / ``cs_high`` are -inf / inf while a median has no bound yet. ``values`` and ``sigma``
    are set for ``subgaussian`` only: the per-seed values the e-processes read (a paired difference's
    a - b) and the declared scale, which :func:`decide_sequential` checks at its stop."""

    e_claim: list[float]
    e_opposite: list[float]
    cs_low: list[float]
    cs_high: list[float]
    estimand: str
    values: list[float] | None = None
    sigma: float | None = None


@dataclass(frozen=True)
class SequentialDecision:
    """Where the scan over seeds stopped, and why."""

    outcome: str
    stopped_at: int
    reason: str
    e_value: float
    e_opposite: float
    p_anytime: float
    p_opposite_anytime: float
    cs_low: float
    cs_high: float


def sequential_path(assertion: Any, values: Mapping[str, np.ndarray], sweep: np.ndarray | None = None, *,
                    method: str = "sign", bounds: tuple[float, float] | None = None,
                    sigma: float | None = None) -> SequentialPath:  # fmt: skip
    """E-processes and CS of ``assertion`` on ``values`` (as :func:`repro.stats.decide`; seeds in order).

    Proportion and trend are sign-type whatever ``method`` says (their per-seed values are counts,
    fractions or ranks); ``bounds`` and ``sigma`` are read only by the method that needs them. For a
    difference or equivalence, ``bounds`` are the metric's (the difference lies in [lo - hi, hi - lo])
    and ``sigma`` is the scale of one seed's paired difference a - b. Raises ValueError on NaN or inf,
    a value outside ``bounds`` (naming each such value, its arm and seed), unpaired arms, or a missing
    ``bounds`` / ``sigma``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    log_c = -math.log(assertion.alpha)
    arms: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    if isinstance(assertion, Proportion):
        return _proportion(assertion, values, log_c)
    if isinstance(assertion, Trend):
        return _trend(assertion, values, sweep, log_c)
    if isinstance(assertion, (Greater, Less)):
        x, sign = _arm(values, "main", 1), 1 if isinstance(assertion, Greater) else -1
        thr, name = assertion.threshold, "median" if method == "sign" else "mean"
        arms, names = (x,), ("main",)
    elif isinstance(assertion, (Difference, Equivalent)):
        if not assertion.paired:
            raise ValueError("sequential mode needs paired arms: seed i of both arms is one observation")
        arms, names = (_arm(values, assertion.a, 1), _arm(values, assertion.b, 1)), (assertion.a, assertion.b)
        if arms[0].shape != arms[1].shape:
            raise ValueError(f"paired arms have shapes {arms[0].shape} and {arms[1].shape}")
        x, name = arms[0] - arms[1], f"{'median' if method == 'sign' else 'mean'} difference a - b"
        sign = -1 if isinstance(assertion, Difference) and assertion.direction == "less" else 1
        thr = assertion.margin
    else:
        raise TypeError(f"not an assertion model: {type(assertion).__name__}")
    ctx = _Context(method, log_c, _bounds(bounds, arms, names) if method == "betting" else None, _sigma(sigma, method))
    if ctx.bounds is not None and len(arms) == 2:  # a difference of two metrics in [lo, hi]
        ctx = _Context(method, log_c, (ctx.bounds[0] - ctx.bounds[1], ctx.bounds[1] - ctx.bounds[0]), None)
    if isinstance(assertion, Equivalent):
        path = _equivalent(x, assertion.margin, ctx, name)
    else:
        claim, opposite = ctx.claim(sign * x, sign * thr, sign), ctx.opposite(sign * x, sign * thr, sign)
        low, high = ctx.cs(sign * x, sign)
        if sign < 0:
            low, high = -high, -low
        path = _path(claim, opposite, low, high, name)
    if ctx.sigma is None:
        return path
    return replace(path, values=[float(v) for v in x], sigma=ctx.sigma)  # the stop checks sigma on them


def decide_sequential(path: SequentialPath, alpha: float, *, level_divisor: int = 1,
                      max_seeds: int | None = None,
                      spread_level: float = SPREAD_LEVEL) -> SequentialDecision:  # fmt: skip
    """Scan seeds 1..n and stop at the first where sup e_claim >= level_divisor/alpha (reproduced) or
    sup e_opposite >= level_divisor/alpha (not reproduced); level_divisor = m is Bonferroni-safe in a
    family of m claims. As every fixed-n kind, nothing decides on fewer than
    :func:`repro.claim.min_seeds` (alpha / level_divisor) seeds (a later stop is still a stopping time).

    Outcome ``error`` (never a pass) where the data contradict the method's assumption: both sides
    crossed by the stop (at most alpha when the assumption holds: one of the two nulls is true), or,
    for ``subgaussian``, a decision on seeds whose spread exceeds the declared sigma (one-sided
    chi-square test of the sample variance on the seeds up to the stop, at ``spread_level``; see
    :func:`spread_violation`). An undecided path is not checked: it shows nothing either way.
    """
    if not 0.0 < alpha < 1.0 or level_divisor < 1 or (max_seeds is not None and max_seeds < 1):
        raise ValueError(f"need 0 < alpha < 1, level_divisor >= 1, max_seeds >= 1; got {alpha}, "
                         f"{level_divisor}, {max_seeds}")  # fmt: skip
    if not 0.0 <= spread_level < 1.0:
        raise ValueError(f"need 0 <= spread_level < 1 (0: no check); got {spread_level}")
    n = len(path.e_claim)
    if n == 0 or not all(len(v) == n for v in (path.e_opposite, path.cs_low, path.cs_high)):
        raise ValueError("a path needs equally long, non-empty lists")
    horizon = n if max_seeds is None else min(n, max_seeds)
    c, first = level_divisor / alpha, min_seeds(alpha / level_divisor)
    e_run, o_run = np.maximum.accumulate(path.e_claim[:horizon]), np.maximum.accumulate(path.e_opposite[:horizon])
    crossed = np.flatnonzero(((e_run >= c) | (o_run >= c)) & (np.arange(1, horizon + 1) >= first))
    t = int(crossed[0]) + 1 if crossed.size else horizon
    e, o = float(e_run[t - 1]), float(o_run[t - 1])
    level = f"{level_divisor}/alpha = {c:g}"
    if t < first:
        outcome, reason = (
            "inconclusive",
            f"{t} seeds, fewer than the {first} any kind needs at alpha {alpha / level_divisor:g}",
        )
    elif e >= c and o >= c:
        outcome = "error"
        reason = (
            f"both the claim's and the opposite e-process crossed 1/alpha: the data contradict the method's "
            f"assumption (e-values {e:.3g} / {o:.3g} >= {level} by seed {t})"
        )
    elif e >= c:
        outcome, reason = "reproduced", f"e-value {e:.3g} >= {level} after {t} seeds"
    elif o >= c:
        outcome, reason = "not_reproduced", f"opposite e-value {o:.3g} >= {level} after {t} seeds"
    else:
        spent = f"max_seeds {max_seeds} spent" if max_seeds is not None and n >= max_seeds else f"all {n} seeds used"
        outcome, reason = "inconclusive", f"{spent}, e-values {e:.3g} / {o:.3g} below {c:g}"
    if outcome in ("reproduced", "not_reproduced") and path.values is not None and path.sigma is not None:
        violated = spread_violation(path.values[:t], path.sigma, spread_level)
        if violated:
            outcome, reason = "error", f"{violated} (the e-processes had decided: {reason})"
    return SequentialDecision(
        outcome=outcome, stopped_at=t, reason=reason, e_value=e, e_opposite=o,
        p_anytime=min(1.0, 1 / max(e, 1e-300)), p_opposite_anytime=min(1.0, 1 / max(o, 1e-300)),
        cs_low=float(path.cs_low[t - 1]), cs_high=float(path.cs_high[t - 1]),
    )  # fmt: skip


def spread_violation(values: Sequence[float], sigma: float, level: float = SPREAD_LEVEL) -> str | None:
    """Why ``values`` contradict a sub-Gaussian scale ``sigma``, or None: the one-sided chi-square test
    of H0: sd <= sigma, (n - 1) s^2 / sigma^2 against chi2(n - 1), rejects at ``level`` (0: never).

    Why this test: sub-Gaussian with scale sigma implies variance <= sigma^2, so a sample sd well above
    sigma contradicts the assumption the e-process rests on. The chi-square test is exact for normal
    values with sd = sigma, and conservative for sd below it; a value with variance exactly sigma^2
    that is sub-Gaussian with scale sigma has kurtosis at most 3 (expand its moment generating
    function), so its sample variance varies less than a normal's and the test stays near or below
    ``level``. docs/statistics.md measures how often it fires and what it leaves through.
    """
    x = np.asarray(values, dtype=float)
    if level <= 0.0 or x.size < 2:
        return None
    sd = float(np.std(x, ddof=1))
    p = float(stats.chi2.sf((x.size - 1) * sd**2 / sigma**2, x.size - 1))
    if p >= level:
        return None
    return (f"the seeds' spread contradicts the claim's sigma = {sigma:g}: their sd is {sd:.3g} over {x.size} "
            f"seeds ({sd / sigma:.2g} sigma; chi-square test of sd <= sigma, p = {p:.2g} < {level:g}); "
            "declare a sigma at least the sd of one seed's value, or use method 'sign'")  # fmt: skip


def holm_anytime(p_values: Sequence[float]) -> list[float]:
    """Holm's adjustment of anytime-valid p-values (:func:`repro.stats.holm`).

    Why it is valid: Holm is closed testing with Bonferroni local tests, so it controls the
    family-wise error under arbitrary dependence given only that each true null's p satisfies
    P(p <= u) <= u. For p = min(1, 1 / sup_{t <= tau} E_t) that holds at any random time tau, a
    stopping time or not, claim by claim (each may stop at its own seed): P(sup_{t <= tau} E_t >= 1/u)
    <= P(sup_t E_t >= 1/u) <= u by Ville's inequality.
    """
    ps = [float(p) for p in p_values]
    return [float(p) for p in holm(ps)]


# -- the kinds ------------------------------------------------------------------------------------
def _proportion(a: Proportion, values: Mapping[str, np.ndarray], log_c: float) -> SequentialPath:
    """One value per seed: the Bernoulli e-processes at p0 = min_fraction and their CS for the fraction;
    cells per seed: the sign e-processes on each seed's fraction against min_fraction (p0 = 1/2)."""
    x = _arm(values, "main", None)
    if x.ndim not in (1, 2):
        raise ValueError(f"arm 'main' must have shape (n_seeds,) or (n_seeds, K); got shape {x.shape}")
    op, v, tol = a.predicate.op, a.predicate.value, a.predicate.tolerance
    # the predicate as repro.stats applies it (inline there)
    hits = {
        ">": x > v, ">=": x >= v, "<": x < v, "<=": x <= v,
        "==": np.abs(x - v) <= tol, "!=": np.abs(x - v) > tol,
    }[op]  # fmt: skip
    if x.ndim == 2:
        f = hits.mean(axis=1)  # (n_seeds,) per-seed fraction of cells
        ctx = _Context("sign", log_c, None, None)
        low, high = ctx.cs(f, 1)
        return _path(ctx.claim(f, a.min_fraction, 1), ctx.opposite(f, a.min_fraction, 1), np.clip(low, 0, 1),
                     np.clip(high, 0, 1), "median per-seed fraction of cells")  # fmt: skip
    k, s = np.cumsum(hits), np.arange(1, hits.size + 1)
    low, high = _running(_fraction_edge(k, s, log_c, 1), _fraction_edge(k, s, log_c, -1))
    p0 = a.min_fraction
    return _path(_bernoulli_log_e(k, s, p0, 1), _bernoulli_log_e(k, s, p0, -1), low, high, "fraction of seeds")


def _trend(a: Trend, values: Mapping[str, np.ndarray], sweep: np.ndarray | None, log_c: float) -> SequentialPath:
    """Each seed's Spearman rho along the sweep (signed by direction, as repro.stats), sign-tested against min_rho."""
    y = _arm(values, "main", 2)
    s = np.asarray(sweep, dtype=float) if sweep is not None else None
    if s is None or s.shape != (y.shape[1],) or s.size < 2 or not np.all(np.isfinite(s)) or np.all(s == s[0]):
        raise ValueError(f"a trend needs finite, not all equal sweep coordinates of shape ({y.shape[1]},)")
    rho = np.round((1 if a.direction == "increasing" else -1) * _spearman(y, stats.rankdata(s) - (s.size + 1) / 2), 12)
    ctx = _Context("sign", log_c, None, None)
    low, high = ctx.cs(rho, 1)
    return _path(ctx.claim(rho, a.min_rho, 1), ctx.opposite(rho, a.min_rho, 1), np.clip(low, -1, 1),
                 np.clip(high, -1, 1), "median per-seed rho")  # fmt: skip


def _equivalent(d: np.ndarray, m: float, ctx: _Context, name: str) -> SequentialPath:
    """Intersection-union: equivalence is shown when both "d > -m" and "d < m" have crossed, so the
    claim's path is the smaller of their running maxima (its crossing is a valid test, though it is
    not itself an e-process). The opposite, "beyond -m or beyond +m", is the average of the two
    one-sided e-processes, itself an e-process under equivalence (where both nulls hold)."""
    inside = np.minimum(np.maximum.accumulate(ctx.claim(d, -m, 1)), np.maximum.accumulate(ctx.claim(-d, -m, -1)))
    beyond = np.logaddexp(ctx.claim(-d, m, -1), ctx.claim(d, m, 1)) - math.log(2.0)
    return _path(inside, beyond, ctx.cs(d, 1)[0], -ctx.cs(-d, -1)[0], name)


# -- helpers --------------------------------------------------------------------------------------
def _path(claim: np.ndarray, opposite: np.ndarray, low: np.ndarray, high: np.ndarray, name: str) -> SequentialPath:
    def e(log_e: np.ndarray) -> list[float]:
        return [float(v) for v in np.exp(np.minimum(log_e, _LOG_E_MAX))]

    return SequentialPath(e(claim), e(opposite), [float(v) for v in low], [float(v) for v in high], name)


def _arm(values: Mapping[str, np.ndarray], key: str, ndim: int | None) -> np.ndarray:
    if key not in values:
        raise ValueError(f"values has no arm {key!r}; it has {sorted(values)}")
    x = np.asarray(values[key], dtype=float)
    if (ndim is not None and x.ndim != ndim) or x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"arm {key!r} must have {ndim or 'one or two'} dimension(s) and a seed; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"arm {key!r} holds NaN or inf (a failed or diverged run)")
    return x


def _bounds(
    bounds: tuple[float, float] | None, arms: tuple[np.ndarray, ...], names: tuple[str, ...]
) -> tuple[float, float]:
    """The checked bounds; every value outside them is named (value, arm, 1-based seed), the first 10 in full."""
    if bounds is None or len(bounds) != 2 or not all(map(math.isfinite, bounds)) or not bounds[0] < bounds[1]:
        raise ValueError(f"method 'betting' needs the metric's bounds (lo, hi), finite with lo < hi; got {bounds}")
    lo, hi = float(bounds[0]), float(bounds[1])
    outside = [(float(x[i]), arm, int(i) + 1) for x, arm in zip(arms, names, strict=True)
               for i in np.flatnonzero((x < lo) | (x > hi))]  # fmt: skip
    if outside:
        shown = ", ".join(f"{v:g} (arm '{arm}', seed {i})" for v, arm, i in outside[:10])
        more = f" and {len(outside) - 10} more" if len(outside) > 10 else ""
        what = "value lies" if len(outside) == 1 else f"{len(outside)} values lie"
        raise ValueError(f"{what} outside the claim's bounds [{lo:g}, {hi:g}], the range method 'betting' "
                         f"assumes: {shown}{more}")  # fmt: skip
    return lo, hi


def _sigma(sigma: float | None, method: str) -> float | None:
    if method != "subgaussian":
        return None
    if sigma is None or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"method 'subgaussian' needs sigma, a finite sub-Gaussian scale > 0; got {sigma}")
    return float(sigma)

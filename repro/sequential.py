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
  15 sigma^2: near 15 seeds. CS: the means where neither one-sided mixture has crossed.

References: Waudby-Smith, I. & Ramdas, A. (2024) "Estimating means of bounded random variables by
betting", JRSS-B 86(1); Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021) "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2); Ramdas, A., Grünwald, P.,
Vovk, V. & Shafer, G. (2023) "Game-theoretic statistics and safe anytime-valid inference", Statist. Sci. 38(4).

E-values are computed in log space and reported capped at 1e300 (every alpha decides long before).
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from repro.claim import Difference, Equivalent, Greater, Less, Proportion, Trend, min_seeds
from repro.stats import _spearman, holm

__all__ = ["METHODS", "SequentialDecision", "SequentialPath", "decide_sequential", "holm_anytime", "sequential_path"]

METHODS = ("sign", "betting", "subgaussian")
_GRID = 20  # alternatives q of the sign e-process
_CS_GRID = 500  # candidate means of the betting CS
_BET_CAP = 0.5  # c of Waudby-Smith & Ramdas' truncation lambda <= c/m
_TARGET_SEEDS = 15  # the normal-mixture boundary is tightest here
_EPS = 1e-12
_LOG_E_MAX = math.log(1e300)


@dataclass(frozen=True)
class SequentialPath:
    """The e-processes and CS after each seed 1..n (seed order is the time axis); plain floats.

    ``cs_low`` / ``cs_high`` are -inf / inf while a median has no bound yet."""

    e_claim: list[float]
    e_opposite: list[float]
    cs_low: list[float]
    cs_high: list[float]
    estimand: str


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
    a value outside ``bounds``, unpaired arms, or a missing ``bounds`` / ``sigma``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    log_c = -math.log(assertion.alpha)
    if isinstance(assertion, Proportion):
        return _proportion(assertion, values, log_c)
    if isinstance(assertion, Trend):
        return _trend(assertion, values, sweep, log_c)
    if isinstance(assertion, (Greater, Less)):
        x, sign = _arm(values, "main", 1), 1 if isinstance(assertion, Greater) else -1
        thr, name = assertion.threshold, "median" if method == "sign" else "mean"
        arms = (x,)
    elif isinstance(assertion, (Difference, Equivalent)):
        if not assertion.paired:
            raise ValueError("sequential mode needs paired arms: seed i of both arms is one observation")
        arms = (_arm(values, assertion.a, 1), _arm(values, assertion.b, 1))
        if arms[0].shape != arms[1].shape:
            raise ValueError(f"paired arms have shapes {arms[0].shape} and {arms[1].shape}")
        x, name = arms[0] - arms[1], f"{'median' if method == 'sign' else 'mean'} difference a - b"
        sign = -1 if isinstance(assertion, Difference) and assertion.direction == "less" else 1
        thr = assertion.margin
    else:
        raise TypeError(f"not an assertion model: {type(assertion).__name__}")
    ctx = _Context(method, log_c, _bounds(bounds, arms) if method == "betting" else None, _sigma(sigma, method))
    if ctx.bounds is not None and len(arms) == 2:  # a difference of two metrics in [lo, hi]
        ctx = _Context(method, log_c, (ctx.bounds[0] - ctx.bounds[1], ctx.bounds[1] - ctx.bounds[0]), None)
    if isinstance(assertion, Equivalent):
        return _equivalent(x, assertion.margin, ctx, name)
    claim, opposite = ctx.claim(sign * x, sign * thr, sign), ctx.opposite(sign * x, sign * thr, sign)
    low, high = ctx.cs(sign * x, sign)
    if sign < 0:
        low, high = -high, -low
    return _path(claim, opposite, low, high, name)


def decide_sequential(path: SequentialPath, alpha: float, *, level_divisor: int = 1,
                      max_seeds: int | None = None) -> SequentialDecision:  # fmt: skip
    """Scan seeds 1..n and stop at the first where sup e_claim >= level_divisor/alpha (reproduced) or
    sup e_opposite >= level_divisor/alpha (not reproduced); level_divisor = m is Bonferroni-safe in a
    family of m claims. As every fixed-n kind, nothing decides on fewer than
    :func:`repro.claim.min_seeds` (alpha / level_divisor) seeds (a later stop is still a stopping time).
    Both sides crossed at the same seed (probability at most 2 alpha) is inconclusive, never a pass.
    """
    if not 0.0 < alpha < 1.0 or level_divisor < 1 or (max_seeds is not None and max_seeds < 1):
        raise ValueError(f"need 0 < alpha < 1, level_divisor >= 1, max_seeds >= 1; got {alpha}, "
                         f"{level_divisor}, {max_seeds}")  # fmt: skip
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
        outcome, reason = "inconclusive", f"both e-values crossed {level} by seed {t} ({e:.3g} / {o:.3g})"
    elif e >= c:
        outcome, reason = "reproduced", f"e-value {e:.3g} >= {level} after {t} seeds"
    elif o >= c:
        outcome, reason = "not_reproduced", f"opposite e-value {o:.3g} >= {level} after {t} seeds"
    else:
        spent = f"max_seeds {max_seeds} spent" if max_seeds is not None and n >= max_seeds else f"all {n} seeds used"
        outcome, reason = "inconclusive", f"{spent}, e-values {e:.3g} / {o:.3g} below {c:g}"
    return SequentialDecision(
        outcome=outcome, stopped_at=t, reason=reason, e_value=e, e_opposite=o,
        p_anytime=min(1.0, 1 / max(e, 1e-300)), p_opposite_anytime=min(1.0, 1 / max(o, 1e-300)),
        cs_low=float(path.cs_low[t - 1]), cs_high=float(path.cs_high[t - 1]),
    )  # fmt: skip


def holm_anytime(p_values: Sequence[float]) -> list[float]:
    """Holm's adjustment of anytime-valid p-values (:func:`repro.stats.holm`).

    Why it is valid: Holm is closed testing with Bonferroni local tests, so it controls the
    family-wise error under arbitrary dependence given only that each true null's p satisfies
    P(p <= u) <= u. For p = min(1, 1 / sup_{t <= tau} E_t) that holds at any random time tau, a
    stopping time or not, claim by claim (each may stop at its own seed): P(sup_{t <= tau} E_t >= 1/u)
    <= P(sup_t E_t >= 1/u) <= u by Ville's inequality.
    """
    ps = [float(p) for p in p_values]
    return [float(p) for p in holm(ps)]  # type: ignore[arg-type]


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


# -- the three constructions, on signed values y (claim: location of y above thr) -----------------
@dataclass(frozen=True)
class _Context:
    method: str
    log_c: float
    bounds: tuple[float, float] | None  # of the unsigned values
    sigma: float | None

    def _lohi(self, sign: int) -> tuple[float, float]:
        lo, hi = self.bounds  # type: ignore[misc]
        return (lo, hi) if sign > 0 else (-hi, -lo)

    def claim(self, y: np.ndarray, thr: float, sign: int) -> np.ndarray:
        """log e-process of H0: location of y <= thr (sign: P(y > thr) <= 1/2)."""
        if self.method == "sign":
            return _bernoulli_log_e(np.cumsum(y > thr), np.arange(1, y.size + 1), 0.5, 1)
        if self.method == "betting":
            lo, hi = self._lohi(sign)
            return _betting_log_e((y - lo) / (hi - lo), np.array([(thr - lo) / (hi - lo)]), self.log_c)[:, 0]
        return _mixture_log_e(np.cumsum(y - thr), np.arange(1, y.size + 1), self.sigma, self.log_c)  # type: ignore[arg-type]

    def opposite(self, y: np.ndarray, thr: float, sign: int) -> np.ndarray:
        """log e-process of H0: location of y >= thr (sign: P(y > thr) >= 1/2, ties for it, as repro.stats)."""
        if self.method == "sign":
            return _bernoulli_log_e(np.cumsum(y > thr), np.arange(1, y.size + 1), 0.5, -1)
        return self.claim(-y, -thr, -sign)

    def cs(self, y: np.ndarray, sign: int) -> tuple[np.ndarray, np.ndarray]:
        """Running-intersection CS of y's location: the thresholds where neither side has crossed."""
        if self.method == "sign":
            return _median_bounds(y, self.log_c)
        t = np.arange(1, y.size + 1)
        if self.method == "subgaussian":
            b = _mixture_boundary(_capacity(y.size), self.sigma, self.log_c)[: y.size] / t  # type: ignore[arg-type]
            mean = np.cumsum(y) / t
            return _running(mean - b, mean + b)
        lo, hi = self._lohi(sign)
        z, grid = (y - lo) / (hi - lo), np.linspace(0.0, 1.0, _CS_GRID)
        rejected = (_betting_log_e(z, grid, self.log_c) >= self.log_c) | (
            _betting_log_e(1 - z, 1 - grid, self.log_c) >= self.log_c
        )
        low, high = _grid_hull(~np.logical_or.accumulate(rejected, axis=0), grid)
        return lo + (hi - lo) * low, lo + (hi - lo) * high


def _bernoulli_log_e(k: Any, s: Any, p0: Any, side: int) -> np.ndarray:
    """log of the mean over q of prod (q/p0)^B ((1-q)/(1-p0))^(1-B) after s draws with k ones.

    side +1: q in (p0, 1), H0 P(B=1) <= p0 (p0 raised to 1e-12: a larger p0 only widens H0);
    side -1: q in (0, p0), H0 P(B=1) >= p0 (p0 lowered to 1 - 1e-12). A null that holds for every
    distribution (p0 >= 1 resp. p0 <= 0) gets the trivial e-process 1."""
    p0 = np.asarray(p0, dtype=float)
    f = np.arange(1, _GRID + 1) / (_GRID + 1)
    if side > 0:  # q = p + (1 - p) f: q/p = 1 + (1 - p) f / p, (1 - q)/(1 - p) = 1 - f
        trivial, p = p0 >= 1.0, np.clip(p0, _EPS, 1.0)[..., None]
        hit, miss = np.log1p((1 - p) * f / p), np.log1p(-f)
    else:  # q = p (1 - f): q/p = 1 - f, (1 - q)/(1 - p) = 1 + p f / (1 - p)
        trivial, p = p0 <= 0.0, np.clip(p0, 0.0, 1.0 - _EPS)[..., None]
        hit, miss = np.log1p(-f), np.log1p(p * f / (1 - p))
    k, s = np.asarray(k, dtype=float)[..., None], np.asarray(s, dtype=float)[..., None]
    terms = k * hit + (s - k) * miss
    return np.where(trivial, 0.0, special.logsumexp(terms, axis=-1) - math.log(_GRID))


def _fraction_edge(k: np.ndarray, s: np.ndarray, log_c: float, side: int) -> np.ndarray:
    """The CS bound of a fraction after each seed, by bisection on p (rounded outwards, to 2**-50).

    Exact inversion: the claim side's e-value falls as p rises (only its hit factor 1 + (1-p) f / p
    moves), the opposite's rises (only its miss factor 1 + p f / (1-p) moves), so the claim side
    rejects every p below a bound and the opposite every p above one; no grid is needed."""
    lo, hi = np.zeros(k.size), np.ones(k.size)
    for _ in range(50):
        mid = (lo + hi) / 2
        crossed = _bernoulli_log_e(k, s, mid, side) >= log_c
        below = crossed if side > 0 else ~crossed  # the bound lies above mid
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return lo if side > 0 else hi


@functools.lru_cache(maxsize=64)
def _sign_crossings(n: int, log_c: float) -> tuple[np.ndarray, np.ndarray]:
    """For s = 1..n: the fewest seeds beyond m that make the claim side cross at m (s + 1: none), and
    the most that still make the opposite side cross (-1: none); by bisection, both monotone in k."""
    s = np.arange(1, n + 1)

    def first(f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:  # smallest j in [0, s] with f(j) >= log_c
        lo, hi = np.zeros_like(s), s + 1
        while np.any(lo < hi):
            mid = (lo + hi) // 2
            ok, live = f(np.minimum(mid, s)) >= log_c, lo < hi
            hi, lo = np.where(live & ok, mid, hi), np.where(live & ~ok, mid + 1, lo)
        return lo

    claim = first(lambda k: _bernoulli_log_e(k, s, 0.5, 1))
    opposite = s - first(lambda j: _bernoulli_log_e(s - j, s, 0.5, -1))
    claim.flags.writeable = opposite.flags.writeable = False  # cached: shared by every caller
    return claim, opposite


def _median_bounds(y: np.ndarray, log_c: float) -> tuple[np.ndarray, np.ndarray]:
    """At seed s the claim side rejects every m below the (s - k* + 1)-th smallest seed so far and the
    opposite side every m from the (s - k**)-th smallest on: the order-statistic CS, intersected over seeds."""
    claim, opposite = (v[: y.size] for v in _sign_crossings(_capacity(y.size), log_c))
    low, high, prefix = np.full(y.size, -np.inf), np.full(y.size, np.inf), []
    for s in range(1, y.size + 1):
        bisect.insort(prefix, float(y[s - 1]))
        if claim[s - 1] <= s:
            low[s - 1] = prefix[s - claim[s - 1]]
        if opposite[s - 1] >= 0:
            high[s - 1] = prefix[s - opposite[s - 1] - 1]
    return _running(low, high)


def _betting_log_e(z: np.ndarray, m: np.ndarray, log_c: float) -> np.ndarray:
    """(n, M) log capital of H0: mean of z <= m, z in [0, 1]: prod (1 + lambda_t (z_t - m)) with the
    predictable plug-in lambda_t of Waudby-Smith & Ramdas, truncated at c/m (a factor >= 1 - c > 0)."""
    t = np.arange(1, z.size + 1)
    mu = (0.5 + np.cumsum(z)) / (t + 1)
    var = (0.25 + np.cumsum((z - mu) ** 2)) / (t + 1)
    var_before = np.concatenate([[0.25], var[:-1]])  # sigma_hat^2_{t-1}: the bet is predictable
    lam = np.sqrt(2 * log_c / (var_before * t * np.log1p(t)))
    bet = np.minimum(lam[:, None], _BET_CAP / np.maximum(m, _EPS)[None, :])
    return np.cumsum(np.log1p(bet * (z[:, None] - m[None, :])), axis=0)


def _rho(sigma: float, log_c: float) -> float:
    return (2 * log_c + math.log(1 + 2 * log_c)) / (sigma**2 * _TARGET_SEEDS)


def _mixture_log_e(s_sum: np.ndarray, t: np.ndarray, sigma: float, log_c: float) -> np.ndarray:
    """log of the one-sided (half-normal) normal mixture at S_t = sum (y - thr) after t seeds."""
    rho = _rho(sigma, log_c)
    v = sigma**2 * t
    return (math.log(2.0) - 0.5 * np.log1p(rho * v) + rho * s_sum**2 / (2 * (1 + rho * v))
            + special.log_ndtr(s_sum / np.sqrt(v + 1 / rho)))  # fmt: skip


@functools.lru_cache(maxsize=64)
def _mixture_boundary(n: int, sigma: float, log_c: float) -> np.ndarray:
    """For t = 1..n, the S_t at which the one-sided mixture reaches 1/alpha (it increases in S):
    bisection between 0 and the two-sided mixture's boundary at 1/alpha, which bounds it (2 Phi >= 1 for S >= 0)."""
    t = np.arange(1, n + 1, dtype=float)
    rho = _rho(sigma, log_c)
    lo = np.zeros(n)
    hi = np.sqrt(2 * (1 + rho * sigma**2 * t) / rho * (log_c + 0.5 * np.log1p(rho * sigma**2 * t)))
    for _ in range(80):
        mid = (lo + hi) / 2
        up = _mixture_log_e(mid, t, sigma, log_c) >= log_c
        lo, hi = np.where(up, lo, mid), np.where(up, mid, hi)
    hi.flags.writeable = False
    return hi


# -- helpers --------------------------------------------------------------------------------------
def _capacity(n: int) -> int:
    """Cached per-seed tables are built for a power of two of seeds and sliced: a growing run reuses them."""
    return max(64, 1 << (n - 1).bit_length())


def _running(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running intersection; once it would be empty (probability <= 2 alpha) it stays at the last non-empty one."""
    low, high = np.maximum.accumulate(low), np.minimum.accumulate(high)
    empty = np.flatnonzero(low > high)
    if empty.size and empty[0] > 0:
        low[empty[0] :], high[empty[0] :] = low[empty[0] - 1], high[empty[0] - 1]
    return low, high


def _grid_hull(keep: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, G) grid points not yet rejected -> their hull widened by one grid step (so the continuum
    between a kept and a rejected point stays covered); an empty row keeps the last non-empty hull."""
    last = grid.size - 1
    first_kept, last_kept = np.argmax(keep, axis=1), last - np.argmax(keep[:, ::-1], axis=1)
    low, high = grid[np.maximum(first_kept - 1, 0)], grid[np.minimum(last_kept + 1, last)]
    empty = np.flatnonzero(~keep.any(axis=1))
    if empty.size:
        low[empty[0] :], high[empty[0] :] = (low[empty[0] - 1], high[empty[0] - 1]) if empty[0] else (grid[0], grid[-1])
    return low, high


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


def _bounds(bounds: tuple[float, float] | None, arms: tuple[np.ndarray, ...]) -> tuple[float, float]:
    if bounds is None or len(bounds) != 2 or not all(map(math.isfinite, bounds)) or not bounds[0] < bounds[1]:
        raise ValueError(f"method 'betting' needs the metric's bounds (lo, hi), finite with lo < hi; got {bounds}")
    lo, hi = float(bounds[0]), float(bounds[1])
    for x in arms:
        outside = x[(x < lo) | (x > hi)]
        if outside.size:
            raise ValueError(f"value {outside[0]:g} lies outside the claim's bounds [{lo:g}, {hi:g}]")
    return lo, hi


def _sigma(sigma: float | None, method: str) -> float | None:
    if method != "subgaussian":
        return None
    if sigma is None or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"method 'subgaussian' needs sigma, a finite sub-Gaussian scale > 0; got {sigma}")
    return float(sigma)

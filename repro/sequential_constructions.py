"""The three e-process constructions of :mod:`repro.sequential` and their confidence sequences.

On values y already signed by the claim's direction (the claim: the location of y lies above a
threshold), :class:`_Context` gives the log e-process of each side and the running-intersection CS
for ``sign`` (Bernoulli likelihood-ratio mixtures and order statistics), ``betting`` (Waudby-Smith &
Ramdas' capital process, inverted on a grid) and ``subgaussian`` (Howard et al.'s one-sided normal
mixture and its boundary). The formulas and references are in :mod:`repro.sequential`'s docstring;
this module is the arithmetic, kept apart from the per-kind plumbing and the stopping rule there.
Everything is in log space; numpy and scipy only.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

_GRID = 20  # alternatives q of the sign e-process
_CS_GRID = 500  # candidate means of the betting CS
_BET_CAP = 0.5  # c of Waudby-Smith & Ramdas' truncation lambda <= c/m
_TARGET_SEEDS = 15  # the normal-mixture boundary is tightest here
_EPS = 1e-12


@dataclass(frozen=True)
class _Context:
    method: str
    log_c: float
    bounds: tuple[float, float] | None  # of the unsigned values
    sigma: float | None

    def _lohi(self, sign: int) -> tuple[float, float]:
        assert self.bounds is not None, "only the betting method reads bounds, and it is built with them"
        lo, hi = self.bounds
        return (lo, hi) if sign > 0 else (-hi, -lo)

    def claim(self, y: np.ndarray, thr: float, sign: int) -> np.ndarray:
        """log e-process of H0: location of y <= thr (sign: P(y > thr) <= 1/2)."""
        if self.method == "sign":
            return _bernoulli_log_e(np.cumsum(y > thr), np.arange(1, y.size + 1), 0.5, 1)
        if self.method == "betting":
            lo, hi = self._lohi(sign)
            return _betting_log_e((y - lo) / (hi - lo), np.array([(thr - lo) / (hi - lo)]), self.log_c)[:, 0]
        assert self.sigma is not None, "the sub-Gaussian method is built with its sigma"
        return _mixture_log_e(np.cumsum(y - thr), np.arange(1, y.size + 1), self.sigma, self.log_c)

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
            b = _mixture_boundary(_capacity(y.size), self.sigma, self.log_c)[: y.size] / t
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
    prefix: list[float]
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

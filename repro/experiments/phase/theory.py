"""The closed-form side of the one-neuron phase diagram, and the class and exact loss of a trained model.

Theory (Wattenberg's notebook, SOURCES 4.3): the expected losses of the three natural solutions,
    only_feature_1 (W = [1, 0], feature 2 ignored):  r (s/3 - s^2/4)
    only_feature_2 (W = [0, 1], feature 1 ignored):  s/3 - s^2/4
    antipodal      (W = [1, -1]):                    (1 + r) s^2 / 6
and the theory's class of a cell is the cheapest. The class rule of a trained model and the data
variants are described in :mod:`repro.experiments.phase.experiment`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "ANTIPODAL",
    "CLASSES",
    "N_FEATURES",
    "N_HIDDEN",
    "ONLY_FEATURE_1",
    "ONLY_FEATURE_2",
    "OTHER",
    "boundary_density",
    "classify",
    "expected_loss",
    "far_from_boundary",
    "theory_class",
    "theory_losses",
]

N_FEATURES, N_HIDDEN = 2, 1
#: Class codes, stored as floats in the per-cell metrics ``model_class`` and ``theory_class``.
CLASSES: tuple[str, ...] = ("other", "only_feature_1", "only_feature_2", "antipodal")
OTHER, ONLY_FEATURE_1, ONLY_FEATURE_2, ANTIPODAL = range(4)
ONLY_ABOVE, ONLY_BELOW = 0.8, 0.2  # zroe1's "represents only feature i" rule
ANTIPODAL_NORM, ANTIPODAL_COSINE = 0.5, -0.9
RECONSTRUCTED = 0.5  # ||w_i||^2 + b_i, the output for x = e_i before the ReLU


# -- theory ---------------------------------------------------------------------------------------


def theory_losses(r: Tensor, density: Tensor) -> Tensor:
    """Expected loss per row of the three solutions, (K, 3): only_feature_1, only_feature_2, antipodal."""
    s = density
    single = s / 3 - s.square() / 4  # E[(x - E x)^2] of one feature: what ignoring it costs
    return torch.stack([r * single, single, (1 + r) * s.square() / 6], dim=-1)


def theory_class(r: Tensor, density: Tensor) -> Tensor:
    """The cheapest solution's class code, (K,) int64 (ties go to the first of 1, 2, antipodal)."""
    return theory_losses(r, density).argmin(-1) + ONLY_FEATURE_1


def boundary_density(r: Tensor) -> Tensor:
    """s*(r), below which the antipodal solution is the cheapest."""
    low = torch.minimum(r, torch.ones_like(r))
    return 4 * low / (2 * (1 + r) + 3 * low)


def far_from_boundary(r: Tensor, density: Tensor, factor: float = 2.0, points: int = 9) -> Tensor:
    """(K,) bool: the theory's class is the same on the box [r/f, r f] x [s/f, min(s f, 1)].

    Checked on a points x points log grid over the box (the boundaries are monotone curves and the
    line r = 1, so a box that straddles one has grid points on both sides of it).
    """
    steps = torch.linspace(-1.0, 1.0, points, dtype=torch.float64, device=r.device)
    scale = factor**steps  # (P,)
    rs = r[:, None, None] * scale[None, :, None]  # (K, P, 1)
    ss = (density[:, None, None] * scale[None, None, :]).clamp(max=1.0)  # (K, 1, P)
    classes = theory_class(*torch.broadcast_tensors(rs, ss))  # (K, P, P)
    return (classes == theory_class(r, density)[:, None, None]).all(-1).all(-1)


# -- trained models ------------------------------------------------------------------------------


def classify(W: Tensor, b: Tensor) -> Tensor:
    """Class codes of models W (K, m, 2), b (K, 2): (K,) int64, by the rule in the module docstring."""
    W, b = W.to(torch.float64), b.to(torch.float64)
    norms = torch.linalg.vector_norm(W, dim=1)  # (K, 2)
    cosine = (W[:, :, 0] * W[:, :, 1]).sum(1) / (norms[:, 0] * norms[:, 1]).clamp_min(1e-12)  # (K,)
    reconstructed = norms.square() + b > RECONSTRUCTED  # (K, 2)
    codes = torch.full(norms.shape[:1], OTHER, dtype=torch.int64, device=W.device)
    codes[(norms[:, 0] > ONLY_ABOVE) & (norms[:, 1] < ONLY_BELOW) & reconstructed[:, 0]] = ONLY_FEATURE_1
    codes[(norms[:, 1] > ONLY_ABOVE) & (norms[:, 0] < ONLY_BELOW) & reconstructed[:, 1]] = ONLY_FEATURE_2
    codes[(norms > ANTIPODAL_NORM).all(1) & (cosine <= ANTIPODAL_COSINE) & reconstructed.all(1)] = ANTIPODAL
    return codes


@torch.no_grad()
def expected_loss(
    W: Tensor, b: Tensor, importance: Tensor, density: Tensor, kind: str, nodes: int = 64, chunk: int | None = None
) -> Tensor:
    """Exact expected loss per row, E sum_i I_i (x_i - x'_i)^2 of independent data, (K,) float64.

    W (K, m, 2), b (K, 2), importance (K, 2), density (K,) or (K, 2). The expectation splits over
    which features are present: none, one (a 1-D integral over its U[0, 1] value) or both (2-D);
    each integral is a midpoint rule with ``nodes`` points per axis (error O(nodes^-2), the
    integrand being piecewise quadratic). A Monte Carlo estimate would need ~10^5 rows to see a
    sparse cell's rare co-occurrences; this is exact to ~1e-4 relative and deterministic.

    Models are taken ``chunk`` at a time (each model's loss does not depend on the chunk). On a CPU
    the default keeps a chunk's (chunk, nodes^2, 2) intermediates within the cache (64 models: 4 MB),
    3x faster than 8,192 models a chunk (half a gigabyte); a GPU takes 8,192.
    """
    if chunk is None:
        chunk = 8192 if W.device.type == "cuda" else max(1, 2**18 // nodes**2)
    W, b, imp = W.to(torch.float64), b.to(torch.float64), importance.to(torch.float64)
    p = density.to(torch.float64)
    p = p[:, None].expand(-1, 2) if p.ndim == 1 else p  # (K, 2)
    gram = W.transpose(1, 2) @ W  # (K, 2, 2): out_i = f(gram_i1 x_1 + gram_i2 x_2 + b_i)
    u = (torch.arange(nodes, dtype=torch.float64, device=W.device) + 0.5) / nodes  # (Q,)
    pairs = torch.cartesian_prod(u, u)  # (Q^2, 2)
    activation = torch.relu if kind != "linear" else (lambda t: t)
    total = torch.empty(W.shape[0], dtype=torch.float64, device=W.device)
    for start in range(0, W.shape[0], chunk):
        sl = slice(start, start + chunk)
        g, bias, weight, q = gram[sl], b[sl], imp[sl], p[sl]

        def mean_loss(x: Tensor, g: Tensor = g, bias: Tensor = bias, weight: Tensor = weight) -> Tensor:
            # x (N, 2) points shared by all models -> mean over the points, (C,). The weighted sum
            # over the two features and the points is one contraction: a reduction over a last
            # dimension of 2 (.sum(-1)) took 5x as long as all the rest on a CPU.
            out = activation(torch.einsum("cij,nj->cni", g, x) + bias[:, None, :])  # (C, N, 2)
            return torch.einsum("cni,ci->c", (x[None] - out).square_(), weight) / x.shape[0]

        zero = u.new_zeros(1, 2)
        only_1 = torch.stack([u, torch.zeros_like(u)], dim=1)  # (Q, 2)
        only_2 = torch.stack([torch.zeros_like(u), u], dim=1)
        absent = 1 - q  # (C, 2)
        total[sl] = (
            absent.prod(1) * mean_loss(zero)
            + q[:, 0] * absent[:, 1] * mean_loss(only_1)
            + absent[:, 0] * q[:, 1] * mean_loss(only_2)
            + q.prod(1) * mean_loss(pairs)
        )
    return total

"""zroe1's phase-change data, bug included: both features of a column present together or absent together."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["SharedMaskSampler"]


class SharedMaskSampler:
    """zroe1's phase-change data (phase_changes/relu_models_train.ipynb), bug included.

    His x has shape (B, N, 2, 1) and his mask (N, 1, 2) (one Bernoulli(s) per model and feature,
    drawn once per step); the product broadcasts to (B, N, 2, 2), and the model treats each of the
    2 columns as a sample: column j is u * mask_j, so in it both features are present together or
    absent together, for every row of the batch, and both columns carry the same values u. Here a
    step is the n * B rows x[(j, b), i] = u[b, i] * mask_j, which is exactly his columns stacked.
    ``batch`` is therefore n * rows: what the loss sums over. Same interface as toy.FeatureSampler.
    """

    def __init__(self, generators: Sequence[torch.Generator], feature_probability: Tensor, rows: int):
        self.generators = list(generators)
        device = self.generators[0].device
        p = torch.as_tensor(feature_probability, dtype=torch.float32, device=device)  # (K, n)
        G, (K, n) = len(self.generators), p.shape
        self.p = p  # (K, n): column j's mask uses feature j's probability, as his broadcast does
        self.rows, self.batch = rows, n * rows
        self._mask_u = torch.empty((G, K, n), device=device)  # one uniform per column
        self._u = torch.empty((G, K, rows, n), device=device)  # the values
        self._x = torch.empty((G, K, n, rows, n), device=device)  # (G, K, column, row, feature)

    @property
    def n_features(self) -> int:
        return self._u.shape[-1]

    @torch.no_grad()
    def __call__(self) -> Tensor:
        """A fresh batch, (I, n * rows, n); overwritten by the next call."""
        for g, gen in enumerate(self.generators):  # his order: the mask, then the values
            torch.rand(self._mask_u.shape[1:], generator=gen, out=self._mask_u[g])
            torch.rand(self._u.shape[1:], generator=gen, out=self._u[g])
        mask = (self._mask_u < self.p).to(self._u.dtype)  # (G, K, n)
        torch.mul(self._u.unsqueeze(2), mask[..., None, None], out=self._x)  # (G, K, n, rows, n)
        G, K, n = mask.shape
        return self._x.view(G * K, n * self.rows, n)

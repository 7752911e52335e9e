"""STALL's feature metrics: mean pairwise cosine, its histogram, silhouette / Davies-Bouldin, t-SNE.

Plain functions, tested on hand-made inputs (tests/test_active_learning.py); in a module of their own,
listed in the experiment's ``depends_on``, so that the experiment module stays readable.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["COSINE_BINS", "TSNE_SEED", "cluster_scores", "cosine_histogram", "mean_pairwise_cosine", "tsne_embedding"]

TSNE_SEED = 42  # the source's TSNE(random_state=42)
COSINE_BINS = 100  # histogram of pairwise cosines over [-1, 1]
_ROWS = 1024  # rows of the similarity matrix computed at once


def mean_pairwise_cosine(features: Tensor, centred: bool = False) -> float:
    """Mean cosine similarity over the n(n-1) ordered pairs i != j of rows; a zero row counts as 0."""
    x = features.double()
    if centred:
        x = x - x.mean(0)
    u = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    total = u.sum(0)
    n = u.shape[0]
    return float((total @ total - (u * u).sum()) / (n * (n - 1)))


def cosine_histogram(features: Tensor, centred: bool = False, bins: int = COSINE_BINS) -> np.ndarray:
    """Counts of pairwise cosines (i < j) in ``bins`` equal bins over [-1, 1]."""
    x = features.float()
    if centred:
        x = x - x.mean(0)
    u = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    counts = torch.zeros(bins, dtype=torch.float64, device=u.device)
    for start in range(0, u.shape[0], _ROWS):
        sims = (u[start : start + _ROWS] @ u.T).clamp(-1, 1)
        rows = torch.arange(start, start + sims.shape[0], device=u.device)[:, None]
        sims = sims.masked_fill(torch.arange(u.shape[0], device=u.device)[None] <= rows, 2.0)  # 2: outside, dropped
        counts += torch.histc(sims, bins=bins, min=-1.0, max=1.0).double()
    return counts.cpu().numpy()


def cluster_scores(points: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(silhouette, Davies-Bouldin) of points with the true labels as clusters (scikit-learn)."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    return float(silhouette_score(points, labels)), float(davies_bouldin_score(points, labels))


def tsne_embedding(features: np.ndarray, max_iter: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, random_state=TSNE_SEED, max_iter=max_iter).fit_transform(features).astype(np.float32)

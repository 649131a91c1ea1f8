"""Datasets: one loader module per format, one registry, one PyTorch dataset.

To add a format, write a module with ``load(root, split, **options) -> Records``,
add it to :data:`LOADERS` and its name to :data:`DatasetName`; nothing else
changes. Recipes (``DataSpec.dataset``) and the command line (``--dataset``)
take their names from here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

from . import ckplus, fer2013, ferplus, folder
from .augment import train_augmentation
from .dataset import FaceDataset, decode
from .records import DataError, Record, Records

#: A dataset format's name, as recipes and ``--dataset`` spell it: the keys of :data:`LOADERS`, in its order
#: (a type checker needs the names written out; a test holds the two together).
DatasetName = Literal["fer2013", "ferplus", "ckplus", "folder"]

LOADERS: dict[DatasetName, Callable[..., Records]] = {
    "fer2013": fer2013.load,
    "ferplus": ferplus.load,
    "ckplus": ckplus.load,
    "folder": folder.load,
}

#: Every dataset name, in registry order (``--dataset``'s choices).
DATASETS: tuple[DatasetName, ...] = tuple(LOADERS)


def load_records(dataset: str, root: str | Path, split: str, **options: Any) -> Records:
    """Labelled records of one split of a dataset (no pixels decoded yet)."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    return LOADERS[cast(DatasetName, dataset)](root, split, **options)


__all__ = ["DATASETS", "LOADERS", "DatasetName", "DataError", "FaceDataset", "Record", "Records", "decode", "load_records", "train_augmentation"]

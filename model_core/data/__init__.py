"""Datasets: one loader module per format, one registry, one PyTorch dataset.

To add a format, write a module with ``load(root, split, **options) -> Records``
and add it to :data:`LOADERS`; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import ckplus, fer2013, ferplus, folder
from .augment import train_augmentation
from .dataset import FaceDataset, decode
from .records import DataError, Record, Records

LOADERS: dict[str, Callable[..., Records]] = {
    "fer2013": fer2013.load,
    "ferplus": ferplus.load,
    "ckplus": ckplus.load,
    "folder": folder.load,
}


def load_records(dataset: str, root: str | Path, split: str, **options: Any) -> Records:
    """Labelled records of one split of a dataset (no pixels decoded yet)."""
    try:
        loader = LOADERS[dataset]
    except KeyError:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(LOADERS)}") from None
    return loader(root, split, **options)


__all__ = ["LOADERS", "DataError", "FaceDataset", "Record", "Records", "decode", "load_records", "train_augmentation"]

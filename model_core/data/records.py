"""What every dataset loader returns: labelled records, before any pixel is decoded.

A loader's only job is to say *which* image has *which* label in a split. It
reads directories and label files, maps the dataset's class names onto the
canonical ones (:mod:`model_core.expressions`), and refuses anything it cannot
label for certain with a :class:`DataError` that names the file. Decoding and
augmentation happen later, in :mod:`model_core.data.dataset`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import image_formats  # importing it lets Pillow open HEIC files

#: What a folder of faces may hold: every still-image format Pillow reads that face databases use
#: (JAFFE ships TIFF, older ones PGM); the first frame of a GIF; and the phones' HEIC and AVIF.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".pgm", ".ppm", ".pnm"}) | image_formats.SUFFIXES


class DataError(Exception):
    """A dataset file that is missing, corrupt or mislabelled. The message names the file."""


@dataclass(frozen=True)
class Record:
    """One labelled face.

    ``source`` names where it came from (a path, or ``file.csv:line``) so that
    every error and manifest can point at it. ``pixels`` holds the image for
    formats that store pixels inline (Kaggle's CSV); otherwise the image is read
    from ``source``. ``votes`` is a label distribution over the dataset's
    classes (FER+), or None for a hard label.
    """

    source: str
    label: int
    votes: tuple[float, ...] | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)
    group: str | None = None  # subject id, for splits that must keep a person in one fold


@dataclass
class Records:
    """A split of a dataset: its records, its class names, and what was skipped and why."""

    dataset: str
    split: str
    classes: tuple[str, ...]
    records: list[Record]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(r.label for r in self.records)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def skip_or_raise(self, source: str, reason: str, skip_bad: bool) -> None:
        """Record a bad item if skipping is allowed; otherwise stop with an error naming it."""
        if not skip_bad:
            raise DataError(f"{source}: {reason} (pass --skip-bad to skip such files and count them)")
        self.skipped.append((source, reason))


def _hidden(name: str) -> bool:
    """Dot files and folders, and the ``__MACOSX`` folder (with its ``._name.png`` resource forks) of a zip made on a Mac."""
    return name.startswith(".") or name == "__MACOSX"


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files inside ``folder`` (``recursive``: at any depth), sorted so that every run sees the same order.

    Hidden files, and everything inside hidden folders, are skipped.
    """
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in found
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not any(map(_hidden, p.relative_to(folder).parts))
    )


def subfolders(folder: Path) -> list[Path]:
    """The folders directly inside ``folder``, sorted, without hidden ones (``.ipynb_checkpoints``, ``__MACOSX``)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name))


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: {what} not found" if not path.exists() else f"{path}: a file, not a folder ({what} expected)")
    return path

"""FER2013 (Goodfellow et al., 2013) in the two forms users have it.

* the image-folder copy: ``train/<class>/Training_*.jpg`` and
  ``test/<class>/{PublicTest,PrivateTest}_*.jpg``; the official split is the
  file-name prefix, not the folder;
* Kaggle's ``fer2013.csv``: ``emotion,pixels,Usage`` with 48x48 pixels inline.

Splits: ``train`` (Training), ``val`` (PublicTest, for model selection) and
``test`` (PrivateTest, for the final report); the official names work too.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..expressions import FER2013_CLASSES, canonical
from .records import DataError, Record, Records, image_files, require_dir, subfolders

USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
SPLIT_ALIASES = {v.lower(): k for k, v in USAGE.items()} | {"valid": "val", "validation": "val", "all": "all"}


def normalise_split(split: str) -> str:
    key = split.lower()
    key = SPLIT_ALIASES.get(key, key)
    if key not in USAGE and key != "all":
        raise DataError(f"unknown FER2013 split {split!r}; use train, val, test or all (or Training, PublicTest, PrivateTest)")
    return key


def load(root: str | Path, split: str, skip_bad: bool = False, **_: object) -> Records:
    """Load a split from the image folders under ``root``, or from a ``fer2013.csv`` at or in ``root``."""
    root = Path(root)
    csv_path = root if root.suffix == ".csv" else root / "fer2013.csv"
    if csv_path.is_file():
        return load_csv(csv_path, split, skip_bad)
    return load_folders(root, split, skip_bad)


def load_folders(root: Path, split: str, skip_bad: bool = False) -> Records:
    key = normalise_split(split)
    wanted = set(USAGE.values()) if key == "all" else {USAGE[key]}
    out = Records("fer2013", key, FER2013_CLASSES, [])
    require_dir(root, "FER2013 folder (expected train/ and test/ inside, or fer2013.csv)")
    parts = [p for p in ("train", "test") if (root / p).is_dir()]
    if not parts:
        raise DataError(f"{root}: no train/ or test/ folder and no fer2013.csv")
    for part in parts:
        for class_dir in subfolders(root / part):
            try:
                label = FER2013_CLASSES.index(canonical(class_dir.name))
            except (KeyError, ValueError):
                raise DataError(f"{class_dir}: folder name is not a FER2013 class ({', '.join(FER2013_CLASSES)})") from None
            for path in image_files(class_dir):
                usage = path.name.split("_", 1)[0]
                if usage not in USAGE.values():
                    out.skip_or_raise(str(path), "file name lacks a Training_/PublicTest_/PrivateTest_ prefix", skip_bad)
                elif usage in wanted:
                    out.records.append(Record(str(path), label))
    if not out.records:
        raise DataError(f"{root}: no images of split {split!r} found")
    return out


def load_csv(path: Path, split: str, skip_bad: bool = False) -> Records:
    key = normalise_split(split)
    wanted = set(USAGE.values()) if key == "all" else {USAGE[key]}
    out = Records("fer2013", key, FER2013_CLASSES, [])
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: not a FER2013 CSV, columns {sorted(missing)} missing")
        for row in reader:
            source = f"{path}:{reader.line_num}"
            if row["Usage"] not in wanted:
                if row["Usage"] not in USAGE.values():
                    out.skip_or_raise(source, f"unknown Usage {row['Usage']!r}", skip_bad)
                continue
            try:
                label = int(row["emotion"])
                pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            except (ValueError, OverflowError):
                out.skip_or_raise(source, "emotion or pixels are not integers in 0..255", skip_bad)
                continue
            if not 0 <= label < len(FER2013_CLASSES):
                out.skip_or_raise(source, f"emotion {label} outside 0..6", skip_bad)
            elif pixels.size != 48 * 48:
                out.skip_or_raise(source, f"{pixels.size} pixels instead of 2304 (48x48)", skip_bad)
            else:
                out.records.append(Record(source, label, pixels=pixels.reshape(48, 48)))
    if not out.records:
        raise DataError(f"{path}: no rows of split {split!r}")
    return out

"""CK+48 (Lucey et al., 2010): the last three frames of 327 labelled sequences, 118 subjects.

Frames of one sequence are near-duplicates, so the split is by *subject*: the
subjects, sorted by id, are dealt round-robin into ``folds`` folds, and a
person never appears in two folds. Split names are ``fold<i>/train`` (every
other fold), ``fold<i>/test`` and ``all``.

Subjects come from ``metadata.csv`` (``path,label,subject,...``) when present,
otherwise from the ``S<subject>_<sequence>_<frame>.png`` file names.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..expressions import CKPLUS_CLASSES, canonical
from .records import DataError, Record, Records, image_files, require_dir, subfolders

_NAME = re.compile(r"^(S\d+)_\d+_\d+")
_SPLIT = re.compile(r"^fold(\d+)/(train|test)$")


def _all_records(root: Path) -> list[Record]:
    meta = root / "metadata.csv"
    records: list[Record] = []
    if meta.is_file():
        with open(meta, newline="") as f:
            reader = csv.DictReader(f)
            if not {"path", "label", "subject"} <= set(reader.fieldnames or []):
                raise DataError(f"{meta}: needs columns path,label,subject")
            for row in reader:
                source = f"{meta}:{reader.line_num}"
                try:
                    label = CKPLUS_CLASSES.index(canonical(row["label"]))
                except (KeyError, ValueError):
                    raise DataError(f"{source}: label {row['label']!r} is not a CK+ class") from None
                records.append(Record(str(root / row["path"]), label, group=row["subject"]))
        return records
    for class_dir in subfolders(root):
        try:
            label = CKPLUS_CLASSES.index(canonical(class_dir.name))
        except (KeyError, ValueError):
            raise DataError(f"{class_dir}: folder name is not a CK+ class ({', '.join(CKPLUS_CLASSES)})") from None
        for path in image_files(class_dir):
            match = _NAME.match(path.name)
            if not match:
                raise DataError(f"{path}: cannot read the subject from the name (expected S###_###_########.png)")
            records.append(Record(str(path), label, group=match.group(1)))
    return records


def fold_of_subjects(subjects: list[str], folds: int) -> dict[str, int]:
    """Deal sorted subjects round-robin into folds: reproducible, and no subject in two folds."""
    return {s: i % folds for i, s in enumerate(sorted(set(subjects)))}


def load(root: str | Path, split: str, folds: int = 10, skip_bad: bool = False, **_: object) -> Records:
    root = require_dir(Path(root), "CK+ folder")
    everything = _all_records(root)
    out = Records("ckplus", split, CKPLUS_CLASSES, [])
    for r in everything:
        if not Path(r.source).is_file():
            out.skip_or_raise(r.source, "listed in metadata.csv but missing", skip_bad)
    present = [r for r in everything if Path(r.source).is_file()]
    if split == "all":
        out.records = present
        return out
    match = _SPLIT.match(split)
    if not match or not 0 <= int(match.group(1)) < folds:
        raise DataError(f"unknown CK+ split {split!r}; use all, or fold<i>/train or fold<i>/test with i in 0..{folds - 1}")
    fold, part = int(match.group(1)), match.group(2)
    assignment = fold_of_subjects([r.group or "" for r in present], folds)
    out.records = [r for r in present if (assignment[r.group or ""] == fold) == (part == "test")]
    if not out.records:
        raise DataError(f"{root}: split {split!r} is empty")
    return out

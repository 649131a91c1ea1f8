"""FER+ (Barsoum et al., 2016): the FER2013 faces relabelled by ten raters each.

Labels come from Microsoft's ``fer2013new.csv`` (``Usage, Image name`` and ten
vote counts), or, where it is absent, from each image folder's ``label.csv``.
Images are ``FER2013Train/``, ``FER2013Valid/`` and ``FER2013Test/``.

Two label modes, as the literature uses them:

``hard`` (majority vote)
    the class with the most votes; images whose top vote is ``unknown`` or
    ``NF`` (not a face), or whose top vote is tied, are dropped and counted.
``soft`` (vote distribution)
    the eight emotion votes, normalised; images whose top vote is ``unknown``
    or ``NF`` are dropped. The record's ``label`` is still the top emotion.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..expressions import FERPLUS_CLASSES
from .records import DataError, Record, Records, require_dir

#: Vote columns of fer2013new.csv, in file order, mapped to canonical names.
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
_CANONICAL = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
              "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLIT_ALIASES = {"training": "train", "publictest": "val", "valid": "val", "fer2013valid": "val",
                 "privatetest": "test", "fer2013test": "test", "fer2013train": "train"}


def normalise_split(split: str) -> str:
    key = SPLIT_ALIASES.get(split.lower(), split.lower())
    if key not in FOLDERS and key != "all":
        raise DataError(f"unknown FER+ split {split!r}; use train, val, test or all")
    return key


def _rows(root: Path, split: str) -> list[tuple[str, str, list[int], str]]:
    """(split, image name, ten vote counts, source) for every labelled row of the wanted split(s)."""
    wanted = set(FOLDERS) if split == "all" else {split}
    rows: list[tuple[str, str, list[int], str]] = []
    master = root / "fer2013new.csv"
    if master.is_file():
        with open(master, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            if [h.strip() for h in header[2:12]] != list(VOTE_COLUMNS):
                raise DataError(f"{master}: unexpected header {header!r}")
            for row in reader:
                part = USAGE.get(row[0])
                if part in wanted and row[1].strip():  # rows without a name were dropped by FER+ itself
                    rows.append((part, row[1].strip(), _votes(row[2:12], f"{master}:{reader.line_num}"), f"{master}:{reader.line_num}"))
        return rows
    for part in sorted(wanted):
        label_csv = require_dir(root / FOLDERS[part], "FER+ image folder") / "label.csv"
        if not label_csv.is_file():
            raise DataError(f"{root}: neither fer2013new.csv nor {label_csv} found")
        with open(label_csv, newline="") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                rows.append((part, row[0].strip(), _votes(row[2:12], f"{label_csv}:{line}"), f"{label_csv}:{line}"))
    return rows


def _votes(cells: list[str], source: str) -> list[int]:
    try:
        votes = [int(c) for c in cells]
    except ValueError:
        raise DataError(f"{source}: vote counts are not integers") from None
    if len(votes) != len(VOTE_COLUMNS) or min(votes) < 0:
        raise DataError(f"{source}: expected {len(VOTE_COLUMNS)} non-negative vote counts")
    return votes


def load(root: str | Path, split: str, label_mode: str = "hard", skip_bad: bool = False, **_: object) -> Records:
    if label_mode not in ("hard", "soft"):
        raise DataError(f"FER+ label_mode must be 'hard' or 'soft', not {label_mode!r}")
    root = require_dir(Path(root), "FER+ folder")
    key = normalise_split(split)
    classes = FERPLUS_CLASSES
    order = [classes.index(_CANONICAL[c]) for c in VOTE_COLUMNS[:8]]  # file column -> class index
    out = Records("ferplus", key, classes, [])
    dropped = {"unknown/NF": 0, "tie": 0}
    for part, name, votes, source in _rows(root, key):
        top = max(votes)
        if top == 0 or votes.index(top) >= 8:
            dropped["unknown/NF"] += 1
            continue
        emotion = [0.0] * len(classes)
        for column, count in enumerate(votes[:8]):
            emotion[order[column]] = float(count)
        tied = votes[:8].count(top) > 1
        if tied and label_mode == "hard":
            dropped["tie"] += 1
            continue
        path = root / FOLDERS[part] / name
        if not path.is_file():
            out.skip_or_raise(str(path), f"listed in {source} but missing", skip_bad)
            continue
        label = order[votes.index(top)]
        total = sum(emotion)
        distribution = tuple(v / total for v in emotion) if label_mode == "soft" else None
        out.records.append(Record(str(path), label, votes=distribution))
    out.skipped.extend((f"{n} images", f"dropped: top vote {why}") for why, n in dropped.items() if n)
    if not out.records:
        raise DataError(f"{root}: no labelled images in split {split!r}")
    return out

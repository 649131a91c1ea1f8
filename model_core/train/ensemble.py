"""An ensemble of teachers, scored from their probability files: each alone, and the mean as it grows.

Every teacher leaves its class probabilities for each face in the teacher-targets
format (:mod:`.teacher`), keyed by the image's path under its dataset root. The
ensemble's answer is the argmax of the mean of its members' probabilities, so
scoring it needs those files and the labels, never the networks. Rows come in
the order teachers were added, so the table shows what each one brought.

Accuracy is the deployed answer's, as in :mod:`model_core.evaluate`: the argmax
over all the teacher's classes, matched to the label by class name, so a FER+
face whose majority vote is contempt (a class FER2013 teachers lack) counts as
wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import DataError
from .teacher import TeacherTargets, read_teacher_targets


@dataclass(frozen=True)
class LabelledSplit:
    """The faces a column of the table is scored on: keys as the probability files name them, and labels."""

    name: str
    keys: Sequence[str]
    labels: np.ndarray  # index into ``classes``; -1 for a face that is listed but not scored
    classes: tuple[str, ...]


@dataclass
class TableRow:
    """One teacher: its accuracy alone and the ensemble's once it joined (None where it lacks a split's faces)."""

    name: str
    alone: dict[str, float | None] = field(default_factory=dict)
    ensemble: dict[str, float | None] = field(default_factory=dict)
    #: How many members the ensemble's figure of each split averages (teachers lacking the split are left out).
    members: dict[str, int] = field(default_factory=dict)


def correct(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str], label_classes: Sequence[str]) -> np.ndarray:
    """For each scored face (label >= 0), in order, whether its argmax class, by name, is its label."""
    position = {c: i for i, c in enumerate(label_classes)}
    answer = np.array([position.get(c, -2) for c in classes])[probs.argmax(1)]  # -2: a class the labels lack
    scored = labels >= 0
    if not scored.any():
        raise ValueError("no scored faces")
    return answer[scored] == labels[scored]


def accuracy(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str], label_classes: Sequence[str]) -> float:
    """Share of scored faces (label >= 0) whose argmax class, by name, is their label."""
    return float(correct(probs, labels, classes, label_classes).mean())


def read_teacher_folder(folder: str | Path) -> TeacherTargets:
    """All of a teacher's probability files in ``folder`` (``*.csv`` and ``*.csv.gz``: one per dataset) as one."""
    folder = Path(folder)
    files = sorted([*folder.glob("*.csv"), *folder.glob("*.csv.gz")])
    if not files:
        raise DataError(f"{folder}: no probability files (*.csv, *.csv.gz)")
    parts = [read_teacher_targets(f) for f in files]
    for part in parts[1:]:
        if part.classes != parts[0].classes:
            raise DataError(f"{part.path}: classes {part.classes} differ from {parts[0].path}'s {parts[0].classes}")
    probs: dict[str, np.ndarray] = {}
    for part in parts:
        probs |= part.probs
    return TeacherTargets(folder, parts[0].classes, probs)


def probabilities_for(targets: TeacherTargets, keys: Sequence[str]) -> np.ndarray | None:
    """The teacher's probabilities for ``keys`` in order, or None if it lacks any of them."""
    try:
        return np.stack([targets.probs[k] for k in keys])
    except KeyError:
        return None


def ensemble_table(teachers: Sequence[tuple[str, TeacherTargets]], splits: Sequence[LabelledSplit]) -> list[TableRow]:
    """Each teacher's accuracy on each split, and the ensemble's (mean probability) of it and all before it."""
    rows: list[TableRow] = []
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    classes: tuple[str, ...] | None = None
    for name, targets in teachers:
        if classes is None:
            classes = targets.classes
        elif targets.classes != classes:
            raise DataError(f"{targets.path}: classes {targets.classes} differ from the first teacher's {classes}")
        row = TableRow(name)
        for split in splits:
            probs = probabilities_for(targets, split.keys)
            row.alone[split.name] = None if probs is None else accuracy(probs, split.labels, classes, split.classes)
            if probs is not None:
                sums[split.name] = sums.get(split.name, 0) + probs
                counts[split.name] = counts.get(split.name, 0) + 1
            total = sums.get(split.name)
            row.ensemble[split.name] = None if total is None else accuracy(total, split.labels, classes, split.classes)
            row.members[split.name] = counts.get(split.name, 0)
        rows.append(row)
    return rows


def format_table(rows: Sequence[TableRow], splits: Sequence[LabelledSplit]) -> str:
    """The table in Markdown: per split, the teacher alone and the ensemble up to it, in percent."""
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    names = [s.name for s in splits]
    lines = [
        "| # | teacher | " + " | ".join(f"{n} alone" for n in names) + " | " + " | ".join(f"ensemble {n}" for n in names) + " |",
        "| ---: | --- |" + " ---: |" * (2 * len(names)),
    ]
    for i, row in enumerate(rows, start=1):
        lines.append(f"| {i} | {row.name} | " + " | ".join(cell(row.alone[n]) for n in names) + " | "
                     + " | ".join(cell(row.ensemble[n]) for n in names) + " |")
    return "\n".join(lines)


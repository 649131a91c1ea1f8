"""Distillation targets: a stronger model's class probabilities, written once, read as soft labels.

The strongest classifier this project trained (the paper-size single-task
network, 41 M multiply-heavy 96x96 convolutions) is too large to bundle with
synthesis and too slow to run beside every training step on a CPU. Its
knowledge can still reach the small multi-task default: run it once over a
training split, keep its probabilities in a CSV, and let the trainer mix them
into each face's target (offline knowledge distillation, Hinton et al. 2015)::

    fersnet teacher-targets --checkpoint fer2013_paper_none_gpu \\
        --dataset fer2013 --root ../shared/data/fer2013 --split train --temperature 2 \\
        --out runs/teacher/fer2013_train_t2.csv

    # recipe: train: [{dataset: fer2013, ..., teacher: runs/teacher/fer2013_train_t2.csv, teacher_weight: 0.5}]

The file is keyed by each image's path relative to the dataset root (or by
``file.csv:line`` for inline pixels), so it survives the dataset moving; a name
ending in ``.gz`` is gzipped (a teacher's probabilities for all of FER2013 take
about 1 MB so, 3 MB plain), which is how :mod:`.teachers` commits them. The
teacher sees the unaugmented face; the student sees its augmented versions, as
in ordinary offline distillation. Classes are matched by name, so a teacher
may know classes the student lacks (their mass is dropped, the rest renormalised).
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..checkpoint import LoadedModel
from ..data import DataError, FaceDataset, Records
from ..evaluate import predict
from ..expressions import canonical

KEY_COLUMN = "image"


def _open_text(path: Path, mode: Literal["r", "w"]) -> io.TextIOWrapper:
    """The file as text, through gzip when its name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt" if mode == "r" else "wt", newline="")
    return open(path, mode, newline="")


def target_key(source: str, root: str | Path) -> str:
    """How a record is named in a targets file: its path under the dataset root, else its file name
    (``fer2013.csv:12`` for a row of Kaggle's CSV)."""
    path = Path(source)
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        return path.name


@dataclass(frozen=True)
class TeacherTargets:
    """A teacher's probabilities for every image of one split, and the classes they are over."""

    path: Path
    classes: tuple[str, ...]
    probs: dict[str, np.ndarray]

    def onto(self, classes: Sequence[str]) -> dict[str, np.ndarray]:
        """The probabilities re-indexed onto ``classes`` (a student's), renormalised over the shared ones."""
        shared = [c for c in classes if c in self.classes]
        if not shared:
            raise DataError(f"{self.path}: the teacher's classes {self.classes} share none with {tuple(classes)}")
        src = [self.classes.index(c) for c in shared]
        dst = [list(classes).index(c) for c in shared]
        out: dict[str, np.ndarray] = {}
        for key, p in self.probs.items():
            q = np.zeros(len(classes), dtype=np.float32)
            q[dst] = p[src]
            total = q.sum()
            out[key] = q / total if total > 0 else np.full(len(classes), 1 / len(classes), dtype=np.float32)
        return out


def read_teacher_targets(path: str | Path) -> TeacherTargets:
    """Read a targets CSV written by :func:`write_teacher_targets`; a malformed file is a DataError naming it."""
    path = Path(path)
    try:
        with _open_text(path, "r") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or header[0] != KEY_COLUMN or len(header) < 3:
                raise DataError(f"{path}: not a teacher-targets file (expected a header '{KEY_COLUMN},<class>,...')")
            try:
                classes = tuple(canonical(c) for c in header[1:])
            except KeyError as e:
                raise DataError(f"{path}: {e.args[0]}") from None
            probs: dict[str, np.ndarray] = {}
            for row in reader:
                try:
                    p = np.array([float(v) for v in row[1:]], dtype=np.float32)
                except ValueError:
                    p = np.array([])
                if len(p) != len(classes) or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
                    raise DataError(f"{path}:{reader.line_num}: expected {len(classes)} non-negative probabilities")
                probs[row[0]] = p / p.sum()
    except FileNotFoundError:
        raise DataError(f"{path}: teacher-targets file not found (write it with `fersnet teacher-targets`)") from None
    except (OSError, EOFError) as e:  # a truncated or non-gzip .gz
        raise DataError(f"{path}: unreadable teacher-targets file ({e})") from None
    return TeacherTargets(path, classes, probs)


def teacher_targets_for(records: Records, root: str | Path, path: str | Path, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """The teacher's probabilities over ``classes`` for every record, keyed by ``record.source``.

    Every record must have one: a file written for another split or another copy
    of the data is refused, naming an image it lacks, rather than half-used.
    """
    targets = read_teacher_targets(path)
    probs = targets.onto(classes)
    out: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for record in records.records:
        key = target_key(record.source, root)
        if key in probs:
            out[record.source] = probs[key]
        else:
            missing.append(key)
    if missing:
        raise DataError(
            f"{targets.path}: no teacher probabilities for {len(missing)} of {len(records)} images of "
            f"{records.dataset}/{records.split} (first: {missing[0]}); was it written for this split and root?"
        )
    return out


def write_teacher_targets(
    teacher: LoadedModel,
    records: Records,
    root: str | Path,
    out: str | Path,
    temperature: float = 1.0,
    device: torch.device | str = "cpu",
    batch_size: int = 128,
    progress: bool = True,
) -> Path:
    """Run ``teacher`` over ``records`` (unaugmented) and write ``softmax(logits / temperature)`` per image.

    A temperature above 1 softens the teacher's confident answers on images it
    was trained on, so that the student learns which *other* classes a face
    resembles, the part of the teacher's knowledge a hard label lacks.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    dataset = FaceDataset(records, teacher.preprocess, classes=records.classes, drop_unknown_labels=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    # Channels-last convolutions run about 1.5 times faster on a CPU too (measured on this project's 2-core machine).
    model = teacher.model.to(memory_format=torch.channels_last)
    batches = tqdm(loader, desc=f"teacher on {records.dataset}/{records.split}", disable=not progress)
    probs = predict(model, batches, device, temperature)[0].numpy()
    return write_probabilities(out, [target_key(r.source, root) for r in dataset.records], teacher.classes, probs)


def write_probabilities(out: str | Path, keys: Sequence[str], classes: Sequence[str], probs: np.ndarray) -> Path:
    """Write one row of ``probs`` per key in the teacher-targets format (gzipped if ``out`` ends in ``.gz``).

    The one writer of the format: :func:`write_teacher_targets` and the GPU teachers both use it, so
    :func:`read_teacher_targets` reads whatever either made. Five decimals: finer than any target needs.
    """
    if len(keys) != len(probs) or probs.ndim != 2 or probs.shape[1] != len(classes):
        raise ValueError(f"{len(keys)} keys, probabilities of shape {probs.shape}, {len(classes)} classes")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder, not a teacher-targets file", str(out))
    tmp = out.with_name(out.name + ".tmp")
    try:
        with (gzip.open(tmp, "wt", newline="", compresslevel=9) if out.suffix == ".gz" else open(tmp, "w", newline="")) as f:
            writer = csv.writer(f)
            writer.writerow([KEY_COLUMN, *classes])
            for key, p in zip(keys, probs, strict=True):
                writer.writerow([key, *(f"{v:.5f}" for v in p)])
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)  # nothing half-written left behind, whatever stopped it
    return out

"""Distillation targets: written once by a teacher, read back as soft labels the trainer mixes in."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from model_core import Preprocess, load_checkpoint
from model_core.data import DataError, FaceDataset, load_records
from model_core.expressions import CANONICAL, FER2013_CLASSES
from model_core.train.teacher import read_teacher_targets, teacher_targets_for, write_teacher_targets

from ..shared_fixtures import MakeCheckpoint


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_the_file_holds_the_teachers_probabilities_for_every_image(fer2013_folder: Path, make_checkpoint: MakeCheckpoint,
                                                                     tmp_path: Path) -> None:
    teacher = load_checkpoint(make_checkpoint("teacher"))
    records = load_records("fer2013", fer2013_folder, "train")
    out = write_teacher_targets(teacher, records, fer2013_folder, tmp_path / "t.csv", progress=False)
    rows = _rows(out)
    assert rows[0] == ["image", *FER2013_CLASSES]
    keys = [r[0] for r in rows[1:]]
    assert keys == [Path(r.source).relative_to(fer2013_folder).as_posix() for r in records.records]
    probs = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert np.allclose(probs.sum(1), 1, atol=1e-3)
    # The model's own softmax over each unaugmented face.
    dataset = FaceDataset(records, teacher.preprocess)
    with torch.no_grad():
        expected = teacher.model.eval().classify(torch.stack([dataset[i][0] for i in range(len(dataset))])).softmax(1)
    assert np.allclose(probs, expected.numpy(), atol=1e-4)


def test_a_temperature_above_one_softens_the_targets(fer2013_folder: Path, make_checkpoint: MakeCheckpoint,
                                                     tmp_path: Path) -> None:
    teacher = load_checkpoint(make_checkpoint("teacher"))
    records = load_records("fer2013", fer2013_folder, "train")
    sharp = read_teacher_targets(write_teacher_targets(teacher, records, fer2013_folder, tmp_path / "t1.csv", progress=False))
    soft = read_teacher_targets(write_teacher_targets(teacher, records, fer2013_folder, tmp_path / "t4.csv",
                                                      temperature=4, progress=False))
    for key, p in sharp.probs.items():
        assert soft.probs[key].max() <= p.max() + 1e-4
        assert soft.probs[key].argmax() == p.argmax()


def test_targets_mix_the_label_and_the_teacher(fer2013_folder: Path, tmp_path: Path) -> None:
    records = load_records("fer2013", fer2013_folder, "train")
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as f:  # an 8-class teacher (FER+), sure of contempt for one image in two
        w = csv.writer(f)
        w.writerow(["image", *CANONICAL])
        for i, r in enumerate(records.records):
            p = np.full(8, 0.1)
            p[7] = 0.3 if i % 2 else 0.0
            w.writerow([Path(r.source).relative_to(fer2013_folder).as_posix(), *p])
    teacher = teacher_targets_for(records, fer2013_folder, path, FER2013_CLASSES)
    assert all(np.allclose(p, np.full(7, 1 / 7)) for p in teacher.values())  # contempt's mass dropped, renormalised
    dataset = FaceDataset(records, Preprocess(), teacher=teacher, teacher_weight=0.25)
    for label, target in zip(dataset.labels, dataset.targets, strict=True):
        expected = np.full(7, 0.25 / 7)
        expected[label] += 0.75
        assert np.allclose(target, expected, atol=1e-6)


def test_a_file_for_another_split_or_a_broken_file_is_refused_by_name(fer2013_folder: Path, make_checkpoint: MakeCheckpoint,
                                                                      tmp_path: Path) -> None:
    teacher = load_checkpoint(make_checkpoint("teacher"))
    val = write_teacher_targets(teacher, load_records("fer2013", fer2013_folder, "val"), fer2013_folder, tmp_path / "v.csv",
                                progress=False)
    train = load_records("fer2013", fer2013_folder, "train")
    with pytest.raises(DataError, match=r"v\.csv: no teacher probabilities for 42 of 42 images of fer2013/train \(first: train/"):
        teacher_targets_for(train, fer2013_folder, val, FER2013_CLASSES)
    broken = tmp_path / "broken.csv"
    broken.write_text("image,angry,happy\ntrain/a.jpg,0.5,oops\n")
    with pytest.raises(DataError, match=r"broken\.csv:2: expected 2 non-negative probabilities"):
        read_teacher_targets(broken)
    with pytest.raises(DataError, match=r"missing\.csv: teacher-targets file not found"):
        read_teacher_targets(tmp_path / "missing.csv")

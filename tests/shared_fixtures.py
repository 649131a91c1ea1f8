"""Fixtures for every suite (offered by tests/conftest.py): tiny fake datasets in every real file format and untrained
checkpoints, made on the fly."""

from __future__ import annotations

import builtins
import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from model_core import Preprocess, create_model, save_checkpoint
from model_core.checkpoint import build_card
from model_core.expressions import FER2013_CLASSES, canonical
from model_core.transfer import with_answer_tail

from .core.fakes import face


@pytest.fixture
def fer2013_folder(tmp_path: Path) -> Path:
    """The Kaggle image-folder layout: train/<class>/Training_*.jpg, test/<class>/{PublicTest,PrivateTest}_*.jpg."""
    root = tmp_path / "fer2013"
    n = 0
    for label, name in enumerate(FER2013_CLASSES):
        for usage, part, count in (("Training", "train", 6), ("PublicTest", "test", 2), ("PrivateTest", "test", 2)):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                Image.fromarray(face(label, n)).save(folder / f"{usage}_{1000 + n}.jpg", quality=95)
                n += 1
    return root


@pytest.fixture
def fer2013_csv(tmp_path: Path) -> Path:
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        n = 0
        for label in range(7):
            for usage, count in (("Training", 4), ("PublicTest", 1), ("PrivateTest", 1)):
                for _ in range(count):
                    w.writerow([label, " ".join(map(str, face(label, n).ravel())), usage])
                    n += 1
    return path


def write_ferplus_csv(root: Path, rows: list[list[Any]]) -> None:
    """FER+'s label file, ``fer2013new.csv``: a header, then (usage, image name, ten vote counts) per row."""
    with open(root / "fer2013new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Usage", "Image name", *FERPLUS_COLUMNS])
        w.writerows(rows)


FERPLUS_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]


@pytest.fixture
def ferplus_root(tmp_path: Path) -> Path:
    """fer2013new.csv plus FER2013{Train,Valid,Test}/ PNGs, with a tie, an NF row and soft votes."""
    root = tmp_path / "ferplus"
    rows = []
    n = 0
    for usage, folder in (("Training", "FER2013Train"), ("PublicTest", "FER2013Valid"), ("PrivateTest", "FER2013Test")):
        (root / folder).mkdir(parents=True)
        for column in range(8):
            votes = [0] * 10
            votes[column] = 7
            votes[(column + 1) % 8] = 3
            name = f"fer{n:07d}.png"
            Image.fromarray(face(column % 7, n)).save(root / folder / name)
            rows.append([usage, name, *votes])
            n += 1
        tie = [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]
        nf = [1, 0, 0, 0, 0, 0, 0, 0, 0, 9]
        for votes in (tie, nf):
            name = f"fer{n:07d}.png"
            Image.fromarray(face(0, n)).save(root / folder / name)
            rows.append([usage, name, *votes])
            n += 1
        rows.append([usage, "", *([0] * 10)])  # FER+ leaves some rows without an image name
    write_ferplus_csv(root, rows)
    return root


@pytest.fixture
def ckplus_root(tmp_path: Path) -> Path:
    """CK+48 layout with metadata.csv: 12 subjects, 3 frames per sequence."""
    root = tmp_path / "ckplus48"
    classes = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    lines = ["path,label,subject,sequence,frame"]
    n = 0
    for s in range(12):
        subject = f"S{100 + s:03d}"
        label = classes[s % 7]
        for frame in range(3):
            rel = f"{label}/{subject}_001_{frame:08d}.png"
            (root / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(face(s % 7, n)).save(root / rel)
            lines.append(f"{rel},{label},{subject},{subject}_001,{frame}")
            n += 1
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[[dict[str, int]], Path]:
    """A class-per-folder tree with the given number of images per class."""

    def make(counts: dict[str, int]) -> Path:
        root = tmp_path / "folder"
        n = 0
        for name, count in counts.items():
            (root / name).mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                Image.fromarray(face(FER2013_CLASSES.index(canonical(name)), n)).save(root / name / f"img{n}.png")
                n += 1
        return root

    return make


MakeCheckpoint = Callable[..., Path]


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> MakeCheckpoint:
    """An untrained ``fersnet_tiny`` checkpoint folder under ``tmp_path / name``: for tests that need a real
    checkpoint on disk (loading, transfer, balancing, benchmarks) but not a trained one. The seed makes two
    checkpoints differ where a test needs two models; ``answer`` gives it a second recognition head."""

    def make(name: str = "ckpt", *, sharing: str = "selective", classes: tuple[str, ...] = FER2013_CLASSES,
             seed: int = 0, answer: tuple[str, ...] | None = None, **overrides: Any) -> Path:
        """``answer``: grow an answer tail in those classes (what ``classify`` then answers); ``classes`` stay the
        expression head's."""
        torch.manual_seed(seed)
        model = create_model("fersnet_tiny", sharing=sharing, num_classes=len(classes), **overrides)
        if answer is None:
            return save_checkpoint(tmp_path / name, model, build_card(model, classes, Preprocess()))
        model = with_answer_tail(model, classes, answer)
        return save_checkpoint(tmp_path / name, model, build_card(model, answer, Preprocess(), expressions=classes))

    return make


@pytest.fixture
def no_yuface(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import yuface`` fails, as on a Python for which the package has no wheel (any but 3.11)."""
    real_import = builtins.__import__

    def without_yuface(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "yuface":
            raise ImportError("No module named 'yuface'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_yuface)

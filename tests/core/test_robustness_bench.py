"""bench.robustness: each change keeps the photo's size and mode, the tilt is seeded, and no change is a no-op."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

from bench.robustness import CHANGES, changed_folder


def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(30, 220, (80, 100, 3), dtype=np.uint8), "RGB")


def test_every_change_keeps_the_photo_and_changes_its_pixels_but_one() -> None:
    original = np.asarray(photo())
    for name, change in CHANGES.items():
        changed = change(photo(), random.Random(0))
        assert (changed.size, changed.mode) == ((100, 80), "RGB"), name
        assert np.array_equal(np.asarray(changed), original) == (name == "unchanged"), name


def test_a_changed_folder_keeps_the_classes_and_tilts_alike_for_one_seed(tmp_path: Path) -> None:
    for label in ("happy", "sad"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        photo().save(tmp_path / "photos" / label / "00000.png")
    tilt = CHANGES["tilted up to 20 degrees"]
    first = changed_folder(tmp_path / "photos", tmp_path / "a", tilt, seed=3)
    again = changed_folder(tmp_path / "photos", tmp_path / "b", tilt, seed=3)
    other = changed_folder(tmp_path / "photos", tmp_path / "c", tilt, seed=4)
    assert sorted(p.relative_to(first).as_posix() for p in first.rglob("*.png")) == ["happy/00000.png", "sad/00000.png"]
    read = lambda folder: np.asarray(Image.open(folder / "happy" / "00000.png"))  # noqa: E731
    assert np.array_equal(read(first), read(again)) and not np.array_equal(read(first), read(other))

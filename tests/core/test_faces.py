"""Photo or face crop (model_core.faces.decide_detection): find the face in photo-sized images, not in crops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_core.data import load_records
from model_core.faces import LargestFace, decide_detection, face_finder, photo_sized, typical_side
from model_core.preprocess import Preprocess


def test_photo_sized_means_twice_the_input_or_more() -> None:
    assert not photo_sized(95, 48) and photo_sized(96, 48)


def test_crops_are_classified_whole_and_photos_framed(make_folder: Callable[[dict[str, int]], Path],
                                                      tmp_path: Path) -> None:
    crops = load_records("folder", make_folder({"happy": 3}), "all")
    assert typical_side(crops) == 48
    assert decide_detection("auto", crops, 48).detect is False and decide_detection("auto", crops, 48).photos is False
    photos_root = tmp_path / "photos" / "happy"
    photos_root.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((120, 200), 90, np.uint8)).save(photos_root / f"p{i}.png")
    photos = load_records("folder", tmp_path / "photos", "all")
    auto, no = decide_detection("auto", photos, 48), decide_detection("no", photos, 48)
    assert (auto.detect, auto.photos, auto.side) == (True, True, 200)
    assert (no.detect, no.photos) == (False, True)  # the caller may say that detection was probably wanted
    assert decide_detection("yes", crops, 48).detect is True
    with pytest.raises(ValueError, match="maybe"):
        decide_detection("maybe", crops, 48)


def test_pixel_arrays_are_crops(fer2013_csv: Path) -> None:
    records = load_records("fer2013", fer2013_csv, "test")
    assert typical_side(records) == 0 and decide_detection("auto", records, 48).detect is False


def test_a_finder_only_with_detection() -> None:
    assert face_finder(False, Preprocess()) is None
    assert isinstance(face_finder(True, Preprocess()), LargestFace)

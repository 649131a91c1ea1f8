"""Photo or face crop (model_core.faces.decide_detection): find the face in photo-sized images, not in crops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_core.data import load_records
from model_core.faces import Face, FaceDetector, LargestFace, crop_faces, decide_detection, eye_angle, face_finder, photo_sized, typical_side, whole_image
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


def portrait(angle: float = 0.0) -> Image.Image:
    """Grace Hopper's portrait (matplotlib's sample data, offline) on a grey photo, turned by ``angle`` degrees."""
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        face = Image.open(file).convert("RGB").resize((400, 470), Image.Resampling.LANCZOS)
    photo = Image.new("RGB", (800, 700), (128, 128, 128))
    photo.paste(face, (200, 115))
    return photo.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))


def test_the_eye_line_gives_the_angle_that_turns_the_face_upright() -> None:
    assert eye_angle(np.array([10, 50, 30, 50, 20, 60, 12, 70, 28, 70])) == 0.0
    assert eye_angle(np.array([10, 50, 30, 30, 0, 0, 0, 0, 0, 0])) == pytest.approx(-45.0)  # the line rises: turn clockwise
    (level,) = FaceDetector().detect(portrait())
    assert abs(level.angle) < 5
    for tilt in (-30, -20, 20, 30):  # YuNet's eyes give the tilt's sign and most of its size (about 60-90 % of it here)
        (tilted,) = FaceDetector().detect(portrait(tilt))
        assert np.sign(tilted.angle) == -np.sign(tilt) and 0.5 * abs(tilt) <= abs(tilted.angle) <= 1.2 * abs(tilt), (tilt, tilted)


def test_a_tilted_face_is_cropped_with_its_eyes_nearer_level() -> None:
    """Detected again in its crop, the turned face's eyes slope less than those of the face cropped as it lay."""
    preprocess, detector = Preprocess(), FaceDetector()
    for tilt in (-30, -20, 20, 30):
        photo = portrait(tilt)
        (face,) = detector.detect(photo)
        upright, as_seen = crop_faces(photo, [face], preprocess)[0], preprocess.crop_face(photo, face.box)
        assert upright.size == as_seen.size
        (again,), (before,) = detector.detect(upright.convert("RGB")), detector.detect(as_seen.convert("RGB"))
        assert abs(again.angle) <= 0.6 * abs(before.angle), (tilt, again.angle, before.angle)
    # A ready-made crop passes through; a face with no tilt is cut exactly as before.
    photo = portrait()
    assert crop_faces(photo, [whole_image(photo)], preprocess)[0] is photo
    level = Face(box=(330, 200, 150, 170), score=0.9, angle=0.0)
    assert crop_faces(photo, [level], preprocess)[0].tobytes() == preprocess.crop_face(photo, level.box).tobytes()

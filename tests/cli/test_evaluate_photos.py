"""``fersnet evaluate --detect``: a folder of photos (not face crops) measured the way the service sees them,
by default when its images are much larger than the model's input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fersnet_cli.main import main

from ..shared_fixtures import MakeCheckpoint

EXPRESSIONS = ("angry", "happy", "sad", "surprise")


def evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict, str]:
    main(["evaluate", "--dataset", "folder", "--split", "all", "--json", *argv])
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_photos_without_faces_are_classified_whole_and_counted(
    make_checkpoint: MakeCheckpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "photos"
    for i, name in enumerate(EXPRESSIONS):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (400, 300), (40 * i, 90, 150)).save(root / name / f"empty{i}.png")
    checkpoint = str(make_checkpoint())

    plain, hint = evaluate(capsys, "--checkpoint", checkpoint, "--root", str(root), "--detect", "no")
    assert plain["faceless"] is None and plain["detect"] is False
    assert "add --detect" in hint and "400 pixels across" in hint

    for flag in (["--detect"], ["--detect", "yes"]):
        detected, hint = evaluate(capsys, "--checkpoint", checkpoint, "--root", str(root), *flag)
        assert detected["faceless"] == detected["n"] == 4 and detected["detect"] is True and hint == ""
        # Nothing found: every image classified whole, exactly as without detection.
        assert detected["confusion"] == plain["confusion"]

    main(["evaluate", "--dataset", "folder", "--split", "all", "--checkpoint", checkpoint, "--root", str(root), "--detect"])
    assert "a face found in 0 of 4 images; the others classified whole" in capsys.readouterr().out


def test_auto_detects_in_photos_and_says_so(make_checkpoint: MakeCheckpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --detect, images twice the model's input across or more are taken for photos: their faces are found."""
    root = tmp_path / "photos"
    for i, name in enumerate(EXPRESSIONS):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (96, 80), (40 * i, 90, 150)).save(root / name / f"empty{i}.png")  # the checkpoint's input: 48
    auto, note = evaluate(capsys, "--checkpoint", str(make_checkpoint()), "--root", str(root))
    assert auto["detect"] is True and auto["faceless"] == 4
    assert "96 pixels across, the model's input 48: finding and framing the face" in note and "--detect no" in note


@pytest.mark.parametrize("argv", [[], ["--detect", "auto"], ["--detect", "no"]])
def test_crops_are_classified_whole_without_a_note(
    make_checkpoint: MakeCheckpoint, make_folder, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    result, note = evaluate(capsys, "--checkpoint", str(make_checkpoint()), "--root", str(make_folder({"happy": 2, "sad": 2})), *argv)
    assert result["detect"] is False and result["faceless"] is None and note == ""


def test_an_unknown_detect_mode_is_a_usage_error(make_folder, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--dataset", "folder", "--split", "all", "--root", str(make_folder({"happy": 1})), "--detect", "maybe"])
    assert exit_info.value.code == 2 and "invalid choice: 'maybe'" in capsys.readouterr().err


@pytest.mark.realdata
def test_faces_in_photos_score_as_their_crops(fer2013_test: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FER2013 faces, and the same faces enlarged into larger photos: with --detect the bundled model
    finds the faces and scores the photos about as it scores the crops."""
    rng = random.Random(0)
    crops, photos = tmp_path / "crops", tmp_path / "photos"
    for name in EXPRESSIONS:
        (crops / name).mkdir(parents=True)
        (photos / name).mkdir(parents=True)
        for path in sorted((fer2013_test / name).glob("PublicTest_*.jpg"))[:30]:
            face = Image.open(path).convert("RGB")
            face.save(crops / name / f"{path.stem}.png")
            side = rng.randrange(120, 200)
            photo = Image.new("RGB", (480, 360), (rng.randrange(60, 200), 120, 150))
            photo.paste(face.resize((side, side), Image.Resampling.BICUBIC), (rng.randrange(0, 480 - side), rng.randrange(0, 360 - side)))
            photo.save(photos / name / f"{path.stem}.png")

    on_crops, _ = evaluate(capsys, "--root", str(crops))
    whole, hint = evaluate(capsys, "--root", str(photos), "--detect", "no")
    on_photos, _ = evaluate(capsys, "--root", str(photos))  # --detect auto: 480 pixels across, the model's 48
    assert on_crops["n"] == on_photos["n"] == 120 and not on_crops["detect"] and on_photos["detect"]
    assert on_photos["faceless"] <= 6  # YuNet misses a few of FER2013's turned or covered faces (5 of these 120)
    assert on_photos["accuracy"] == pytest.approx(on_crops["accuracy"], abs=0.1)
    # Classified whole, a photo is mostly background: far worse, and the command says what to do.
    assert whole["accuracy"] < on_photos["accuracy"] - 0.2 and "add --detect" in hint


def test_synthesize_detect_names_a_photo_without_a_face(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "beach.png"
    Image.new("RGB", (400, 300), (90, 120, 150)).save(photo)
    with pytest.raises(SystemExit) as exit_info:
        main(["synthesize", str(photo), "--detect", "--target", "happy", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert f"{photo}: no face found; use --detect no" in capsys.readouterr().err

    main(["synthesize", str(photo), "--target", "happy", "--out", str(tmp_path / "out")])  # auto: redrawn whole
    assert f"fersnet: note: {photo}: no face found; redrawing the whole image" in capsys.readouterr().err
    assert (tmp_path / "out" / "beach_happy.png").is_file()


@pytest.mark.realdata
def test_synthesize_detect_redraws_the_face_in_a_photo(fer2013_test: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Faces pasted into photos, redrawn with --detect, come out close to the same faces redrawn from their crops
    (also through --detect, so both are framed the same way); with --detect no the whole photo is squeezed into
    the input and the results are far off."""
    crops, photos = [], []
    for i, source in enumerate(sorted((fer2013_test / "happy").glob("PublicTest_*.jpg"))[:4]):
        face = Image.open(source).convert("RGB")
        face.save(tmp_path / f"crop{i}.png")
        photo = Image.new("RGB", (480, 360), (90, 120, 150))
        photo.paste(face.resize((160, 160), Image.Resampling.BICUBIC), (250, 120))
        photo.save(tmp_path / f"photo{i}.png")
        crops.append(str(tmp_path / f"crop{i}.png"))
        photos.append(str(tmp_path / f"photo{i}.png"))

    for inputs, out, extra in ((crops, "detected", ["--detect"]), (photos, "detected", ["--detect"]),
                               (photos, "whole", ["--detect", "no"]), (photos, "auto", [])):
        main(["synthesize", *inputs, "--target", "sad", "--format", "face", "--out", str(tmp_path / out), *extra])
    main(["synthesize", *photos, "--target", "sad", "--out", str(tmp_path / "photos")])
    capsys.readouterr()

    def mean_difference(kind: str, folder: str) -> float:
        return float(np.mean([
            np.abs(np.asarray(Image.open(tmp_path / folder / f"{kind}{i}_sad.png"), dtype=float)
                   - np.asarray(Image.open(tmp_path / "detected" / f"crop{i}_sad.png"), dtype=float)).mean()
            for i in range(4)
        ]))

    assert mean_difference("photo", "detected") < 0.5 * mean_difference("photo", "whole")
    assert mean_difference("photo", "auto") == mean_difference("photo", "detected")  # 480 pixels across: found by default
    for i in range(4):  # by default the photo itself comes back, changed only on and around the face pasted at (250, 120)
        before = np.asarray(Image.open(photos[i]), dtype=int)
        after = np.asarray(Image.open(tmp_path / "photos" / f"photo{i}_sad.png"), dtype=int)
        assert after.shape == before.shape
        changed = np.argwhere(np.abs(after - before).max(-1) > 0)
        assert len(changed) > 0
        assert changed[:, 1].min() >= 250 - 20 and changed[:, 1].max() < 250 + 160 + 20
        assert changed[:, 0].min() >= 120 - 20 and changed[:, 0].max() < 120 + 160 + 20


@pytest.mark.usefixtures("no_yuface")
def test_without_yuface_detection_is_one_clear_line(make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "photos"
    for i, name in enumerate(EXPRESSIONS):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (400, 300), (40 * i, 90, 150)).save(root / name / f"empty{i}.png")
    checkpoint = str(make_checkpoint())
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--dataset", "folder", "--split", "all", "--checkpoint", checkpoint, "--root", str(root), "--detect", "yes"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert err.startswith("fersnet: error: face detection needs YuNet") and "--detect no" in err and err.count("\n") == 1
    plain, _ = evaluate(capsys, "--checkpoint", checkpoint, "--root", str(root), "--detect", "no")  # crops need no detector
    assert plain["n"] == 4

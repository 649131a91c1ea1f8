"""``fersnet classify``: every face of photos and crops, answered as the service answers them."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fersnet_cli.main import main
from model_core.expressions import FER2013_CLASSES
from service.settings import Settings

from ..core.fakes import face
from ..service.helpers import serve
from ..shared_fixtures import MakeCheckpoint

PICTURES = Path(__file__).parents[1] / "service" / "pictures"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    main(list(argv))
    return capsys.readouterr().out


async def test_a_photo_is_answered_as_the_service_answers_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The bundled default on a phone's HEIC: the same faces, boxes and probabilities as /v1/classify."""
    heic = PICTURES / "astronaut.heic"
    offline = json.loads(run(capsys, "classify", str(heic), "--json", "--device", "cpu"))
    settings = Settings(checkpoint="default", device="cpu", torch_threads=1, cpu_precision="float32")
    async with serve(settings) as (app, client):
        served = (await client.post("/v1/classify", files={"images": (heic.name, heic.read_bytes(), "image/heic")})).json()
    assert offline["model"] == served["model"] and offline["prior"] == served["prior"] == "balanced"
    assert offline["detect"] is served["detect"] is True
    (mine,), (theirs,) = offline["images"][0]["faces"], served["images"][0]["faces"]
    assert (mine["box"], mine["detection_score"], mine["expression"]) == (theirs["box"], theirs["detection_score"], "happy")
    for name, p in theirs["probabilities"].items():
        assert math.isclose(mine["probabilities"][name], p, abs_tol=1e-5), name
    text = run(capsys, "classify", str(heic), "--device", "cpu")
    assert text.startswith(f"{heic} (256x256): 1 face\n  1. happy ")


def test_crops_are_read_whole_and_a_photo_without_a_face_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_checkpoint: MakeCheckpoint
) -> None:
    checkpoint = make_checkpoint()
    crops = []
    for i in range(3):
        crops.append(tmp_path / f"crop{i}.png")
        Image.fromarray(face(i, i)).save(crops[-1])
    blank = tmp_path / "wall.jpg"
    Image.new("RGB", (320, 240), (120, 130, 140)).save(blank)
    answer = json.loads(run(capsys, "classify", *map(str, crops), "--detect", "no", "--checkpoint", str(checkpoint), "--json"))
    assert answer["detect"] is False
    images = answer["images"]
    assert [image["filename"] for image in images] == ["crop0.png", "crop1.png", "crop2.png"]
    for image in images:
        (one,) = image["faces"]
        assert one["box"] == {"x": 0, "y": 0, "width": 48, "height": 48} and one["detection_score"] is None
        assert list(one["probabilities"]) == list(FER2013_CLASSES)
        assert math.isclose(sum(one["probabilities"].values()), 1.0, abs_tol=1e-5)
        assert one["expression"] == max(one["probabilities"], key=one["probabilities"].get)
    # As the service's detect=true, the default looks for faces: none on a wall is an answer, "faces": []
    found = json.loads(run(capsys, "classify", str(blank), "--checkpoint", str(checkpoint), "--json"))
    assert found["detect"] is True and found["images"][0]["faces"] == []
    assert "wall.jpg (320x240): no face found" in run(capsys, "classify", str(blank), "--checkpoint", str(checkpoint))
    # A crop's answer does not depend on what else was classified with it
    again = json.loads(run(capsys, "classify", str(blank), str(crops[0]), "--checkpoint", str(checkpoint), "--detect", "no", "--json"))
    assert again["images"][1]["faces"] == images[0]["faces"]


def test_a_folder_is_its_pictures_and_skip_bad_leaves_out_what_is_no_picture(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_checkpoint: MakeCheckpoint
) -> None:
    checkpoint, folder = make_checkpoint(), tmp_path / "photos"
    folder.mkdir()
    for name in ("b.png", "a.jpg"):
        Image.fromarray(face(1, 1)).save(folder / name)
    (folder / "notes.txt").write_text("not a picture")  # not a picture's suffix: not listed
    (folder / "broken.png").write_text("not a picture either")
    argv = ["classify", str(folder), "--detect", "no", "--checkpoint", str(checkpoint), "--json"]
    with pytest.raises(SystemExit):
        main(argv)
    err = capsys.readouterr().err
    assert "broken.png: not a JPEG, PNG, WebP" in err and "(--skip-bad passes over such files and answers the rest)" in err
    main([*argv, "--skip-bad"])
    captured = capsys.readouterr()
    assert [image["filename"] for image in json.loads(captured.out)["images"]] == ["a.jpg", "b.png"]
    assert f"fersnet: note: skipped {folder / 'broken.png'}: not a JPEG" in captured.err


def test_a_bad_file_or_prior_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_checkpoint: MakeCheckpoint
) -> None:
    checkpoint = make_checkpoint()  # its card records no class frequencies: natural alone
    good, bad = tmp_path / "good.png", tmp_path / "notes.png"
    Image.fromarray(face(0, 0)).save(good)
    bad.write_text("not a picture")
    for argv, message in (([str(good), str(bad)], f"{bad}: not a JPEG, PNG, WebP, HEIC, AVIF, BMP, GIF, TIFF or PGM/PPM picture, or a damaged one"),
                          ([str(good), "--prior", "balanced"], "records no class frequencies")):
        with pytest.raises(SystemExit) as stopped:
            main(["classify", *argv, "--checkpoint", str(checkpoint), "--detect", "no"])
        assert stopped.value.code == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.out == ""  # nothing half-printed before the error


def test_the_detector_is_needed_only_where_faces_are_looked_for(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_checkpoint: MakeCheckpoint, no_yuface: None
) -> None:
    """Without YuNet (a Python other than 3.11) crops are still classified; a photo asks for it by name."""
    checkpoint, crop, photo = make_checkpoint(), tmp_path / "crop.png", tmp_path / "photo.png"
    Image.fromarray(face(1, 1)).save(crop)
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(photo)
    assert "crop.png (48x48): 1 face" in run(capsys, "classify", str(crop), "--checkpoint", str(checkpoint), "--detect", "no")
    with pytest.raises(SystemExit):
        main(["classify", str(photo), "--checkpoint", str(checkpoint)])
    assert "yuface" in capsys.readouterr().err


def test_a_model_without_class_frequencies_answers_under_the_natural_prior(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_checkpoint: MakeCheckpoint
) -> None:
    crop = tmp_path / "crop.webp"
    buffer = io.BytesIO()
    Image.fromarray(face(2, 2)).save(buffer, "WEBP", lossless=True)
    crop.write_bytes(buffer.getvalue())
    answer = json.loads(run(capsys, "classify", str(crop), "--checkpoint", str(make_checkpoint()), "--json", "--detect", "no"))
    assert answer["prior"] == "natural" and answer["images"][0]["filename"] == "crop.webp"


def test_a_folder_s_subfolders_are_read_and_named_by_their_path_inside_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_checkpoint: MakeCheckpoint
) -> None:
    """A photo library keeps years and albums in subfolders, often with the same file names in each."""
    checkpoint, library = make_checkpoint(), tmp_path / "library"
    for album in ("2024", "2025/june", ".thumbnails"):
        (library / album).mkdir(parents=True)
        Image.fromarray(face(1, 1)).save(library / album / "IMG_1.png")
    main(["classify", str(library), "--detect", "no", "--checkpoint", str(checkpoint), "--json"])
    names = [image["filename"] for image in json.loads(capsys.readouterr().out)["images"]]
    assert names == ["2024/IMG_1.png", "2025/june/IMG_1.png"]  # hidden folders left out
    (library / "empty").mkdir()
    with pytest.raises(SystemExit):
        main(["classify", str(library / "empty"), "--checkpoint", str(checkpoint)])
    assert "no pictures in it or its subfolders" in capsys.readouterr().err


def test_a_terminal_sees_which_photo_is_being_read_and_a_pipe_does_not(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint, folder = make_checkpoint(), tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(face(1, 1)).save(folder / name)
    argv = ["classify", str(folder), "--detect", "no", "--checkpoint", str(checkpoint), "--json"]
    main(argv)
    assert capsys.readouterr().err == ""  # stderr is no terminal here
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    main(argv)
    out, err = capsys.readouterr()
    assert "reading 1 of 2: a.png" in err and "reading 2 of 2: b.png" in err and err.endswith("\r\033[K")
    assert json.loads(out)["images"][1]["filename"] == "b.png"  # the answer itself untouched

"""POST /v1/synthesize: the photo redrawn for one target, JSON or a grid for several, the bare face, and which face was used."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_core.image_formats import is_lossy
from service.settings import Settings

from .helpers import FER_CLASSES, centre_inside, encode, fer_faces, noise_image, noise_png, photo_with_faces, serve

CROP = {"image": ("face.png", noise_png(11), "image/png")}


def colour_photo(size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A colour picture whose channels differ everywhere, so a change of chroma would show."""
    grey = np.asarray(noise_image(5, size), dtype=np.int16)
    return Image.fromarray(np.stack([grey // 2 + 60, grey // 3 + 20, grey // 4 + 100], axis=-1).astype(np.uint8), "RGB")


def png(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_one_target_answers_the_photo_redrawn_at_its_size_in_colour(make_settings: Callable[..., Settings]) -> None:
    photo = colour_photo()
    async with serve(make_settings()) as (app, client):
        as_png = await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false"},
                                   files={"image": ("p.png", encode(photo, "PNG"), "image/png")})
        as_jpeg = await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false"},
                                    files={"image": ("p.jpg", encode(photo, "JPEG", quality=95), "image/jpeg")})
    assert as_png.status_code == 200, as_png.text
    assert as_png.headers["content-type"] == "image/png" and as_jpeg.headers["content-type"] == "image/jpeg"
    redrawn = png(as_png.content)
    assert redrawn.size == photo.size and redrawn.mode == "RGB"
    before, after = np.asarray(photo, dtype=np.int16), np.asarray(redrawn, dtype=np.int16)
    assert np.abs(after - before).max() > 0  # the face (here the whole picture) changed
    unclipped = (after > 0).all(-1) & (after < 255).all(-1)
    # Only brightness changes: the same amount is added to R, G and B, so their differences (chroma) hold.
    assert np.array_equal((after[..., 0] - after[..., 1])[unclipped], (before[..., 0] - before[..., 1])[unclipped])
    assert Image.open(io.BytesIO(as_jpeg.content)).size == photo.size


async def test_the_redrawn_photo_keeps_the_uploads_colour_profile(make_settings: Callable[..., Settings]) -> None:
    """A Display P3 or Adobe RGB photo read without its profile shows other colours: every format carries it back."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = colour_photo()
    async with serve(make_settings()) as (app, client):
        answers = {
            fmt: await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false"},
                                   files={"image": (f"p.{fmt.lower()}", encode(photo, fmt, icc_profile=profile), "image/*")})
            for fmt in ("JPEG", "WEBP", "PNG")
        }
        several = await client.post("/v1/synthesize", params={"targets": "happy,sad", "detect": "false"},
                                    files={"image": ("p.jpg", encode(photo, "JPEG", icc_profile=profile), "image/jpeg")})
    for fmt, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert Image.open(io.BytesIO(answer.content)).info.get("icc_profile") == profile, fmt
    for item in several.json()["images"]:
        assert Image.open(io.BytesIO(base64.b64decode(item["image_base64"]))).info.get("icc_profile") == profile


async def test_a_phone_s_heic_comes_back_as_jpeg_and_an_avif_as_avif(make_settings: Callable[..., Settings]) -> None:
    """Nothing here writes HEIC, so a HEIC is answered as JPEG; an AVIF is answered as AVIF. Both upright, at the
    upload's size, with its colour profile."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    uploads = {
        "turned.heic": (Path(__file__).parent / "pictures" / "turned.heic").read_bytes(),
        "photo.avif": encode(colour_photo(), "AVIF", icc_profile=profile, quality=90),
    }
    async with serve(make_settings()) as (app, client):
        answers = {name: await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false"},
                                           files={"image": (name, data, "image/*")})
                   for name, data in uploads.items()}
    for answer in answers.values():
        assert answer.status_code == 200, answer.text
    assert answers["turned.heic"].headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(answers["turned.heic"].content)).size == (32, 64)  # upright, as uploaded
    assert answers["photo.avif"].headers["content-type"] == "image/avif"
    redrawn = Image.open(io.BytesIO(answers["photo.avif"].content))
    assert redrawn.format == "AVIF" and redrawn.size == colour_photo().size and redrawn.info.get("icc_profile") == profile


async def test_a_webp_is_answered_at_its_own_fidelity(make_settings: Callable[..., Settings]) -> None:
    """A phone's or a browser's WebP is lossy: answering it losslessly made a 12-megapixel answer several times
    slower and larger. A lossless WebP still comes back lossless."""
    photo = colour_photo()
    async with serve(make_settings()) as (app, client):
        answers = {lossless: await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false"},
                                               files={"image": ("p.webp", encode(photo, "WEBP", lossless=lossless, quality=90), "image/webp")})
                   for lossless in (True, False)}
    for lossless, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "image/webp"
        assert is_lossy("WEBP", answer.content) is not lossless


async def test_format_face_answers_the_bare_model_sized_face(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        response = await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false", "format": "face"}, files=CROP)
        older = await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false", "format": "png"}, files=CROP)
    assert response.status_code == 200, response.text
    assert older.content == response.content  # png is face's older name
    assert response.headers["content-type"] == "image/png"
    face = png(response.content)
    assert face.size == (48, 48) and face.mode == "L"
    assert response.headers["x-face-box"] == "0,0,48,48"
    assert response.headers["x-expressions"] == "happy"
    assert "x-face-score" not in response.headers  # detection was skipped


async def test_several_targets_answer_json_in_request_order(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        response = await client.post(
            "/v1/synthesize", params=[("targets", "surprise,happiness"), ("targets", "sad"), ("detect", "false")], files=CROP
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["expression"] for item in body["images"]] == ["surprise", "happy", "sad"]  # aliases canonicalised
    assert {item["media_type"] for item in body["images"]} == {"image/png"}
    faces = [png(base64.b64decode(item["image_base64"])) for item in body["images"]]
    assert all(face.size == (body["width"], body["height"]) == (48, 48) for face in faces)
    assert len({face.tobytes() for face in faces}) == 3  # each target drew a different face
    assert body["face"] == {"index": 0, "box": {"x": 0, "y": 0, "width": 48, "height": 48}, "detection_score": None, "faces_found": 1}


async def test_targets_may_come_as_form_fields(make_settings: Callable[..., Settings]) -> None:
    """curl -F image=@face.png -F targets=happy -F targets=sad: the form and the query say the same."""
    async with serve(make_settings()) as (app, client):
        response = await client.post(
            "/v1/synthesize", params={"detect": "false"}, data={"targets": ["happy", "sad"]}, files=CROP
        )
    assert response.status_code == 200, response.text
    assert [item["expression"] for item in response.json()["images"]] == ["happy", "sad"]


async def test_every_option_may_come_as_a_form_field(make_settings: Callable[..., Settings]) -> None:
    """curl -F image=@face.png -F targets=all -F detect=false -F format=grid: nothing sent is ignored."""
    form = {"targets": "all", "detect": "false", "format": "grid", "face": "0"}
    async with serve(make_settings()) as (app, client):
        response = await client.post("/v1/synthesize", data=form, files=CROP)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"  # a grid, not the default JSON for several targets
    assert response.headers["x-face-box"] == "0,0,48,48" and "x-face-score" not in response.headers  # detection skipped
    assert png(response.content).width > 96 * len(FER_CLASSES)


async def test_all_targets_as_a_grid(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        response = await client.post("/v1/synthesize", params={"targets": "all", "format": "grid", "detect": "false"}, files=CROP)
    assert response.status_code == 200, response.text
    grid = png(response.content)
    assert response.headers["x-expressions"] == ",".join(FER_CLASSES)
    assert grid.width >= 8 * 128 and grid.height < 2 * 128  # one row: the input and seven faces, 128 px tiles
    assert grid.mode == "RGB"


@pytest.mark.realdata
async def test_the_face_found_in_a_photo_is_used_and_reported(make_settings: Callable[..., Settings], fer2013_test: Path) -> None:
    big, small = fer_faces(fer2013_test, "neutral", 2)
    photo = photo_with_faces([big, small], [(20, 40, 170), (300, 100, 110)], size=(460, 300), fmt="PNG")
    files = {"image": ("photo.png", photo, "image/png")}
    async with serve(make_settings()) as (app, client):
        largest = await client.post("/v1/synthesize", params={"targets": "all"}, files=files)
        second = await client.post("/v1/synthesize", params={"targets": "happy", "face": "1"}, files=files)
        metrics = (await client.get("/metrics")).text
    assert largest.status_code == 200, largest.text
    body = largest.json()
    assert body["face"]["faces_found"] == 2 and body["face"]["index"] == 0
    assert centre_inside(body["face"]["box"], 20, 40, 170)
    assert [item["expression"] for item in body["images"]] == list(FER_CLASSES)
    original = np.asarray(png(photo).convert("RGB"), dtype=np.int16)
    box = body["face"]["box"]
    for item in body["images"]:
        redrawn = np.asarray(png(base64.b64decode(item["image_base64"])), dtype=np.int16)
        assert redrawn.shape == original.shape  # the whole photo, at its size
        changed = np.argwhere(np.abs(redrawn - original).max(-1) > 0)
        assert len(changed) > 0
        # Every changed pixel lies in the square the face was cut from (the box framed as in training, turned with
        # the face about its centre; model_core.photo_edit tests the turn itself): within its corners' circle.
        side = max(box["width"], box["height"])
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        assert (np.hypot(changed[:, 1] - cx, changed[:, 0] - cy) <= side / 2 * np.sqrt(2) + 2).all()
    assert second.status_code == 200 and second.headers["content-type"] == "image/png"
    assert second.headers["x-face-index"] == "1" and second.headers["x-faces-found"] == "2"
    x, y, w, h = (int(v) for v in second.headers["x-face-box"].split(","))
    assert centre_inside({"x": x, "y": y, "width": w, "height": h}, 300, 100, 110)
    assert 0.5 <= float(second.headers["x-face-score"]) <= 1.0
    # one face with seven targets, one with one: two faces through the synthesis model, each encoded once
    assert 'fersnet_images_total{endpoint="synthesize"} 2.0' in metrics


async def test_intensity_zero_returns_the_face_unchanged_whatever_the_target(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        faces = [await client.post("/v1/synthesize", params={"targets": target, "detect": "false", "format": "face",
                                                             "intensity": "0"}, files=CROP) for target in ("happy", "sad")]
        strong = await client.post("/v1/synthesize", data={"targets": "happy,sad", "detect": "false", "intensity": "2"},
                                   files=CROP)
        too_strong = await client.post("/v1/synthesize", params={"targets": "happy", "intensity": "4"}, files=CROP)
    assert all(f.status_code == 200 for f in faces), faces[0].text
    assert faces[0].content == faces[1].content  # no edit at all: the same input face for both targets
    assert faces[0].headers["x-intensity"] == "0"
    assert strong.status_code == 200, strong.text
    assert strong.json()["intensity"] == 2.0 and strong.headers["x-intensity"] == "2"
    assert too_strong.status_code == 422 and too_strong.json()["error"]["code"] == "invalid_parameter"
    assert "intensity" in too_strong.text


async def test_without_intensity_the_cards_default_applies(make_settings: Callable[..., Settings], tiny_checkpoint: Path,
                                                           tmp_path: Path) -> None:
    folder = tmp_path / "stronger"
    shutil.copytree(tiny_checkpoint, folder)
    card = json.loads((folder / "card.json").read_text())
    card["intensity"] = {"default": 1.5, "chosen_on": "a test"}
    (folder / "card.json").write_text(json.dumps(card))
    async with serve(make_settings(checkpoint=str(folder))) as (app, client):
        models = await client.get("/v1/models")
        default = await client.post("/v1/synthesize", params={"targets": "happy,sad", "detect": "false"}, files=CROP)
        asked = await client.post("/v1/synthesize", params={"targets": "happy,sad", "detect": "false", "intensity": "1.5"},
                                  files=CROP)
    assert models.json()["intensity"] == 1.5
    assert default.json()["intensity"] == 1.5 and default.json()["images"] == asked.json()["images"]

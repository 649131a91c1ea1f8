"""POST /v1/synthesize: PNG for one target, JSON or a grid for several, and which face was used."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from service.settings import Settings

from .helpers import FER_CLASSES, centre_inside, fer_faces, noise_png, photo_with_faces, serve

CROP = {"image": ("face.png", noise_png(11), "image/png")}


def png(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_one_target_answers_a_png_face(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        response = await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false"}, files=CROP)
    assert response.status_code == 200, response.text
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
    faces = [png(base64.b64decode(item["png_base64"])) for item in body["images"]]
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
    assert png(response.content).width > 48 * len(FER_CLASSES)


async def test_all_targets_as_a_grid(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        response = await client.post("/v1/synthesize", params={"targets": "all", "format": "grid", "detect": "false"}, files=CROP)
    assert response.status_code == 200, response.text
    grid = png(response.content)
    assert response.headers["x-expressions"] == ",".join(FER_CLASSES)
    assert grid.width >= 8 * 96 and grid.height < 2 * 96  # one row: the input and seven faces, enlarged to 96 px


@pytest.mark.realdata
async def test_the_face_found_in_a_photo_is_used_and_reported(make_settings: Callable[..., Settings], fer2013_test: Path) -> None:
    big, small = fer_faces(fer2013_test, "neutral", 2)
    photo = photo_with_faces([big, small], [(20, 40, 170), (300, 100, 110)], size=(460, 300))
    files = {"image": ("photo.jpg", photo, "image/jpeg")}
    async with serve(make_settings()) as (app, client):
        largest = await client.post("/v1/synthesize", params={"targets": "all"}, files=files)
        second = await client.post("/v1/synthesize", params={"targets": "happy", "face": "1"}, files=files)
        metrics = (await client.get("/metrics")).text
    assert largest.status_code == 200, largest.text
    body = largest.json()
    assert body["face"]["faces_found"] == 2 and body["face"]["index"] == 0
    assert centre_inside(body["face"]["box"], 20, 40, 170)
    assert [item["expression"] for item in body["images"]] == list(FER_CLASSES)
    assert all(png(base64.b64decode(item["png_base64"])).size == (48, 48) for item in body["images"])
    assert second.status_code == 200 and second.headers["content-type"] == "image/png"
    assert second.headers["x-face-index"] == "1" and second.headers["x-faces-found"] == "2"
    x, y, w, h = (int(v) for v in second.headers["x-face-box"].split(","))
    assert centre_inside({"x": x, "y": y, "width": w, "height": h}, 300, 100, 110)
    assert 0.5 <= float(second.headers["x-face-score"]) <= 1.0
    # seven targets of one face plus one: eight images through the synthesis model
    assert 'fersnet_images_total{endpoint="synthesize"} 8.0' in metrics

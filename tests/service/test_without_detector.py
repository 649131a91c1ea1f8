"""A Python without YuNet (``yuface`` has wheels for 3.11 only): the service serves face crops and refuses detection clearly."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from model_core import faces
from model_core.faces import DetectorUnavailable, FaceDetector
from service.settings import Settings

from .helpers import assert_error, blank_photo, noise_png, runtime_of, serve

CROP = ("face.png", noise_png(3), "image/png")



def test_a_detector_without_yuface_says_why_and_what_to_do(no_yuface: None) -> None:
    with pytest.raises(DetectorUnavailable) as raised:
        FaceDetector()
    message = str(raised.value)
    assert "yuface" in message and "--detect no" in message
    assert raised.value.reason in message


def test_with_yuface_the_detector_is_there() -> None:
    assert FaceDetector().detect(faces.Image.new("RGB", (160, 120), (128, 128, 128))) == []


async def test_crops_are_served_and_detection_is_refused_before_decoding(no_yuface: None, make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        assert runtime_of(app).detector is None
        crop = await client.post("/v1/classify", params={"detect": "false"}, files={"images": CROP})
        photo = await client.post("/v1/classify", files={"images": ("photo.png", blank_photo(), "image/png")})
        redraw = await client.post("/v1/synthesize", params={"targets": "happy"}, files={"image": CROP})
        redraw_crop = await client.post("/v1/synthesize", params={"targets": "happy", "detect": "false", "format": "face"},
                                        files={"image": CROP})
        garbage = await client.post("/v1/classify", files={"images": ("photo.png", b"not an image at all", "image/png")})
        info = (await client.get("/v1/models")).json()
    assert crop.status_code == 200, crop.text
    assert redraw_crop.status_code == 200, redraw_crop.text
    for refused in (photo, redraw, garbage):  # garbage: refused before its bytes were looked at (else a 400)
        error = assert_error(refused, 501, "detection_unavailable")
        assert "detect=false" in error["message"] and "yuface" in error["message"]
    assert info["runtime"]["face_detection"] is False

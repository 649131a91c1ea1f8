"""POST /v1/preview: an upload as the service reads it, as a JPEG any browser shows (the page asks for HEIC, AVIF, TIFF)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from service.settings import Settings

from .helpers import assert_error, encode, held_model, noise_image, noise_png, png_header_only, runtime_of, serve, until

PICTURES = Path(__file__).parent / "pictures"


def jpeg_picture(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    assert picture.format == "JPEG"
    return picture.convert("RGB")


async def test_a_phone_heic_comes_back_upright_as_jpeg(make_settings: Callable[..., Settings]) -> None:
    """The HEIC stored on its side (EXIF orientation 6, green on its left): shown upright, green on top, 32x64."""
    heic = (PICTURES / "turned.heic").read_bytes()
    async with serve(make_settings()) as (app, client):
        response = await client.post("/v1/preview", files={"image": ("IMG_0001.heic", heic, "image/heic")})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    picture = np.asarray(jpeg_picture(response.content), dtype=int)
    assert picture.shape == (64, 32, 3)
    top, bottom = picture[:12].mean(axis=(0, 1)), picture[-12:].mean(axis=(0, 1))
    assert top[1] > 150 > top[0] and bottom[0] > 150 > bottom[1], (top, bottom)


async def test_a_large_photo_is_made_no_larger_than_max_side_keeping_its_proportions(make_settings: Callable[..., Settings]) -> None:
    photo = encode(noise_image(5, (3000, 1200), "RGB"), "PNG")
    async with serve(make_settings()) as (app, client):
        default = await client.post("/v1/preview", files={"image": ("wide.png", photo, "image/png")})
        asked = await client.post("/v1/preview", params={"max_side": 300}, files={"image": ("wide.png", photo, "image/png")})
        as_form = await client.post("/v1/preview", data={"max_side": "300"}, files={"image": ("wide.png", photo, "image/png")})
        assert runtime_of(app).pixels.used == 0
    assert jpeg_picture(default.content).size == (1024, 410)
    assert jpeg_picture(asked.content).size == (300, 120)
    assert as_form.content == asked.content


async def test_a_small_picture_keeps_its_size_and_looks(make_settings: Callable[..., Settings]) -> None:
    crop = Image.open(io.BytesIO(noise_png(3, (48, 48)))).convert("RGB")
    async with serve(make_settings()) as (app, client):
        response = await client.post("/v1/preview", files={"image": ("crop.tiff", encode(crop, "TIFF"), "image/tiff")})
    picture = jpeg_picture(response.content)
    assert picture.size == (48, 48)
    # Noise is JPEG's worst case; at quality 85 it stays within a few grey levels on average.
    assert np.abs(np.asarray(picture, dtype=int) - np.asarray(crop, dtype=int)).mean() < 12


async def test_bad_uploads_and_options_are_4xx_with_the_json_error(make_settings: Callable[..., Settings]) -> None:
    jpeg = encode(noise_image(2, (120, 120), "RGB"), "JPEG")
    async with serve(make_settings()) as (app, client):
        cases = [
            (await client.post("/v1/preview", files={"image": ("t.jpg", jpeg[: len(jpeg) // 3], "image/jpeg")}), 400, "bad_image"),
            (await client.post("/v1/preview", files={"image": ("e.jpg", b"", "image/jpeg")}), 400, "empty_image"),
            (await client.post("/v1/preview", files={"image": ("n.txt", b"hello", "text/plain")}), 415, "unsupported_media_type"),
            (await client.post("/v1/preview", files={"image": ("b.png", png_header_only(20_000, 20_000), "image/png")}), 413,
             "too_many_pixels"),
            (await client.post("/v1/preview", params={"max_side": 5000}, files={"image": ("a.jpg", jpeg, "image/jpeg")}), 422,
             "invalid_parameter"),
            (await client.post("/v1/preview", params={"size": 100}, files={"image": ("a.jpg", jpeg, "image/jpeg")}), 422,
             "invalid_parameter"),
            (await client.post("/v1/preview", files={"images": ("a.jpg", jpeg, "image/jpeg")}), 422, "invalid_parameter"),
        ]
        for response, status, code in cases:
            assert_error(response, status, code)
        assert (await client.post("/v1/preview", files={"image": ("a.jpg", jpeg, "image/jpeg")})).status_code == 200
        assert runtime_of(app).pixels.used == 0


async def test_a_preview_is_charged_to_the_pixel_budget_like_any_upload(make_settings: Callable[..., Settings]) -> None:
    """While a classify request holds the budget, a preview that does not fit is refused at once with 429."""
    settings = make_settings(max_inflight_pixels=120 * 120, max_batch_size=1, max_wait_ms=0, retry_after_s=2)
    big = noise_png(1, (120, 100))
    async with serve(settings) as (app, client), held_model(app) as gate:
        first = asyncio.create_task(client.post("/v1/classify", params={"detect": "false"}, files={"images": ("big.png", big, "image/png")}))
        await gate.wait_entered()
        refused = await client.post("/v1/preview", files={"image": ("big.png", big, "image/png")})
        assert_error(refused, 429, "queue_full")
        assert refused.headers["retry-after"] == "2"
        gate.release()
        assert (await first).status_code == 200
        await until(lambda: runtime_of(app).pixels.used == 0)
        assert (await client.post("/v1/preview", files={"image": ("big.png", big, "image/png")})).status_code == 200

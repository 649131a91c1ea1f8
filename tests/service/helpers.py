"""Builders for the service tests: tiny checkpoints, running apps, and images made on the spot."""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI
from PIL import Image

from service.app import create_app
from service.runtime import Runtime
from service.settings import Settings

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Training class frequencies for a model that answers FER+'s eight classes: a third neutral and a quarter happy, as
#: FER+'s votes; disgust over a hundred times rarer than neutral.
FREQUENCIES = {"angry": 0.08, "disgust": 0.002, "fear": 0.04, "happy": 0.26, "sad": 0.14, "surprise": 0.12, "neutral": 0.34,
               "contempt": 0.018}


# --------------------------------------------------------------------------- running apps


@asynccontextmanager
async def serve(settings: Settings, *, wait: bool = True) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with its lifespan running, and an httpx client talking to it in-process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as client:
            if wait:
                await runtime_of(app).wait_warm()
                assert runtime_of(app).ready, runtime_of(app).failure
            yield app, client


def runtime_of(app: FastAPI) -> Runtime:
    return app.state.runtime


class Gate:
    """Holds the compute thread inside a wrapped function until released (to fill queues on purpose)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        if not self.released.wait(timeout=60):
            raise RuntimeError("gate never released")
        return self.fn(*args, **kwargs)

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 30), "compute never started"

    def release(self) -> None:
        self.released.set()


@asynccontextmanager
async def held_model(app: FastAPI) -> AsyncIterator[Gate]:
    """Make the app's classifier wait inside the model until the test opens the gate."""
    engine = runtime_of(app).engine
    assert engine is not None
    gate = Gate(engine.classify)
    engine.classify = gate  # type: ignore[method-assign]  # the instance attribute shadows the method
    try:
        yield gate
    finally:
        gate.release()


async def classify_crop(client: httpx.AsyncClient, seed: int = 7) -> httpx.Response:
    """One ready-made face crop (noise, ``seed``) sent to /v1/classify without detection."""
    return await client.post("/v1/classify", params={"detect": "false"}, files={"images": ("face.png", noise_png(seed), "image/png")})


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds (polling the event loop), or fail."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition never became true"
        await asyncio.sleep(0.005)


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text page (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        if series == name and not labels:
            return float(value)
        if series.startswith(name + "{"):
            got = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if got == wanted:
                return float(value)
    return 0.0


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the one JSON error shape with this status (and code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


# --------------------------------------------------------------------------- images


def encode(image: Image.Image, fmt: str = "PNG", **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise_image(seed: int, size: tuple[int, int] = (48, 48), mode: str = "L") -> Image.Image:
    """A distinct random picture per seed (no face in it)."""
    rng = np.random.default_rng(seed)
    channels = 1 if mode == "L" else 3
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode=mode)


def noise_png(seed: int = 0, size: tuple[int, int] = (48, 48)) -> bytes:
    return encode(noise_image(seed, size))


def blank_photo(size: tuple[int, int] = (320, 240)) -> bytes:
    return encode(Image.new("RGB", size, (90, 120, 150)), "JPEG", quality=90)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels but carries almost no data: a decompression-bomb stand-in."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def fer_faces(fer2013_test: Path, expression: str, count: int) -> list[Path]:
    files = sorted((fer2013_test / expression).glob("PublicTest_*.jpg"))[:count]
    assert len(files) == count, f"expected {count} FER2013 {expression} faces"
    return files


def photo_with_faces(faces: list[Path], places: list[tuple[int, int, int]], size: tuple[int, int] = (400, 300), fmt: str = "JPEG") -> bytes:
    """A photo of ``size`` with each FER2013 face enlarged to ``side`` pixels and pasted at (x, y)."""
    photo = Image.new("RGB", size, (90, 120, 150))
    for path, (x, y, side) in zip(faces, places, strict=True):
        face = Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        photo.paste(face, (x, y))
    return encode(photo, fmt, **({"quality": 92} if fmt == "JPEG" else {}))


def centre_inside(box: dict[str, int], x: int, y: int, side: int) -> bool:
    """Whether a returned box's centre lies inside the pasted square (x, y, side)."""
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    return x <= cx <= x + side and y <= cy <= y + side

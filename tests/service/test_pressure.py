"""Under pressure: requests counted from arrival, pixels charged before decoding, answers never stuck behind decodes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence

import anyio
import pytest

from service.batching import BatchedAPI, Batcher, Deadline, Decoded
from service.budget import PixelBudget, PixelNeed
from service.errors import PayloadTooLarge, QueueFull
from service.images import Upload, probe
from service.metrics import ServiceMetrics
from service.settings import Settings

from .helpers import assert_error, classify_crop, encode, held_model, metric_value, noise_image, noise_png, png_header_only, runtime_of, serve, until

# --------------------------------------------------------------------------- admission


async def test_past_the_admission_limit_429_comes_at_once_with_retry_after(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(max_inflight_requests=1, retry_after_s=3, max_batch_size=1, max_wait_ms=0)
    async with serve(settings) as (app, client), held_model(app) as gate:
        first = asyncio.create_task(classify_crop(client, 1))
        await gate.wait_entered()  # one request is inside the model: the limit is reached
        started = time.perf_counter()
        refused = await classify_crop(client, 2)
        elapsed = time.perf_counter() - started
        assert_error(refused, 429, "queue_full")
        assert refused.headers["retry-after"] == "3"
        assert elapsed < 1.0  # answered without waiting for the model
        assert not first.done()
        probes = await client.get("/readyz")  # probes and metrics are never counted
        assert probes.status_code == 200
        gate.release()
        assert (await first).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert metric_value(metrics, "fersnet_refused_total", reason="inflight") == 1
    assert metric_value(metrics, "fersnet_inflight_requests") == 0


async def test_a_refused_request_is_not_read_nor_decoded(make_settings: Callable[..., Settings]) -> None:
    """The 429 is sent before the body is read: a body that would take forever to arrive does not delay it."""
    settings = make_settings(max_inflight_requests=1, max_batch_size=1, max_wait_ms=0)
    async with serve(settings) as (app, client), held_model(app) as gate:
        first = asyncio.create_task(classify_crop(client, 1))
        await gate.wait_entered()
        read = threading.Event()

        async def endless_body() -> AsyncIterator[bytes]:
            read.set()
            await asyncio.sleep(3600)
            yield b""

        headers = {"content-type": "multipart/form-data; boundary=x"}
        refused = await asyncio.wait_for(client.post("/v1/classify", content=endless_body(), headers=headers), timeout=10)
        assert_error(refused, 429, "queue_full")
        assert not read.is_set()  # not one byte of the body was asked for
        gate.release()
        assert (await first).status_code == 200


# --------------------------------------------------------------------------- the pixel budget


def test_a_probe_reads_the_header_only_and_counts_reduced_decoding() -> None:
    bomb = png_header_only(6000, 6000)  # no pixel data at all: decoding it would fail
    p = probe(Upload(bomb), max_pixels=40_000_000)
    assert p.size == (6000, 6000) and p.decoded_pixels == 36_000_000
    assert p.kept_pixels == 3000 * 3000  # reduced by 2 (never below 2048 a side)
    jpeg = encode(noise_image(1, (4800, 3000), "RGB"), "JPEG", quality=30)
    q = probe(Upload(jpeg), max_pixels=40_000_000)
    assert q.size == (4800, 3000)
    assert q.decoded_pixels == q.kept_pixels == 2400 * 1500  # libjpeg decodes it at 1/2: still at least 2048 wide
    small = probe(Upload(noise_png(1)), max_pixels=10_000)
    assert small.decoded_pixels == small.kept_pixels == 48 * 48


def test_the_budget_refuses_what_can_never_fit_with_413_and_what_does_not_fit_now_with_429() -> None:
    budget = PixelBudget(per_request=100, in_flight=150, retry_after_s=2)
    with pytest.raises(PayloadTooLarge):
        budget.lease(PixelNeed(total=101, peak=10))
    first = budget.lease(PixelNeed(total=100, peak=100))
    with pytest.raises(QueueFull) as full:
        budget.lease(PixelNeed(total=60, peak=60))
    assert full.value.headers == {"Retry-After": "2"}
    with budget.lease(PixelNeed(total=50, peak=50)):
        assert budget.used == 150
    assert budget.used == 100
    first.release()
    first.release()  # idempotent
    assert budget.used == 0


def test_the_budget_says_when_it_empties_after_large_leases() -> None:
    idle: list[int] = []
    budget = PixelBudget(per_request=100, in_flight=100, on_idle=lambda: idle.append(budget.used), idle_after=50)
    with budget.lease(PixelNeed(total=30, peak=30)):
        pass
    assert idle == []  # 30 released: not worth a trim yet
    first, second = budget.lease(PixelNeed(total=30, peak=30)), budget.lease(PixelNeed(total=30, peak=30))
    first.release()
    assert idle == []  # still in use
    second.release()
    assert idle == [0]


async def test_a_request_over_the_pixel_budget_is_413_before_decoding(make_settings: Callable[..., Settings]) -> None:
    # Header-only PNGs would fail to decode (400): a 413 proves they were refused from their headers.
    settings = make_settings(max_image_pixels=4_000_000, max_request_pixels=6_000_000)
    async with serve(settings) as (app, client):
        files = [("images", (f"{i}.png", png_header_only(2000, 2000), "image/png")) for i in range(2)]
        refused = await client.post("/v1/classify", params={"detect": "false"}, files=files)
        error = assert_error(refused, 413, "payload_too_large")
        assert "8,000,000 pixels" in error["message"]
        one = await client.post("/v1/classify", params={"detect": "false"}, files=files[:1])
        assert_error(one, 400, "bad_image")  # within budget: decoded, and found to be no image
        assert runtime_of(app).pixels.used == 0  # every lease returned, refused or answered


async def test_pixels_held_by_requests_in_flight_make_others_wait_outside_with_429(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(max_inflight_pixels=120 * 120, max_batch_size=1, max_wait_ms=0, retry_after_s=2)
    async with serve(settings) as (app, client), held_model(app) as gate:
        big = {"images": ("big.png", noise_png(1, (120, 100)), "image/png")}
        first = asyncio.create_task(client.post("/v1/classify", params={"detect": "false"}, files=big))
        await gate.wait_entered()
        assert runtime_of(app).pixels.used == 120 * 100  # held until the request is answered
        refused = await client.post("/v1/classify", params={"detect": "false"}, files=big)
        assert_error(refused, 429, "queue_full")
        assert refused.headers["retry-after"] == "2"
        gate.release()
        assert (await first).status_code == 200
        await until(lambda: runtime_of(app).pixels.used == 0)
        assert (await client.post("/v1/classify", params={"detect": "false"}, files=big)).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert metric_value(metrics, "fersnet_refused_total", reason="pixels") == 1


async def test_a_large_png_is_kept_reduced_and_boxes_map_back(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (app, client):
        data = encode(noise_image(3, (4200, 300), "L"), "PNG")
        response = await client.post("/v1/classify", params={"detect": "false"}, files={"images": ("wide.png", data, "image/png")})
    assert response.status_code == 200, response.text
    image = response.json()["images"][0]
    assert (image["width"], image["height"]) == (4200, 300)
    assert image["faces"][0]["box"] == {"x": 0, "y": 0, "width": 4200, "height": 300}


# --------------------------------------------------------------------------- answers are not starved by decoding


class SlowDecoder(BatchedAPI[str, None, str, str, str]):
    """Requests are names; decoding 'slow' blocks until released; the model upper-cases."""

    name = "slow"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.decoding = threading.Event()

    def decode(self, request: str) -> Decoded[None, str]:
        if request.startswith("slow"):
            self.decoding.set()
            assert self.release.wait(30)
        return Decoded(None, [request])

    def batch(self, items: Sequence[str]) -> list[str]:
        return list(items)

    def predict(self, batch: list[str]) -> list[str]:
        return [x.upper() for x in batch]

    def unbatch(self, output: list[str], count: int) -> list[str]:
        return output[:count]

    def encode(self, decoded: Decoded[None, str], outputs: Sequence[str]) -> str:
        return outputs[0]


async def test_a_computed_answer_is_encoded_while_every_decode_thread_is_busy() -> None:
    api = SlowDecoder()

    async def compute(fn: Callable[[], object]) -> object:
        return await asyncio.to_thread(fn)

    batcher = Batcher(
        api, compute=compute, workers=anyio.CapacityLimiter(1), metrics=ServiceMetrics(), max_batch_size=4, max_wait_s=0.0, max_queue=16
    )
    batcher.start()
    try:
        blocked = asyncio.create_task(batcher.handle("slow", Deadline.after(30)))
        assert await asyncio.to_thread(api.decoding.wait, 10)  # the only decode thread is taken
        quick = Decoded(None, ["quick"])
        outputs = await batcher.submit(quick.items, Deadline.after(30))
        # Encoding draws on its own limit: it must not wait for the blocked decode.
        encoded = await asyncio.wait_for(anyio.to_thread.run_sync(api.encode, quick, outputs, limiter=batcher._encoders), timeout=5)
        assert encoded == "QUICK"
        api.release.set()
        assert await blocked == "SLOW"
    finally:
        api.release.set()
        await batcher.stop()

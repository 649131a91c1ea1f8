"""Concurrent requests are merged into shared forward passes, and every answer is its own request's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.engine import Engine
from service.settings import Settings

from .helpers import metric_value, noise_png, serve


async def classify(client: httpx.AsyncClient, seed: int) -> httpx.Response:
    return await client.post("/v1/classify", params={"detect": "false"}, files={"images": (f"{seed}.png", noise_png(seed), "image/png")})


async def test_64_concurrent_requests_run_in_fewer_batches(make_settings: Callable[..., Settings]) -> None:
    # A long max_wait makes merging certain: each batch closes as soon as it holds 16 images.
    settings = make_settings(max_batch_size=16, max_wait_ms=10_000)
    async with serve(settings) as (app, client):
        responses = await asyncio.gather(*(classify(client, seed) for seed in range(64)))
        metrics = (await client.get("/metrics")).text
    assert [r.status_code for r in responses] == [200] * 64
    batches = metric_value(metrics, "fersnet_batch_size_count", endpoint="classify")
    images = metric_value(metrics, "fersnet_batch_size_sum", endpoint="classify")
    assert images == 64
    assert batches == 4  # 64 images, 16 per pass
    assert metric_value(metrics, "fersnet_images_total", endpoint="classify") == 64
    assert metric_value(metrics, "fersnet_requests_total", route="/v1/classify", method="POST", status="200") == 64


async def test_batched_answers_match_answers_computed_alone(make_settings: Callable[..., Settings]) -> None:
    seeds = list(range(100, 112))
    async with serve(make_settings(max_batch_size=8, max_wait_ms=200)) as (app, client):
        alone = [await classify(client, seed) for seed in seeds]
        together = await asyncio.gather(*(classify(client, seed) for seed in reversed(seeds)))
        metrics = (await client.get("/metrics")).text
    assert metric_value(metrics, "fersnet_batch_size_count", endpoint="classify") < 2 * len(seeds)  # some merged
    for single, merged in zip(alone, reversed(together), strict=True):
        p = single.json()["images"][0]["faces"][0]["probabilities"]
        q = merged.json()["images"][0]["faces"][0]["probabilities"]
        assert single.json()["images"][0]["filename"] == merged.json()["images"][0]["filename"]
        assert all(abs(p[k] - q[k]) < 1e-4 for k in p), (p, q)
    distinct = {round(r.json()["images"][0]["faces"][0]["probabilities"]["happy"], 6) for r in alone}
    assert len(distinct) > 1  # the images really differ, so a mix-up would show


async def test_every_forward_pass_runs_on_the_one_compute_thread(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """Warm-up and both endpoints' batches share one thread: the runtime's compute thread."""
    threads: dict[str, set[str]] = {}

    def spy_on(name: str) -> Callable[..., Any]:
        """Engine's ``name``, recording the thread that runs it."""
        original = getattr(Engine, name)

        def spy(self: Engine, *args: Any) -> Any:
            threads.setdefault(name, set()).add(threading.current_thread().name)
            return original(self, *args)

        return spy

    for name in ("warm_up", "classify", "synthesize"):
        monkeypatch.setattr(Engine, name, spy_on(name))
    async with serve(make_settings()) as (app, client):
        warm_up = threads.pop("warm_up")
        threads.clear()  # the load's self-test ran on the loading thread
        assert (await classify(client, 1)).status_code == 200
        synthesized = await client.post(
            "/v1/synthesize", params={"targets": "happy", "detect": "false"}, files={"image": ("f.png", noise_png(2), "image/png")}
        )
        assert synthesized.status_code == 200
    assert threads == {"classify": warm_up, "synthesize": warm_up}
    assert len(warm_up) == 1 and next(iter(warm_up)).startswith("fersnet-compute")

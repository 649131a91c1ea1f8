"""The batching loop on its own, with a fake model: merging, ordering, limits, failures, shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from service.batching import BatchedAPI, Batcher, Deadline, Decoded
from service.errors import DeadlineExceeded, InferenceFailed, PayloadTooLarge, QueueFull, ShuttingDown
from service.metrics import ServiceMetrics


class Doubler(BatchedAPI[list[int], None, int, int, list[int]]):
    """Items are ints; the 'model' doubles them and records every batch it saw."""

    name = "double"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail_next = False
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.decoded = 0

    def decode(self, request: list[int]) -> Decoded[None, int]:
        self.decoded += 1
        return Decoded(None, list(request))

    def batch(self, items: Sequence[int]) -> list[int]:
        return list(items)

    def predict(self, batch: list[int]) -> list[int]:
        self.entered.set()
        assert self.hold.wait(30)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
        self.batches.append(batch)
        return [2 * x for x in batch]

    def unbatch(self, output: list[int], count: int) -> list[int]:
        return output[:count]

    def encode(self, decoded: Decoded[None, int], outputs: Sequence[int]) -> list[int]:
        return list(outputs)


async def _in_thread(fn: Any) -> Any:
    return await asyncio.to_thread(fn)


async def model_entered(api: Doubler) -> None:
    """Wait until a batch is inside the (held) model."""
    assert await asyncio.to_thread(api.entered.wait, 30)


def make_batcher(api: Doubler, **limits: Any) -> Batcher:
    settings = {"max_batch_size": 4, "max_wait_s": 5.0, "max_queue": 16} | limits
    return Batcher(api, compute=_in_thread, workers=anyio.CapacityLimiter(4), metrics=ServiceMetrics(), retry_after_s=3, **settings)


async def test_concurrent_requests_share_batches_and_get_their_own_outputs() -> None:
    api = Doubler()
    batcher = make_batcher(api)
    batcher.start()
    requests = [[10 * r + i for i in range(r % 3 + 1)] for r in range(6)]  # 1, 2 or 3 items each: 12 in all
    results = await asyncio.gather(*(batcher.handle(req, Deadline.after(30)) for req in requests))
    await batcher.stop()
    assert results == [[2 * x for x in req] for req in requests]
    assert sorted(x for b in api.batches for x in b) == sorted(x for req in requests for x in req)
    assert all(len(b) <= 4 for b in api.batches)
    assert len(api.batches) < len(requests)  # 12 items, batches close at 4: three full batches


async def test_a_full_queue_refuses_with_retry_after_and_keeps_what_it_accepted() -> None:
    api = Doubler()
    api.hold.clear()  # the first batch stays in the model, so later items stay queued
    batcher = make_batcher(api, max_batch_size=2, max_wait_s=0.0, max_queue=3)
    batcher.start()
    first = asyncio.create_task(batcher.submit([1, 2], Deadline.after(30)))
    await model_entered(api)  # the loop took the first two into the model
    queued = asyncio.create_task(batcher.submit([3, 4, 5], Deadline.after(30)))
    while batcher.queued < 3:
        await asyncio.sleep(0.005)
    with pytest.raises(QueueFull) as refused:
        await batcher.submit([6], Deadline.after(30))
    assert refused.value.status_code == 429
    assert refused.value.headers == {"Retry-After": "3"}
    with pytest.raises(QueueFull):
        await batcher.handle([7], Deadline.after(30))
    assert api.decoded == 0  # refused before spending any decoding work on it
    api.hold.set()
    assert await first == [2, 4]
    assert await queued == [6, 8, 10]
    await batcher.stop()


async def test_a_request_larger_than_the_queue_is_413_not_429() -> None:
    batcher = make_batcher(Doubler(), max_queue=3)
    batcher.start()
    with pytest.raises(PayloadTooLarge):
        await batcher.submit([1, 2, 3, 4], Deadline.after(30))
    await batcher.stop()


async def test_work_past_its_deadline_answers_504_and_is_not_run() -> None:
    api = Doubler()
    api.hold.clear()
    batcher = make_batcher(api, max_batch_size=1, max_wait_s=0.0)
    batcher.start()
    blocker = asyncio.create_task(batcher.submit([1], Deadline.after(30)))
    await model_entered(api)
    with pytest.raises(DeadlineExceeded):
        await batcher.submit([2], Deadline.after(0.05))
    with pytest.raises(DeadlineExceeded):
        await batcher.submit([3], Deadline.after(-1))  # already late: never queued
    api.hold.set()
    assert await blocker == [2]
    assert await batcher.submit([4], Deadline.after(30)) == [8]
    await batcher.stop()
    assert [2] not in api.batches and [3] not in api.batches


async def test_a_failing_batch_fails_its_requests_and_the_loop_goes_on() -> None:
    api = Doubler()
    api.fail_next = True
    batcher = make_batcher(api, max_wait_s=0.0)
    batcher.start()
    with pytest.raises(InferenceFailed):
        await batcher.submit([1, 2], Deadline.after(30))
    assert await batcher.submit([3], Deadline.after(30)) == [6]
    await batcher.stop()


async def test_stop_finishes_accepted_work_and_refuses_new_work() -> None:
    api = Doubler()
    api.hold.clear()
    batcher = make_batcher(api, max_batch_size=2, max_wait_s=5.0)
    batcher.start()
    accepted = [asyncio.create_task(batcher.submit([i], Deadline.after(30))) for i in range(5)]
    while batcher.queued < 3:  # two went into the (held) model, three wait
        await asyncio.sleep(0.005)
    stopping = asyncio.create_task(batcher.stop())
    await asyncio.sleep(0.01)
    with pytest.raises(ShuttingDown):
        await batcher.submit([99], Deadline.after(30))
    api.hold.set()
    await stopping
    assert [await task for task in accepted] == [[0], [2], [4], [6], [8]]

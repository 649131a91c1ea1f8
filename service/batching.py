"""Dynamic batching: images from concurrent requests share one forward pass.

An endpoint describes its work with five hooks (the shape of LitServe's
``LitAPI``), and one :class:`Batcher` per endpoint runs them::

    request --decode--> items ──┐            (worker thread, per request)
    request --decode--> items ──┤ queue
    request --decode--> items ──┘   │
                                    ▼ batch -> predict -> unbatch   (compute thread, per batch)
    request <--encode-- outputs ◄───┘        (worker thread, per request)

The compute thread is a :class:`ComputeThread`, one per app, shared by every
endpoint's batcher: the batcher is what puts a batch on it, and ``predict``
calls the model directly (the model itself knows no threads). The batcher is
also the one place that bounds a batch by ``max_batch_size``.

The unit of batching is an *item* (one face crop, or one face with one target
expression), so the limits count images, not requests:

* a batch closes when it holds ``max_batch_size`` items, or ``max_wait_s``
  after its first item arrived (the deadline is computed once, from that
  arrival; later arrivals never extend it);
* the queue holds at most ``max_queue`` items; a request that does not fit is
  refused at once with 429 and ``Retry-After``;
* every item carries its request's deadline: one still queued when that
  passes is dropped, and the request answers 504;
* each item has its own future, so outputs return one to one to their inputs
  whatever batches they were split across;
* before a request takes a decode thread, :meth:`BatchedAPI.reserve` charges
  what decoding it will hold (the pixel budget, :mod:`service.budget`) and
  may refuse it at once; the lease is returned when the request ends;
* decoding and encoding draw on separate thread limits, so a finished batch's
  answers are never stuck behind the decoding of newer requests (under
  overload that wait would turn computed answers into 504s).

On shutdown a batcher stops taking work, runs what it accepted without
waiting for more, and only then returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, NotRequired, TypedDict, TypeVar

import anyio

from .errors import DeadlineExceeded, InferenceFailed, PayloadTooLarge, QueueFull, ShuttingDown
from .metrics import ServiceMetrics

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT")
ContextT = TypeVar("ContextT")
ItemT = TypeVar("ItemT")
OutputT = TypeVar("OutputT")
ResponseT = TypeVar("ResponseT")
T = TypeVar("T")


class ComputeThread:
    """The one thread that runs model work: every batch of every endpoint, and warm-up.

    One thread for all of it, so two endpoints' batches never compete for the
    device (or for the CPU's cores), and the event loop stays free to accept
    requests. :class:`service.runtime.Runtime` owns it and lends :meth:`run` to
    each :class:`Batcher`.
    """

    def __init__(self, name: str = "fersnet-compute") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the compute thread and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Finish the work in progress and stop the thread."""
        self._executor.shutdown(wait=True)


@dataclass(frozen=True)
class Deadline:
    """The moment (``time.monotonic()``) by which a request must be answered."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass(frozen=True)
class Decoded(Generic[ContextT, ItemT]):
    """A decoded request: the items to run, and what ``encode`` needs besides their outputs."""

    context: ContextT
    items: list[ItemT]


class BatchedAPI(ABC, Generic[RequestT, ContextT, ItemT, OutputT, ResponseT]):
    """What one endpoint plugs into the batching loop.

    ``decode`` and ``encode`` run once per request in a worker thread (they
    may be slow: image decoding, face detection, PNG encoding); ``batch``,
    ``predict`` and ``unbatch`` run once per batch on the compute thread and
    should do nothing but tensor work. ``reserve`` runs on the event loop
    before ``decode`` and must be cheap (headers, not pixels).
    """

    #: The endpoint's name in metrics labels and logs.
    name: str = "api"

    #: Encode on the event loop: for answers cheaper to build than a thread hop (about 0.1 ms, plus GIL hand-offs).
    encode_inline: bool = False

    def decode_inline(self, request: RequestT) -> bool:
        """Whether ``request`` is cheap enough to decode on the event loop (a few tiny crops) rather than in a thread."""
        return False

    def reserve(self, request: RequestT) -> AbstractContextManager[Any]:
        """Charge what decoding ``request`` will hold, or raise (413/429) before any decoding; released on exit."""
        return nullcontext()

    @abstractmethod
    def decode(self, request: RequestT) -> Decoded[ContextT, ItemT]:
        """Turn one request into items to run (maybe none); raise a ServiceError for bad input."""

    @abstractmethod
    def batch(self, items: Sequence[ItemT]) -> Any:
        """Merge items from any requests into one model input."""

    @abstractmethod
    def predict(self, batch: Any) -> Any:
        """Run the model on a merged input."""

    @abstractmethod
    def unbatch(self, output: Any, count: int) -> Sequence[OutputT]:
        """Split the model's output into ``count`` per-item outputs, in item order."""

    @abstractmethod
    def encode(self, decoded: Decoded[ContextT, ItemT], outputs: Sequence[OutputT]) -> ResponseT:
        """Build the response from a decoded request and its items' outputs (in ``decoded.items`` order)."""


@dataclass(eq=False)
class _Pending(Generic[ItemT, OutputT]):
    """One queued item and the future its request awaits."""

    item: ItemT
    future: asyncio.Future[OutputT]
    deadline: Deadline
    enqueued: float = field(default_factory=time.monotonic)


class BatcherOptions(TypedDict):
    """:class:`Batcher`'s keyword arguments, which the endpoints share: ``Batcher(api, **options)``."""

    compute: Callable[[Callable[[], Any]], Awaitable[Any]]
    workers: anyio.CapacityLimiter
    metrics: ServiceMetrics
    encoders: NotRequired[anyio.CapacityLimiter | None]
    max_batch_size: int
    max_wait_s: float
    max_queue: int
    retry_after_s: NotRequired[int]


class Batcher(Generic[RequestT, ContextT, ItemT, OutputT, ResponseT]):
    """The batching loop of one endpoint.

    ``compute`` runs a function on the model's thread (:meth:`ComputeThread.run`);
    ``workers`` bounds the threads that decode concurrently, ``encoders``
    those that encode (by default as many, in a limit of their own). A batch
    never holds more than ``max_batch_size`` items: the only place that limit
    is enforced.
    """

    def __init__(
        self,
        api: BatchedAPI[RequestT, ContextT, ItemT, OutputT, ResponseT],
        *,
        compute: Callable[[Callable[[], Any]], Awaitable[Any]],
        workers: anyio.CapacityLimiter,
        metrics: ServiceMetrics,
        encoders: anyio.CapacityLimiter | None = None,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int,
        retry_after_s: int = 1,
    ) -> None:
        self.api = api
        self.name = api.name
        self._compute = compute
        self._workers = workers
        self._encoders = encoders if encoders is not None else anyio.CapacityLimiter(workers.total_tokens)
        self._metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self._queue: deque[_Pending[ItemT, OutputT]] = deque()
        self._wakeup = asyncio.Event()
        self._accepting = False
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the loop (call from the event loop the app serves on)."""
        if self._task is None:
            self._accepting = True
            self._task = asyncio.create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Refuse new work, run everything already queued, then end the loop."""
        self._accepting = False
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ the request side

    async def handle(self, request: RequestT, deadline: Deadline) -> ResponseT:
        """Decode a request, run its items through the batching loop, and encode the response.

        A request is refused before it is decoded when the queue is already
        full (decoding and face detection are the expensive part on a busy
        CPU), and the whole of it, waiting for a decode thread included, runs
        against its deadline.
        """
        self._admit(0)
        # A decode thread is never abandoned (anyio defers the cancellation until it returns),
        # so the lease outlives every pixel the request decoded.
        with self.api.reserve(request):
            try:
                async with asyncio.timeout(max(0.0, deadline.remaining())):
                    if self.api.decode_inline(request):
                        decoded = self.api.decode(request)
                    else:
                        decoded = await anyio.to_thread.run_sync(self.api.decode, request, limiter=self._workers)
                    outputs = await self.submit(decoded.items, deadline) if decoded.items else []
                    if self.api.encode_inline:
                        return self.api.encode(decoded, outputs)
                    return await anyio.to_thread.run_sync(self.api.encode, decoded, outputs, limiter=self._encoders)
            except TimeoutError:
                raise DeadlineExceeded(f"request exceeded its deadline in {self.name}") from None

    def _admit(self, count: int) -> None:
        """Raise 503 while stopping, 413 for more items than the queue holds, 429 when they do not fit now."""
        if not self._accepting:
            raise ShuttingDown("the service is shutting down; retry on another instance", retry_after_s=self.retry_after_s)
        if count > self.max_queue:
            raise PayloadTooLarge(f"request needs {count} forward-pass images; at most {self.max_queue} fit the queue")
        if len(self._queue) + max(count, 1) > self.max_queue:
            raise QueueFull(
                f"{self.name}: {len(self._queue)} images already queued (limit {self.max_queue}); retry shortly",
                retry_after_s=self.retry_after_s,
            )

    async def submit(self, items: Sequence[ItemT], deadline: Deadline) -> list[OutputT]:
        """Queue items (all or none), wait for their outputs, and return them in the same order."""
        self._admit(len(items))
        if deadline.expired:
            raise DeadlineExceeded(f"request exceeded its deadline before reaching the {self.name} queue")
        loop = asyncio.get_running_loop()
        pending = [_Pending(item, loop.create_future(), deadline) for item in items]
        self._queue.extend(pending)
        self._metrics.queue_depth.labels(self.name).set(len(self._queue))
        self._wakeup.set()
        try:
            async with asyncio.timeout(max(0.0, deadline.remaining())):
                return list(await asyncio.gather(*(p.future for p in pending)))
        except TimeoutError:
            raise DeadlineExceeded(f"request exceeded its deadline waiting for the {self.name} model") from None
        finally:
            for p in pending:
                if not p.future.done():
                    p.future.cancel()  # the loop skips items whose request gave up
                elif not p.future.cancelled():
                    p.future.exception()  # mark sibling failures as seen (no "never retrieved" warning)

    # ------------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            if batch is None:
                return
            if batch:
                try:
                    await self._run(batch)
                except Exception:  # never let one batch kill the loop
                    log.exception("%s: batch of %d failed", self.name, len(batch))
                    self._fail(batch, InferenceFailed("the model failed on this batch; the service logged the details"))

    def _live(self) -> bool:
        """Whether the queue holds an item someone still waits for (dropping abandoned ones at its head)."""
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()
        return bool(self._queue)

    async def _collect(self) -> list[_Pending[ItemT, OutputT]] | None:
        """Wait for the next batch; None once stopped with nothing left to run."""
        while not self._live():
            if not self._accepting:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        flush_at = self._queue[0].enqueued + self.max_wait_s  # fixed by the first item's arrival
        while self._accepting and len(self._queue) < self.max_batch_size:
            remaining = flush_at - time.monotonic()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                break
        batch: list[_Pending[ItemT, OutputT]] = []
        while self._queue and len(batch) < self.max_batch_size:
            p = self._queue.popleft()
            if p.future.done():
                continue
            if p.deadline.expired:
                p.future.set_exception(DeadlineExceeded(f"request exceeded its deadline in the {self.name} queue"))
                continue
            batch.append(p)
        self._metrics.queue_depth.labels(self.name).set(len(self._queue))
        return batch

    def _forward(self, items: list[ItemT]) -> tuple[Sequence[OutputT], float]:
        """batch -> predict -> unbatch, timed, on the compute thread."""
        started = time.perf_counter()
        outputs = self.api.unbatch(self.api.predict(self.api.batch(items)), len(items))
        return outputs, time.perf_counter() - started

    async def _run(self, batch: list[_Pending[ItemT, OutputT]]) -> None:
        started = time.monotonic()
        for p in batch:
            self._metrics.queue_wait.labels(self.name).observe(started - p.enqueued)
        items = [p.item for p in batch]
        outputs, seconds = await self._compute(lambda: self._forward(items))
        if len(outputs) != len(batch):
            raise RuntimeError(f"unbatch returned {len(outputs)} outputs for {len(batch)} items")
        self._metrics.compute.labels(self.name).observe(seconds)
        self._metrics.batch_size.labels(self.name).observe(len(batch))
        self._metrics.images.labels(self.name).inc(len(batch))
        for p, output in zip(batch, outputs, strict=True):
            if not p.future.done():
                p.future.set_result(output)

    @staticmethod
    def _fail(batch: list[_Pending[ItemT, OutputT]], error: Exception) -> None:
        for p in batch:
            if not p.future.done():
                p.future.set_exception(error)

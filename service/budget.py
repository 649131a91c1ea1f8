"""The pixel budget: how many decoded pixels one request, and the whole server, may hold.

Memory in this service is decoded pictures: a 35 KB PNG can declare 6000 x
6000 pixels, 108 MB once decoded as RGB. The per-image limit
(``max_image_pixels``) alone does not bound a process that takes 16 such
images per request and several requests at once, so every request is charged
*before* any of its images is decoded, from the headers alone
(:func:`service.images.probe`):

* ``total``: every pixel the request will decode, summed. Over
  ``max_request_pixels`` it is refused with 413: it could never be served.
* ``peak``: what it holds at once. Images are decoded one at a time and each
  is reduced (at most :data:`service.images.DECODE_MAX_SIDE` a side) before the
  next, so a request holds its largest full-size decode plus whatever reduced
  pictures it keeps until it answers (synthesis keeps its photo; recognition
  keeps only face crops, a few KB). All requests' peaks together stay within
  ``max_inflight_pixels``; a request whose peak does not fit now is refused
  at once with 429 and ``Retry-After``, before it takes a decode thread.

The lease is returned when the request ends, answered or not. When the
budget empties after large requests, ``on_idle`` lets the allocator hand the
freed memory back to the system (:func:`service.memory.trim`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from .errors import PayloadTooLarge, QueueFull


@dataclass(frozen=True)
class PixelNeed:
    """What one request will decode in all (``total``) and hold at most at once (``peak``)."""

    total: int
    peak: int


class PixelBudget:
    """A counter of decoded pixels held by requests in flight, with a per-request and a server-wide limit."""

    def __init__(
        self,
        per_request: int,
        in_flight: int,
        retry_after_s: int = 1,
        *,
        on_change: Callable[[int], None] | None = None,
        on_refusal: Callable[[], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        idle_after: int = 16_000_000,
    ) -> None:
        self.per_request = per_request
        self.in_flight = in_flight
        self.retry_after_s = retry_after_s
        self._used = 0
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda used: None)
        self._on_refusal = on_refusal or (lambda: None)
        #: Called when nothing is leased any more after at least ``idle_after`` pixels were (service.memory.trim).
        self._on_idle = on_idle or (lambda: None)
        self._idle_after = idle_after
        self._released = 0

    @property
    def used(self) -> int:
        """Pixels leased now."""
        return self._used

    def lease(self, need: PixelNeed, label: str = "request") -> PixelLease:
        """Reserve ``need.peak`` pixels, or raise 413 (can never fit) / 429 (does not fit now)."""
        if need.total > self.per_request:
            raise PayloadTooLarge(
                f"{label} would decode {need.total:,} pixels; the limit per request is {self.per_request:,} "
                "(send fewer or smaller images)"
            )
        if need.peak > self.in_flight:
            raise PayloadTooLarge(f"{label} needs {need.peak:,} decoded pixels at once; the server holds at most {self.in_flight:,}")
        with self._lock:
            if self._used + need.peak > self.in_flight:
                used = self._used
            else:
                self._used += need.peak
                self._on_change(self._used)
                return PixelLease(self, need.peak)
        self._on_refusal()
        raise QueueFull(
            f"the server is decoding {used:,} pixels for other requests; {need.peak:,} more would pass its limit of "
            f"{self.in_flight:,}; retry shortly",
            retry_after_s=self.retry_after_s,
        )

    def _release(self, pixels: int) -> None:
        with self._lock:
            self._used -= pixels
            self._released += pixels
            self._on_change(self._used)
            idle = self._used == 0 and self._released >= self._idle_after
            if idle:
                self._released = 0
        if idle:
            self._on_idle()


class PixelLease:
    """Pixels reserved for one request; returned once, by :meth:`release` or at the end of a ``with`` block."""

    def __init__(self, budget: PixelBudget | None, pixels: int) -> None:
        self._budget = budget
        self.pixels = pixels

    def release(self) -> None:
        if self._budget is not None:
            self._budget._release(self.pixels)
            self._budget = None

    def __enter__(self) -> PixelLease:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


#: The lease of a request that decodes nothing.
NO_LEASE = PixelLease(None, 0)

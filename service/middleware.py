"""The ASGI middlewares every request passes: request metrics, admission, and the body-size limit.

Both are plain ASGI (no ``BaseHTTPMiddleware``), so they add no task per
request and never buffer a body.
"""

from __future__ import annotations

import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PayloadTooLarge, QueueFull
from .metrics import ServiceMetrics

#: Route label of requests that matched no route (kept apart so unknown paths cannot grow the label set).
UNMATCHED_ROUTE = "unmatched"


class RequestMetrics:
    """Counts every HTTP request by route template, method and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route is None:  # /docs and /openapi.json are plain Starlette routes that leave no trace in the scope
                route = scope["path"] if status != 404 else UNMATCHED_ROUTE
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.request_latency.labels(route).observe(time.perf_counter() - started)


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413, counting bytes as they arrive.

    A declared Content-Length over the limit is refused before the first byte
    is read; a body without one (chunked) is cut off as soon as it passes the
    limit. The error is raised from ``receive``, inside the app, so routing has
    happened and the one error handler answers in the one JSON shape.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        try:
            declared: int | None = int(Headers(scope=scope)["content-length"])
        except (KeyError, ValueError):
            declared = None
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise PayloadTooLarge(f"request body of {declared:,} bytes is over the limit of {limit:,} bytes")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"request body is over the limit of {limit:,} bytes")
            return message

        await self.app(scope, receive_within_limit, send)


class Admission:
    """Counts inference requests from the moment they arrive, and refuses one past ``limit`` at once.

    The batching queue only sees a request once its body is read and its
    images decoded, which is the expensive part on a busy CPU: counted there,
    an overloaded server first parses and decodes what it will then refuse,
    and its 429s arrive after seconds. Counted here, before the body is read,
    a request over the limit costs one small answer (429 with
    ``Retry-After``), and the requests admitted keep the CPU. The count drops
    when the response is sent, whatever it was.
    """

    def __init__(self, app: ASGIApp, *, limit: int, paths: frozenset[str], retry_after_s: int, metrics: ServiceMetrics) -> None:
        self.app = app
        self.limit = limit
        self.paths = paths
        self.retry_after_s = retry_after_s
        self.metrics = metrics
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            refusal = QueueFull(
                f"{self.in_flight} requests in progress (limit {self.limit}); retry after {self.retry_after_s} s",
                retry_after_s=self.retry_after_s,
            )
            self.metrics.refused.labels("inflight").inc()
            await refusal.response()(scope, receive, send)
            return
        self.in_flight += 1
        self.metrics.inflight.set(self.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.metrics.inflight.set(self.in_flight)

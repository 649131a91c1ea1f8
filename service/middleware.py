"""The ASGI middlewares every request passes: its id, request metrics, admission, and the body's limits.

Both are plain ASGI (no ``BaseHTTPMiddleware``), so they add no task per
request and never buffer a body.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BodyTimeout, PayloadTooLarge, QueueFull
from .metrics import ServiceMetrics

#: The header that names a request, in both directions (the de facto standard of proxies and tracing tools).
REQUEST_ID_HEADER = "X-Request-ID"

#: An id a client may choose: short, and characters no log or header can be broken by.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


class RequestId:
    """Gives every request an id, answered in ``X-Request-ID`` and written beside the service's log lines about it.

    A client (or the proxy in front) that sends an ``X-Request-ID`` of up to 128 plain characters gets it back, so
    its own logs and the service's meet on one key; any other request gets a new random id. It is kept in the
    scope's state (``request.state.request_id``) for the error handler's log lines. Outermost, so that every
    answer carries it, the 429s of :class:`Admission` included.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = sent if _CLIENT_ID.fullmatch(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)


#: The status label of a request whose client left before the answer began (nginx's "client closed request").
CLIENT_CLOSED = 499

#: Route label of requests that matched no route (kept apart so unknown paths cannot grow the label set).
UNMATCHED_ROUTE = "unmatched"


def route_label(scope: Scope, status: int, routes: Sequence[BaseRoute]) -> str:
    """The ``route`` label of a request: a route's template, never the raw path, so that no client can grow the set.

    FastAPI's routes leave themselves in the scope. A plain Starlette route (``/openapi.json``) and a mount (the web
    page's ``/static``, the API reference's assets) do not, so the path is matched against ``routes`` here: a mount's
    files share one label (``/static/{path}``, however the path is spelt), and anything else is ``unmatched``.
    """
    route = getattr(scope.get("route"), "path", None)
    if route is not None:
        return str(route)
    path: str = scope["path"]
    if status != 404:
        for candidate in routes:
            if isinstance(candidate, Mount) and path.startswith(candidate.path + "/"):
                return candidate.path + "/{path}"
            if isinstance(candidate, Route) and candidate.path == path:
                return path
    return UNMATCHED_ROUTE


class RequestMetrics:
    """Counts every HTTP request by route template, method and status, and times it.

    ``routes`` is the app's own list (``app.routes``), read when a request ends, so routes added after the
    middleware still label their requests.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering
        answering = gone = False

        async def receive_and_watch() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or (message["type"] == "http.disconnect" and not answering)
            return message

        async def send_and_record(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive_and_watch, send_and_record)
        finally:
            route = route_label(scope, status, self.routes)
            # A client that left before its answer began (mid-upload, say) is nginx's 499, "client closed request":
            # counted as the 400 that the unfinished body then raised, it would look like a client's bad request.
            recorded = CLIENT_CLOSED if gone else status
            self.metrics.requests.labels(route, scope["method"], str(recorded)).inc()
            self.metrics.request_latency.labels(route).observe(time.perf_counter() - started)


class BodyLimits:
    """Bounds what a request body may take: ``max_bytes`` (413 beyond) and ``timeout_s`` to arrive (408 after).

    A declared Content-Length over the limit is refused before the first byte
    is read; a body without one (chunked) is cut off as soon as it passes the
    limit. The time runs from the request's arrival until its last byte: a
    client that stalls mid-upload is answered 408 when it is up, and lets go
    of its place among the requests in flight (:class:`Admission`) rather than
    hold it for as long as its connection stays open. Once the body is whole,
    ``receive`` only waits for a disconnect, and is left unbounded. The errors
    are raised from ``receive``, inside the app, so routing has happened and
    the one error handler answers in the one JSON shape.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

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
        whole = False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def receive_within_limits() -> Message:
            nonlocal received, whole
            if whole:
                return await receive()
            if declared is not None and declared > limit:
                raise PayloadTooLarge(f"request body of {declared:,} bytes is over the limit of {limit:,} bytes")
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                of = f" of {declared:,}" if declared is not None else ""
                raise BodyTimeout(
                    f"the request body did not arrive within {self.timeout_s:g} s ({received:,}{of} bytes received)"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"request body is over the limit of {limit:,} bytes")
                whole = not message.get("more_body", False)
            return message

        await self.app(scope, receive_within_limits, send)


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
                f"{self.in_flight} request{'s' if self.in_flight != 1 else ''} in progress (limit {self.limit}); "
                f"retry after {self.retry_after_s} s",
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

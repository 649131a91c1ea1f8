"""A small HTTP/1.1 load generator for the benchmarks: keep-alive connections, prepared requests, loopback only.

The service runs on the same two cores as its clients here, so the clients
must cost little: each request is encoded once (headers and multipart body
as bytes), and a response is read by its Content-Length without a general
HTTP client's parsing. Two ways to drive a server:

* closed loop (:func:`closed_loop`): ``clients`` connections, each sending its
  next request when the last is answered (a 429's ``Retry-After`` is honoured
  unless ``retry_after=False``);
* open loop (:func:`open_loop`): requests start at a fixed rate whatever the
  server's state, each on an idle connection of a growing pool (overload
  shows as latency and refusals, not as a slower sender).

Both stop at ``duration`` seconds or ``requests`` requests, whichever comes
first, and refuse any host but 127.0.0.1 / localhost.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: Reconnect rather than reuse a connection idle this long (uvicorn closes idle keep-alive connections after 5 s).
KEEP_ALIVE_S = 4.0


@dataclass(frozen=True)
class Prepared:
    """One request, encoded once: its bytes and how many faces it carries."""

    data: bytes
    faces: int


def multipart(path: str, host: str, field_name: str, files: Sequence[tuple[str, bytes, str]], query: str = "") -> bytes:
    """A POST of ``files`` as multipart/form-data, as bytes ready to write (keep-alive)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, data, content_type in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    target = f"{path}?{query}" if query else path
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


@dataclass
class Outcome:
    """What one request got: status (0 = transport error), latency, Retry-After, and its faces."""

    status: int
    latency_s: float
    started_s: float
    faces: int
    retry_after: float | None = None
    error: str = ""


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0

    def of(self, status: int) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    def faces_per_s(self, status: int = 200) -> float:
        return sum(o.faces for o in self.of(status)) / self.wall_s if self.wall_s else 0.0

    def counts(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return dict(sorted(out.items()))


class Connection:
    """One keep-alive connection; reconnects after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"load is sent to loopback only, not {host}")
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_error = ""
        self.used = 0.0

    async def request(self, data: bytes, timeout: float) -> tuple[int, float | None]:
        """Send prepared bytes, read one response; (status, Retry-After); status 0 for a transport error."""
        try:
            if self.writer is not None and time.monotonic() - self.used > KEEP_ALIVE_S:
                self.close()  # the server may have closed it already: a stale connection is not the server's error
            if self.writer is None or self.writer.is_closing():
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.used = time.monotonic()
            assert self.reader is not None and self.writer is not None
            self.writer.write(data)
            await self.writer.drain()
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", "0"))), timeout)
            if headers.get("connection", "").lower() == "close":
                self.close()
            retry = headers.get("retry-after")
            self.used = time.monotonic()
            return status, float(retry) if retry is not None else None
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError) as e:
            self.close()
            self.last_error = type(e).__name__
            return 0, None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[Prepared],
    *,
    clients: int,
    duration: float,
    max_requests: int,
    timeout: float = 60.0,
    retry_after: bool = True,
) -> Tally:
    """``clients`` connections each sending one request after another until time or count runs out."""
    tally = Tally()
    started = time.perf_counter()
    end = started + duration
    sent = 0

    async def client(k: int) -> None:
        nonlocal sent
        conn = Connection(host, port)
        i = k
        while time.perf_counter() < end and sent < max_requests:
            sent += 1
            request = requests[i % len(requests)]
            i += clients
            t0 = time.perf_counter()
            status, retry = await conn.request(request.data, timeout)
            tally.outcomes.append(Outcome(status, time.perf_counter() - t0, t0 - started, request.faces, retry, conn.last_error if not status else ""))
            if status == 429 and retry_after and retry:
                await asyncio.sleep(min(retry, max(0.0, end - time.perf_counter())))
        conn.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    tally.wall_s = time.perf_counter() - started
    return tally


async def open_loop(
    host: str, port: int, requests: Sequence[Prepared], *, rate: float, duration: float, max_requests: int, timeout: float = 60.0
) -> Tally:
    """Start requests at ``rate`` per second for ``duration`` seconds, each on an idle connection (opening more as needed)."""
    tally = Tally()
    idle: list[Connection] = []
    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()

    async def one(request: Prepared) -> None:
        conn = idle.pop() if idle else Connection(host, port)
        t0 = time.perf_counter()
        status, retry = await conn.request(request.data, timeout)
        tally.outcomes.append(Outcome(status, time.perf_counter() - t0, t0 - started, request.faces, retry, conn.last_error if not status else ""))
        idle.append(conn)

    n = 0
    while n < max_requests:
        due = started + n / rate
        now = time.perf_counter()
        if due - started >= duration:
            break
        if due > now:
            await asyncio.sleep(due - now)
        task = asyncio.create_task(one(requests[n % len(requests)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    tally.wall_s = time.perf_counter() - started
    for conn in idle:
        conn.close()
    return tally


def percentile_ms(outcomes: Sequence[Outcome], q: float) -> float:
    if not outcomes:
        return float("nan")
    latencies = sorted(o.latency_s for o in outcomes)
    k = min(len(latencies) - 1, max(0, round(q / 100 * (len(latencies) - 1))))
    return 1000 * latencies[k]

"""The reliability test of issue 29, rerun against this checkout: memory, overload, poisoned weights, start-up faults.

    python -m bench.faults                      # every scenario (about 6 minutes on 2 shared cores)
    python -m bench.faults memory overload      # some of them
    python -m bench.faults memory --memory-env MALLOC_ARENA_MAX=2

Each scenario starts its own server (``python -m service``) on a free
loopback port, so memory is measured from a fresh process; all load goes to
127.0.0.1 and every scenario is bounded in time and in requests. It prints
one markdown row per check: what was done, what the issue saw, what this
checkout does, and whether the target holds.

Scenarios:

memory
    4 concurrent requests of 16 PNGs of 6000x6000 (mostly flat grey, 35-47
    KB each: 2.2 MB uploaded), first with the default limits (the request
    pixel budget refuses them at once), then with the budget raised so they
    are served; the server's peak RSS (VmHWM) and its RSS 3 s after the last
    answer. Target: peak under 2.5 GB, every request answered.
overload
    capacity = 1-face requests (48x48, ``detect=false``) from 8 closed-loop
    clients; then open-loop arrivals at 2x and 3x that rate, then 256
    closed-loop clients that honour ``Retry-After``. Targets: at least 0.8 of
    capacity answered, 429s in under 100 ms (median), nothing else failing,
    no answer computed after its deadline.
model
    the model alone (batch 64, no HTTP), float32 against bfloat16, interleaved.
weights
    classifier weights set to NaN with the card's sha256 updated; a card whose
    ``weights.file`` is ``/etc/passwd``; a truncated weights file: each must
    stop start-up with one line and a non-zero exit, no traceback.
startup
    ``python -m service`` on a busy port must fail before loading the model.
stalled
    as many uploads as there are places in flight stop after their headers;
    another client must get 429 until their body time is up (3 s here), then
    200, and every stalled one 408.
docs
    ``/docs`` must name no other host (it works offline); ``/redoc`` is not served.
decode
    a corrupt upload's message must name no Python object.
python
    the declared Python floor against what the code uses.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import service  # noqa: E402,F401  # before torch: its OpenMP wait policy (see service/__init__.py)
from bench.loadgen import Connection, Prepared, Tally, closed_loop, multipart, open_loop, percentile_ms  # noqa: E402
from bench.serve import cpu_seconds, face_crops, free_port, get, start_server, stop_server, wait_ready  # noqa: E402

GB = 1024**3


@dataclass
class Check:
    scenario: str
    what: str
    issue_saw: str
    now: str
    ok: bool | None  # None: a measurement with no pass/fail target


RESULTS: list[Check] = []


def report(scenario: str, what: str, issue_saw: str, now: str, ok: bool | None) -> None:
    RESULTS.append(Check(scenario, what, issue_saw, now, ok))
    mark = {True: "PASS", False: "FAIL", None: "info"}[ok]
    print(f"[{mark}] {scenario}: {what}: {now}", flush=True)


# --------------------------------------------------------------------------- a server under watch


class Server:
    """``python -m service`` on a free loopback port, with its memory sampled every 50 ms."""

    def __init__(self, env: dict[str, str] | None = None, **settings: Any) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="fersnet-faults-", suffix=".log")[1])
        values = {"checkpoint": "default", "device": "cpu"} | settings
        self.process = start_server(values, self.port, self.log, extra_env=env)
        wait_ready(self.base_url, self.process, self.log)
        self._peak_rss = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def status(self, field: str) -> int:
        """A /proc/<pid>/status field in bytes (VmRSS, VmHWM)."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _sample(self) -> None:
        while self._sampling:
            self._peak_rss = max(self._peak_rss, self.status("VmRSS"))
            time.sleep(0.05)

    @property
    def peak(self) -> int:
        return max(self._peak_rss, self.status("VmHWM"))

    def metric(self, name: str) -> float:
        total = 0.0
        for line in get(f"{self.base_url}/metrics", 30)[1].splitlines():
            if line.startswith((name + " ", name + "{")):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        self._sampling = False
        stop_server(self.process)


# --------------------------------------------------------------------------- memory


def flat_png(seed: int, side: int = 6000) -> bytes:
    """A mostly flat grey picture of ``side`` x ``side`` with a few shapes: tens of KB, side^2 pixels decoded."""
    image = Image.new("L", (side, side), 90 + seed % 50)
    draw = ImageDraw.Draw(image)
    for k in range(6):
        x, y = (seed * 977 + k * 1231) % (side - 800), (seed * 613 + k * 997) % (side - 800)
        draw.ellipse((x, y, x + 300 + 80 * k, y + 400 + 60 * k), fill=(seed * 37 + k * 53) % 256)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


async def concurrent_posts(port: int, requests: list[bytes], timeout: float) -> list[tuple[int, float]]:
    async def one(data: bytes) -> tuple[int, float]:
        conn = Connection("127.0.0.1", port)
        started = time.perf_counter()
        status, _ = await conn.request(data, timeout)
        conn.close()
        return status, time.perf_counter() - started

    return await asyncio.gather(*(one(r) for r in requests))


def scenario_memory(args: argparse.Namespace) -> None:
    pngs = [flat_png(i) for i in range(16)]
    sizes = sorted(len(p) for p in pngs)
    print(f"  16 PNGs of 6000x6000, {sizes[0] // 1024}-{sizes[-1] // 1024} KB each, {4 * sum(sizes) / 1e6:.1f} MB in 4 requests")
    env = dict(kv.split("=", 1) for kv in args.memory_env)
    raised = {"max_request_pixels": 600_000_000, "request_timeout_s": 300}  # 64 photos of 36 M pixels take minutes of CPU here
    for label, settings in (("default limits", {}), ("request budget raised to 600 M pixels, timeout 300 s", raised)):
        server = Server(env=env, **settings)
        try:
            baseline = server.status("VmRSS")
            parts = [[(f"{r}-{i}.png", p, "image/png") for i, p in enumerate(pngs)] for r in range(4)]
            requests = [multipart("/v1/classify", f"127.0.0.1:{server.port}", "images", files) for files in parts]
            cpu_started = cpu_seconds(server.process.pid)
            answers = asyncio.run(concurrent_posts(server.port, requests, timeout=330))
            cpu = cpu_seconds(server.process.pid) - cpu_started
            time.sleep(3)
            after = server.status("VmRSS")
            statuses = sorted(s for s, _ in answers)
            slowest = max(t for _, t in answers)
            ok = server.peak < 2.5 * GB and all(s in (200, 413, 429) for s in statuses)
            report(
                "memory",
                f"4 x 16 PNGs of 6000x6000 at once, {label}" + (f" ({' '.join(args.memory_env)})" if args.memory_env else ""),
                "peak 10.2 GB, 7.2 GB held afterwards",
                f"statuses {statuses} in {slowest:.1f} s ({cpu:.1f} s of server CPU); peak RSS {server.peak / GB:.2f} GB "
                f"(idle {baseline / GB:.2f}), {after / GB:.2f} GB 3 s after",
                ok,
            )
        finally:
            server.stop()


# --------------------------------------------------------------------------- overload


def one_face_requests(port: int, count: int = 64) -> list[Prepared]:
    crops = face_crops(count)
    return [Prepared(multipart("/v1/classify", f"127.0.0.1:{port}", "images", [c], "detect=false"), 1) for c in crops]


def summarise(t: Tally) -> str:
    ok, refused, late = t.of(200), t.of(429), t.of(504)
    others = len(t.outcomes) - len(ok) - len(refused) - len(late)
    first = min((o.started_s + o.latency_s for o in ok), default=float("nan"))
    errors = sorted({o.error for o in t.outcomes if o.status == 0})
    return (
        f"{t.faces_per_s():.0f} faces/s answered; 200: {len(ok)} (p50 {percentile_ms(ok, 50):.0f} ms, p99 {percentile_ms(ok, 99):.0f} ms), "
        f"429: {len(refused)} (p50 {percentile_ms(refused, 50):.1f} ms), 504: {len(late)}, other: {others}"
        f"{' (' + ', '.join(errors) + ')' if errors else ''}; first answer after {first:.2f} s"
    )


def overload_row(what: str, issue_saw: str, tally: Tally, capacity: float, wasted: float | None = None) -> None:
    refused = tally.of(429)
    others = [o for o in tally.outcomes if o.status not in (200, 429)]
    goodput = tally.faces_per_s() / capacity
    ok = goodput >= 0.8 and (not refused or percentile_ms(refused, 50) < 100) and not others
    extra = f"; computed but not answered: {wasted:.0f}" if wasted is not None else ""
    report("overload", what, issue_saw, f"{summarise(tally)}; {goodput:.2f} of capacity{extra}", ok)


def scenario_overload(args: argparse.Namespace) -> None:
    server = Server()
    try:
        requests = one_face_requests(server.port)
        run = lambda clients: asyncio.run(  # noqa: E731
            closed_loop("127.0.0.1", server.port, requests, clients=clients, duration=args.seconds, max_requests=10**6, timeout=60)
        )
        asyncio.run(closed_loop("127.0.0.1", server.port, requests, clients=8, duration=3, max_requests=10**6))  # warm
        eight = run(8)
        report("overload", "capacity as the issue measured it: 8 closed-loop clients, 1 face each", "168-198 faces/s", summarise(eight), None)
        full = run(64)
        capacity = max(eight.faces_per_s(), full.faces_per_s())
        report("overload", "capacity with full batches: 64 closed-loop clients (the reference below)", "-", summarise(full), None)
        for factor in (2, 3):
            computed_before = server.metric("fersnet_images_total")
            tally = asyncio.run(
                open_loop("127.0.0.1", server.port, requests, rate=factor * capacity, duration=args.seconds, max_requests=10**6, timeout=60)
            )
            time.sleep(1)
            wasted = max(0.0, server.metric("fersnet_images_total") - computed_before - sum(o.faces for o in tally.of(200)))
            overload_row(
                f"open loop at {factor}x capacity ({factor * capacity:.0f} requests/s for {args.seconds:.0f} s)",
                "41 faces/s answered, nothing for 20 s, 429s after 15 s, every 504 computed first",
                tally,
                capacity,
                wasted,
            )
        overload_row("256 closed-loop clients (Retry-After honoured)", "no 429 at all, 0.58 of capacity answered", run(256), capacity)
    finally:
        server.stop()


# --------------------------------------------------------------------------- the model alone


def scenario_model(args: argparse.Namespace) -> None:
    import torch

    from service.engine import Engine
    from service.settings import Settings

    engines = {p: Engine.load(Settings(device="cpu", cpu_precision=p, max_batch_size=64)) for p in ("float32", "bfloat16")}
    x = torch.rand(64, 1, 48, 48) * 2 - 1
    rates: dict[str, list[float]] = {p: [] for p in engines}
    for _ in range(3):
        for p, engine in engines.items():
            engine.classify(x)
            started, done = time.perf_counter(), 0
            while done < 3 or time.perf_counter() - started < 1.5:
                engine.classify(x)
                done += 1
            rates[p].append(64 * done / (time.perf_counter() - started))
    f32, bf16 = statistics.median(rates["float32"]), statistics.median(rates["bfloat16"])
    report(
        "model",
        "model alone, batch 64, no HTTP (median of 3 interleaved rounds)",
        "610-700 faces/s float32, about 1,180 bfloat16 (idle machine)",
        f"float32 {f32:.0f}, bfloat16 + channels-last (the service's CPU default here) {bf16:.0f} faces/s ({bf16 / f32:.2f}x)",
        None,
    )


# --------------------------------------------------------------------------- start-up faults


def run_service(*arguments: str, timeout: float = 300) -> tuple[int, str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "service", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stderr, time.perf_counter() - started


def one_line_refusal(stderr: str) -> bool:
    lines = [line for line in stderr.splitlines() if line.strip() and " INFO " not in line]
    return len(lines) == 1 and lines[0].startswith("fersnet: error: ") and "Traceback" not in stderr


def copy_default(folder: Path) -> Path:
    from model_core.checkpoint import DEFAULT_CHECKPOINT

    shutil.copytree(DEFAULT_CHECKPOINT, folder)
    return folder


def scenario_weights(args: argparse.Namespace) -> None:
    from safetensors.torch import load_file, save_file

    from model_core.checkpoint import sha256_file

    with tempfile.TemporaryDirectory() as tmp:
        nan = copy_default(Path(tmp) / "nan")
        tensors = load_file(str(nan / "model.safetensors"))
        tensors["head.fc.weight"] = tensors["head.fc.weight"] * float("nan")
        save_file(tensors, str(nan / "model.safetensors"))
        card = json.loads((nan / "card.json").read_text())
        card["weights"]["sha256"] = sha256_file(nan / "model.safetensors")
        (nan / "card.json").write_text(json.dumps(card))
        code, err, _ = run_service("--checkpoint", str(nan), "--port", str(free_port()), "--device", "cpu")
        report("weights", "classifier weights NaN, card's sha256 updated", "loaded, ready, served null probabilities",
               f"exit {code}: {err.strip()[:160]}", code != 0 and one_line_refusal(err) and "NaN" in err)

        passwd = copy_default(Path(tmp) / "passwd")
        card = json.loads((passwd / "card.json").read_text())
        card["weights"]["file"] = "/etc/passwd"
        (passwd / "card.json").write_text(json.dumps(card))
        code, err, _ = run_service("--checkpoint", str(passwd), "--port", str(free_port()), "--device", "cpu")
        report("weights", "card weights.file = /etc/passwd", "read it, then refused on the hash",
               f"exit {code}: {err.strip()[:160]}", code != 0 and one_line_refusal(err) and "outside" in err)

        cut = copy_default(Path(tmp) / "cut")
        data = (cut / "model.safetensors").read_bytes()
        (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
        code, err, _ = run_service("--checkpoint", str(cut), "--port", str(free_port()), "--device", "cpu")
        report("weights", "a truncated weights file", "a clear message after a 50-line traceback",
               f"exit {code}: {err.strip()[:160]}", code != 0 and one_line_refusal(err))


def scenario_startup(args: argparse.Namespace) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err, seconds = run_service("--port", str(port), "--device", "cpu")
    report("startup", "python -m service on a busy port", "loaded and warmed the model, then failed on the port",
           f"exit {code} after {seconds:.1f} s (model not loaded): {err.strip()[:120]}",
           code != 0 and one_line_refusal(err) and "already in use" in err)


def first_status(sock: socket.socket) -> int:
    """The status code of the answer arriving on ``sock`` (0 if the connection closed without one)."""
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        head += chunk
    return int(head.split(b" ", 2)[1])


def status_of(port: int, request: bytes, timeout: float = 30) -> int:
    """One request on a new connection: its answer's status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return first_status(sock)


def scenario_stalled(args: argparse.Namespace) -> None:
    limit_s, places = 3.0, 64
    server = Server(body_timeout_s=limit_s, max_inflight_requests=places)
    stalled: list[socket.socket] = []
    try:
        upload = one_face_requests(server.port, 1)[0].data
        started = time.perf_counter()
        for _ in range(places):  # headers and the body's first bytes, then nothing: every place in flight taken
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=limit_s * 5)
            sock.sendall(upload[: upload.index(b"\r\n\r\n") + 40])
            stalled.append(sock)
        seen: list[int] = []
        while time.perf_counter() - started < limit_s * 4 and (not seen or seen[-1] != 200):
            seen.append(status_of(server.port, upload))
            time.sleep(0.25)
        freed_s = time.perf_counter() - started
        answers = [first_status(sock) for sock in stalled]
        refused_first = bool(seen) and seen[0] == 429
        report("stalled", f"{places} uploads that stop after their headers (every place in flight), body limit {limit_s:g} s",
               "not in the issue; before the 408: every other client 429 for as long as the connections stayed open",
               f"others: 429 until {freed_s:.1f} s, then 200; the stalled: {answers.count(408)} of {places} answered 408",
               refused_first and seen[-1] == 200 and answers.count(408) == places and freed_s < limit_s + 3)
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


def scenario_docs(args: argparse.Namespace) -> None:
    server = Server()
    try:
        external: list[str] = []
        fetched = 0
        for page in ("/docs",):
            html = get(server.base_url + page)[1]
            urls = [a or b for a, b in re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""", html)]
            external += [u for u in urls if "://" in u or u.startswith("//")]
            for url in urls:
                if not ("://" in url or url.startswith("//")):
                    fetched += get(server.base_url + url)[0] == 200
        report("docs", "/docs with no network", "Swagger UI from a CDN: blank offline",
               f"{fetched} assets served by the service, external URLs: {external or 'none'}", not external and fetched >= 3)
    finally:
        server.stop()


def scenario_decode(args: argparse.Namespace) -> None:
    server = Server()
    try:
        bad = multipart("/v1/classify", f"127.0.0.1:{server.port}", "images", [("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")])
        reader_writer: dict[str, Any] = {}

        async def send() -> str:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            reader_writer["w"] = writer
            writer.write(bad)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            body = await reader.readexactly(length)
            writer.close()
            return body.decode()

        body = asyncio.run(send())
        message = json.loads(body)["error"]["message"]
        report("decode", "a PNG signature followed by zeros", "the message included <_io.BytesIO object at 0x...>",
               message, not re.search(r"0x[0-9a-f]{6,}|<_io\.|object at", message))
    finally:
        server.stop()


def scenario_python(args: argparse.Namespace) -> None:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    floor = re.search(r'requires-python\s*=\s*">=\s*3\.(\d+)"', text)
    uses = [p.name for p in (REPO_ROOT / "service").glob("*.py") if "asyncio.timeout" in p.read_text()]
    minor = int(floor.group(1)) if floor else 0
    report("python", "declared floor vs asyncio.timeout / datetime.UTC (3.11)", "requires-python >= 3.10: every request fails on 3.10",
           f"requires-python >= 3.{minor}; asyncio.timeout used in {', '.join(sorted(uses))}", minor >= 11)


SCENARIOS: dict[str, Callable[[argparse.Namespace], None]] = {
    "memory": scenario_memory,
    "overload": scenario_overload,
    "model": scenario_model,
    "weights": scenario_weights,
    "startup": scenario_startup,
    "stalled": scenario_stalled,
    "docs": scenario_docs,
    "decode": scenario_decode,
    "python": scenario_python,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], default=[], help="default: all")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds per load phase (default 12)")
    parser.add_argument("--memory-env", nargs="*", default=[], help="environment for the memory scenario's servers, e.g. MALLOC_ARENA_MAX=2")
    args = parser.parse_args(argv)
    for name in args.scenarios or list(SCENARIOS):
        print(f"== {name}", flush=True)
        SCENARIOS[name](args)
    print("\n| scenario | check | the issue saw | now | target |")
    print("|---|---|---|---|---|")
    for c in RESULTS:
        mark = {True: "met", False: "**not met**", None: "-"}[c.ok]
        print(f"| {c.scenario} | {c.what} | {c.issue_saw} | {c.now} | {mark} |")
    if any(c.ok is False for c in RESULTS):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

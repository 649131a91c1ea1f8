"""Benchmark the REST service under concurrent load, against the model's own batched throughput.

    python bench/serve.py --requests 400 --concurrency 32 --device cpu

In one run it

1. measures the model alone: full batches of ``--max-batch-size`` through the
   same :class:`service.engine.Engine` the server uses (same device,
   precision and padding), in images per second;
2. starts the server (``python -m service``) on a free port and waits for
   ``/readyz``;
3. drives ``/v1/classify`` and ``/v1/synthesize`` with ``--concurrency``
   concurrent clients (spread over ``--client-processes`` processes, since one
   Python process of httpx clients saturates before a fast server does),
   ``--requests`` requests per endpoint, and reads the server's own metrics;
4. prints a markdown table: throughput (images/s), p50/p95/p99 latency as
   the clients saw it, the mean latency inside the server (its request
   histogram: the rest is the clients' own time and the wire), the mean batch
   size, the model-only throughput and their ratio (the batching efficiency:
   how much of the model's speed survives HTTP, decoding and batching).

Requests send FER2013 test faces (``../shared/data``) as ready-made crops
(``detect=false``) so the numbers measure serving, not the face detector;
``--photos`` adds a row for whole photos with detection. Without the data it
sends random 48x48 crops. ``--device auto`` (the default) uses CUDA where
present.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"


@dataclass
class Row:
    endpoint: str
    device: str
    requests: int
    concurrency: int
    images_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_mean_ms: float
    mean_batch: float
    model_images_per_s: float
    errors: int

    @property
    def efficiency(self) -> float:
        return self.images_per_s / self.model_images_per_s if self.model_images_per_s else float("nan")


@dataclass(frozen=True)
class Plan:
    """One row of the table: what to send, where."""

    label: str
    endpoint: str
    payloads: list[bytes]
    params: dict[str, str]
    images_per_request: int


# --------------------------------------------------------------------------- payloads


def face_crops(count: int) -> list[bytes]:
    """FER2013 test faces as JPEG bytes, or random grey crops where the data is absent."""
    folder = SHARED_DATA / "fer2013" / "test"
    files = sorted(folder.glob("*/PublicTest_*.jpg"))[:count] if folder.is_dir() else []
    if files:
        return [f.read_bytes() for f in files]
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8), mode="L").save(buffer, format="PNG")
        crops.append(buffer.getvalue())
    return crops


def photos(count: int) -> list[bytes]:
    """FER2013 faces enlarged into 400x300 photos (empty list without the data)."""
    folder = SHARED_DATA / "fer2013" / "test"
    files = sorted(folder.glob("happy/PublicTest_*.jpg"))[:count] if folder.is_dir() else []
    out = []
    for i, path in enumerate(files):
        photo = Image.new("RGB", (400, 300), (90, 120, 150))
        side = 120 + 4 * (i % 10)
        face = Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        photo.paste(face, (40 + 11 * (i % 17), 30 + 5 * (i % 11)))
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


# --------------------------------------------------------------------------- the model alone


def model_throughput(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    """Images per second of full batches through the server's Engine, per task."""
    import torch  # only the parent process needs PyTorch; client processes start without it

    from service.engine import Engine
    from service.settings import Settings

    settings = Settings(
        checkpoint=args.checkpoint, device=args.device, max_batch_size=args.max_batch_size, torch_threads=args.torch_threads
    )
    engine = Engine.load(settings)
    try:
        engine.warm_up()
        batch = settings.max_batch_size
        images = torch.rand((batch, *engine.input_shape)) * 2 - 1
        targets = torch.eye(len(engine.classes))[torch.arange(batch) % len(engine.classes)]
        tasks = {"classify": lambda: engine.classify(images)}
        if engine.has_synthesis:
            tasks["synthesize"] = lambda: engine.synthesize(images, targets)
        result = {}
        for name, run in tasks.items():
            run()
            done, started = 0, time.perf_counter()
            while done < 3 or time.perf_counter() - started < args.model_seconds:
                run()
                done += 1
            result[name] = done * batch / (time.perf_counter() - started)
        return f"{engine.device} {engine.precision}", result
    finally:
        engine.close()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "service",
        "--host", "127.0.0.1", "--port", str(port),
        "--device", args.device, "--checkpoint", args.checkpoint,
        "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms),
        "--log-level", "warning",
    ]  # fmt: skip
    env = dict(os.environ)
    env.setdefault("FERSNET_MAX_QUEUE", str(max(512, 8 * args.concurrency * args.targets)))
    if args.torch_threads:
        env["FERSNET_TORCH_THREADS"] = str(args.torch_threads)
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_ready(base_url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"server not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def server_stats(base_url: str, endpoint: str) -> dict[str, float]:
    """Counters of one endpoint from the server's /metrics: batches, images batched, request seconds and count."""
    wanted = {
        f'fersnet_batch_size_count{{endpoint="{endpoint}"}}': "batches",
        f'fersnet_batch_size_sum{{endpoint="{endpoint}"}}': "images",
        f'fersnet_request_latency_seconds_sum{{route="/v1/{endpoint}"}}': "seconds",
        f'fersnet_request_latency_seconds_count{{route="/v1/{endpoint}"}}': "requests",
    }
    stats = dict.fromkeys(wanted.values(), 0.0)
    for line in httpx.get(f"{base_url}/metrics", timeout=30).text.splitlines():
        series, _, value = line.rpartition(" ")
        if series in wanted:
            stats[wanted[series]] = float(value)
    return stats


# --------------------------------------------------------------------------- the clients


async def drive(base_url: str, plan: Plan, requests: int, concurrency: int, first: int = 0) -> tuple[list[float], int]:
    """Send ``requests`` requests from ``concurrency`` concurrent clients; (latencies in s, errors)."""
    field = "images" if plan.endpoint == "classify" else "image"
    latencies: list[float] = []
    errors = 0
    next_request = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:

        async def client_loop() -> None:
            nonlocal next_request, errors
            while next_request < requests:
                i = first + next_request
                next_request += 1
                files = {field: (f"{i}.jpg", plan.payloads[i % len(plan.payloads)], "image/jpeg")}
                started = time.perf_counter()
                response = await client.post(f"/v1/{plan.endpoint}", params=plan.params, files=files)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return latencies, errors


def client_process(base_url: str, plan: Plan, requests: int, concurrency: int, first: int, go: Event, results: Any) -> None:
    """One load-generating process: warm its connections, wait for the start signal, run, report."""
    asyncio.run(drive(base_url, plan, min(requests, 2 * concurrency), concurrency, first))
    results.put(("ready", None))
    go.wait()
    started = time.time()
    latencies, errors = asyncio.run(drive(base_url, plan, requests, concurrency, first))
    results.put(("done", (latencies, errors, started, time.time())))


def run_plan(base_url: str, plan: Plan, args: argparse.Namespace) -> tuple[list[float], int, float]:
    """All client processes on one plan; (latencies, errors, wall seconds from first start to last finish)."""
    ctx = mp.get_context("spawn")  # no fork of a process holding PyTorch threads
    go, results = ctx.Event(), ctx.Queue()
    n = max(1, min(args.client_processes, args.concurrency))
    shares = [(args.requests * (i + 1)) // n - (args.requests * i) // n for i in range(n)]
    conc = [(args.concurrency * (i + 1)) // n - (args.concurrency * i) // n for i in range(n)]
    workers = [
        ctx.Process(target=client_process, args=(base_url, plan, shares[i], conc[i], 10_000 * i, go, results), daemon=True)
        for i in range(n)
    ]
    for w in workers:
        w.start()
    for _ in workers:
        kind, _ = results.get(timeout=600)
        assert kind == "ready"
    go.set()
    latencies: list[float] = []
    errors, starts, ends = 0, [], []
    for _ in workers:
        kind, (lat, err, started, ended) = results.get(timeout=3600)
        latencies += lat
        errors += err
        starts.append(started)
        ends.append(ended)
    for w in workers:
        w.join(timeout=30)
    return latencies, errors, max(ends) - min(starts)


def run_load(args: argparse.Namespace, model: dict[str, float], device: str) -> list[Row]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="fersnet-bench-", suffix=".log")[1])
    server = start_server(args, port, log)
    rows: list[Row] = []
    try:
        wait_ready(base_url, server, log)
        crops = face_crops(256)
        targets = "all" if args.targets >= 7 else ",".join(["happy", "surprise", "sad", "angry", "fear", "disgust"][: args.targets])
        plans = [Plan("classify", "classify", crops, {"detect": "false"}, 1)]
        if "synthesize" in model:
            params = {"detect": "false", "targets": targets, "format": "json" if args.targets > 1 else "png"}
            plans.append(Plan("synthesize", "synthesize", crops, params, args.targets))
        if args.photos and (pictures := photos(64)):
            plans.append(Plan("classify (photos, detection)", "classify", pictures, {}, 1))
        for plan in plans:
            before = server_stats(base_url, plan.endpoint)
            latencies, errors, wall = run_plan(base_url, plan, args)
            after = server_stats(base_url, plan.endpoint)
            # The counters include each process's warm-up requests; the batch and latency means are still right.
            delta = {key: after[key] - before[key] for key in after}
            ms = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
            rows.append(
                Row(
                    endpoint=plan.label,
                    device=device,
                    requests=args.requests,
                    concurrency=args.concurrency,
                    images_per_s=len(latencies) * plan.images_per_request / wall,
                    p50_ms=float(ms[0]),
                    p95_ms=float(ms[1]),
                    p99_ms=float(ms[2]),
                    server_mean_ms=1000 * delta["seconds"] / delta["requests"] if delta["requests"] else float("nan"),
                    mean_batch=delta["images"] / delta["batches"] if delta["batches"] else 0.0,
                    model_images_per_s=model[plan.endpoint],
                    errors=errors,
                )
            )
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| endpoint | device | requests | concurrency | images/s | p50 ms | p95 ms | p99 ms | server mean ms | mean batch "
        "| model alone, images/s | efficiency | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.endpoint} | {r.device} | {r.requests} | {r.concurrency} | {r.images_per_s:.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.server_mean_ms:.1f} | {r.mean_batch:.1f} | {r.model_images_per_s:.0f} | {r.efficiency:.0%} "
            f"| {r.errors} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per endpoint (default 400)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients in all (default 32)")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=max(1, min(8, (os.cpu_count() or 2) // 4)),
        help="processes the clients are spread over (default: a quarter of the CPUs, 1 to 8)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--targets", type=int, default=1, help="target expressions per synthesize request (1..7; default 1)")
    parser.add_argument("--torch-threads", type=int, default=None, help="PyTorch CPU threads, for the server and the model-only run")
    parser.add_argument("--model-seconds", type=float, default=3.0, help="how long to time the model alone, per task")
    parser.add_argument("--photos", action="store_true", help="also classify whole photos with face detection")
    return parser


def main(argv: list[str] | None = None) -> None:
    if str(REPO_ROOT) not in sys.path:  # `python bench/serve.py` from a checkout without an installed package
        sys.path.insert(0, str(REPO_ROOT))
    args = build_parser().parse_args(argv)
    args.targets = max(1, min(7, args.targets))
    device, model = model_throughput(args)
    summary = ", ".join(f"{k} {v:.0f} images/s" for k, v in model.items())
    print(f"model alone ({device}, batch {args.max_batch_size}): {summary}", flush=True)
    rows = run_load(args, model, device)
    print()
    print(table(rows))
    print(f"\n{args.client_processes} client process(es); max_batch_size {args.max_batch_size}, max_wait_ms {args.max_wait_ms}.")
    if args.targets > 1:
        print(f"synthesize requests each asked for {args.targets} targets (images/s counts synthesised faces).")


if __name__ == "__main__":
    main()

"""Benchmark the REST service under concurrent load, against the model's own batched throughput.

    python bench/serve.py --requests 400 --concurrency 32 --device cpu

In one run it

1. measures the model alone: full batches of ``--max-batch-size`` through the
   same :class:`service.engine.Engine` the server uses (same device,
   precision and padding), in images per second;
2. starts the server (``python -m service``) on a free port and waits for
   ``/readyz``;
3. drives ``/v1/classify`` and ``/v1/synthesize`` with ``--concurrency``
   clients sending ``--requests`` requests each, and reads the server's own
   batch-size histogram from ``/metrics``;
4. prints a markdown table: throughput (images/s), p50/p95/p99 latency,
   mean batch size, the model-only throughput and their ratio (the batching
   efficiency: how much of the model's speed survives HTTP, decoding and
   batching).

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
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/serve.py` from a checkout
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from service.engine import Engine  # noqa: E402
from service.settings import Settings  # noqa: E402

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
    mean_batch: float
    model_images_per_s: float
    errors: int

    @property
    def efficiency(self) -> float:
        return self.images_per_s / self.model_images_per_s if self.model_images_per_s else float("nan")


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
        photo.paste(Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC), (40 + 11 * (i % 17), 30 + 5 * (i % 11)))
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


# --------------------------------------------------------------------------- the model alone


def model_throughput(settings: Settings, seconds: float) -> tuple[str, dict[str, float]]:
    """Images per second of full batches through the server's Engine, per task."""
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
            while done < 3 or time.perf_counter() - started < seconds:
                run()
                done += 1
            result[name] = done * batch / (time.perf_counter() - started)
        return f"{engine.device} {engine.precision}", result
    finally:
        engine.close()
        del engine
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
    env.setdefault("FERSNET_MAX_QUEUE", str(max(512, 8 * args.concurrency * max(1, args.targets))))
    if args.torch_threads:
        env["FERSNET_TORCH_THREADS"] = str(args.torch_threads)
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def wait_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise SystemExit(f"server not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def batch_stats(metrics_text: str, endpoint: str) -> tuple[float, float]:
    """(number of batches, images in them) from the server's batch-size histogram."""
    count = total = 0.0
    for line in metrics_text.splitlines():
        if f'endpoint="{endpoint}"' not in line:
            continue
        if line.startswith("fersnet_batch_size_count"):
            count = float(line.rsplit(" ", 1)[1])
        elif line.startswith("fersnet_batch_size_sum"):
            total = float(line.rsplit(" ", 1)[1])
    return count, total


async def drive(
    client: httpx.AsyncClient, endpoint: str, payloads: list[bytes], params: dict[str, str], requests: int, concurrency: int
) -> tuple[list[float], float, int]:
    """Send ``requests`` requests from ``concurrency`` clients; (latencies in s, wall time, errors)."""
    field = "images" if endpoint == "classify" else "image"
    latencies: list[float] = []
    errors = 0
    next_request = 0

    async def client_loop() -> None:
        nonlocal next_request, errors
        while next_request < requests:
            i = next_request
            next_request += 1
            started = time.perf_counter()
            response = await client.post(f"/v1/{endpoint}", params=params, files={field: (f"{i}.jpg", payloads[i % len(payloads)], "image/jpeg")})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, errors


async def run_load(args: argparse.Namespace, model: dict[str, float], device: str) -> list[Row]:
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="fersnet-bench-", suffix=".log")[1])
    server = start_server(args, port, log)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    rows: list[Row] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120) as client:
            await wait_ready(client, server, log)
            crops = face_crops(256)
            targets = "all" if args.targets >= 7 else ",".join(["happy", "surprise", "sad", "angry", "fear", "disgust"][: args.targets])
            plans = [("classify", "classify", crops, {"detect": "false"}, 1)]
            if "synthesize" in model:
                plans.append(("synthesize", "synthesize", crops, {"detect": "false", "targets": targets, "format": "json" if args.targets > 1 else "png"}, args.targets))
            if args.photos:
                pictures = photos(64)
                if pictures:
                    plans.append(("classify (photos, detection)", "classify", pictures, {}, 1))
            for label, endpoint, payloads, params, images_per_request in plans:
                await drive(client, endpoint, payloads, params, min(args.requests, 2 * args.concurrency), args.concurrency)  # warm the path
                before = batch_stats((await client.get("/metrics")).text, endpoint)
                latencies, wall, errors = await drive(client, endpoint, payloads, params, args.requests, args.concurrency)
                after = batch_stats((await client.get("/metrics")).text, endpoint)
                batches, images = after[0] - before[0], after[1] - before[1]
                ms = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
                rows.append(
                    Row(label, device, args.requests, args.concurrency, args.requests * images_per_request / wall,
                        float(ms[0]), float(ms[1]), float(ms[2]), images / batches if batches else 0.0, model[endpoint], errors)
                )  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| endpoint | device | requests | concurrency | images/s | p50 ms | p95 ms | p99 ms | mean batch | model alone, images/s | efficiency | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.endpoint} | {r.device} | {r.requests} | {r.concurrency} | {r.images_per_s:.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.mean_batch:.1f} | {r.model_images_per_s:.0f} | {r.efficiency:.0%} | {r.errors} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per endpoint (default 400)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
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
    args = build_parser().parse_args(argv)
    args.targets = max(1, min(7, args.targets))
    settings = Settings(
        checkpoint=args.checkpoint, device=args.device, max_batch_size=args.max_batch_size, torch_threads=args.torch_threads
    )
    device, model = model_throughput(settings, args.model_seconds)
    print(f"model alone ({device}, batch {args.max_batch_size}): " + ", ".join(f"{k} {v:.0f} images/s" for k, v in model.items()), flush=True)
    rows = asyncio.run(run_load(args, model, device))
    print()
    print(table(rows))
    if args.targets > 1:
        print(f"\nsynthesize requests each asked for {args.targets} targets (images/s counts synthesised faces).")


if __name__ == "__main__":
    main()

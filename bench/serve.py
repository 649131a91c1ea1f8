"""Faces per second through HTTP against the model alone: the batching efficiency of the service.

    python -m bench.serve                        # the CPU here: 1-face and 16-face requests, 64 clients
    python -m bench.serve --device cuda --clients 256 64 --client-processes 4 --seconds 30     # a GPU host

In one run it

1. times the model alone: full batches of ``--max-batch-size`` through the
   server's own :class:`service.engine.Engine` (same device, dtype, layout,
   threads and padding), in faces per second;
2. starts the server (``python -m service``) on a free loopback port with the
   same settings and waits for ``/readyz``;
3. for each ``--faces`` count (default 1 and 16 faces per request), drives
   ``/v1/classify`` with ``--clients`` closed-loop keep-alive clients (default
   64 for 1-face requests, 8 for 16-face ones: about four batches in flight)
   (:mod:`bench.loadgen`) for ``--seconds``, after a short warm-up, and reads
   the server's mean batch size from ``/metrics``; then sends the last row's
   requests open loop at half the throughput it reached (latency at half
   load: the GPU target is p99 under 50 ms there);
4. times the model alone again (the machine may be shared: the ratio uses the
   mean of the two) and prints a markdown table: faces/s through HTTP,
   p50/p99 latency, the mean batch, the model alone and their ratio (the
   batching efficiency); then the same ratio in CPU time: the model's CPU ms
   per face over the whole server's (HTTP, decoding, batching and the model),
   which other work on a shared machine does not distort the way it distorts
   wall time.

Requests carry ready-made face crops (``detect=false``, FER2013 test faces
from ``../shared/data`` where present, else random 48x48 PNGs), so the
figures measure serving and batching, not the face detector. The load is sent
to 127.0.0.1 only and is bounded by ``--seconds`` per row.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/serve.py` from a checkout without an installed package
    sys.path.insert(0, str(REPO_ROOT))

import service  # noqa: E402,F401  # before torch: its OpenMP wait policy (see service/__init__.py)
from bench.loadgen import Outcome, Prepared, Tally, closed_loop, multipart, open_loop, percentile_ms  # noqa: E402

SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"


# --------------------------------------------------------------------------- payloads


def face_crops(count: int) -> list[tuple[str, bytes, str]]:
    """FER2013 test faces as (name, JPEG bytes, type), or random grey PNG crops where the data is absent."""
    folder = SHARED_DATA / "fer2013" / "test"
    files = sorted(folder.glob("*/PublicTest_*.jpg"))[:count] if folder.is_dir() else []
    if files:
        return [(f.name, f.read_bytes(), "image/jpeg") for f in files]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8), mode="L").save(buffer, format="PNG")
        crops.append((f"{i}.png", buffer.getvalue(), "image/png"))
    return crops


def classify_requests(port: int, faces: int, count: int = 64) -> list[Prepared]:
    """``count`` distinct classify requests of ``faces`` ready-made crops each."""
    crops = face_crops(256)
    out = []
    for r in range(count):
        files = [crops[(r * faces + k) % len(crops)] for k in range(faces)]
        out.append(Prepared(multipart("/v1/classify", f"127.0.0.1:{port}", "images", files, "detect=false"), faces))
    return out


# --------------------------------------------------------------------------- the model alone


def server_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings both the server and the model-only timing use."""
    values: dict[str, Any] = {
        "checkpoint": args.checkpoint,
        "device": args.device,
        "max_batch_size": args.max_batch_size,
        "max_wait_ms": args.max_wait_ms,
        "cpu_precision": args.cpu_precision,
        "max_inflight_requests": max(64, *args.clients),
        "max_images_per_request": max(16, *args.faces),
        "max_queue": max(512, 2 * max(c * f for c, f in zip(args.clients, args.faces, strict=True))),
    }
    if args.torch_threads:
        values["torch_threads"] = args.torch_threads
    if args.precision:
        values["precision"] = args.precision
    return values


@dataclass
class ModelSpeed:
    device: str
    faces_per_s: float
    cpu_ms_per_face: float


def model_speed(args: argparse.Namespace, seconds: float = 1.5, rounds: int = 3) -> ModelSpeed:
    """Full batches through the server's Engine: faces/s (median of ``rounds``) and this process's CPU ms per face."""
    import torch

    from service.engine import Engine
    from service.settings import Settings

    engine = Engine.load(Settings(**server_settings(args)))
    engine.warm_up()
    batch = engine.max_batch_size
    images = torch.rand((batch, *engine.input_shape)) * 2 - 1
    rates, cpu = [], []
    for _ in range(rounds):
        engine.classify(images)
        done, started, cpu_started = 0, time.perf_counter(), time.process_time()
        while done < 3 or time.perf_counter() - started < seconds:
            engine.classify(images)
            done += 1
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(done * batch / (time.perf_counter() - started))
        cpu.append(1000 * (time.process_time() - cpu_started) / (done * batch))
    return ModelSpeed(f"{engine.device.type} {engine.precision}", statistics.median(rates), statistics.median(cpu))


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(settings: dict[str, Any], port: int, log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update({f"FERSNET_{k.upper()}": str(v) for k, v in settings.items()})
    env.update(extra_env or {})
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def wait_ready(base_url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        if get(f"{base_url}/readyz", 5)[0] == 200:
            return
        time.sleep(0.25)
    raise SystemExit(f"server not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc; 0 elsewhere): robust to a shared machine, unlike wall time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def batch_stats(base_url: str) -> tuple[float, float]:
    """(batches, images) the classify endpoint has run, from the server's /metrics."""
    batches = images = 0.0
    for line in get(f"{base_url}/metrics", 30)[1].splitlines():
        if line.startswith('fersnet_batch_size_count{endpoint="classify"}'):
            batches = float(line.rsplit(" ", 1)[1])
        elif line.startswith('fersnet_batch_size_sum{endpoint="classify"}'):
            images = float(line.rsplit(" ", 1)[1])
    return batches, images


# --------------------------------------------------------------------------- clients, maybe in several processes


def _client_process(port: int, faces: int, clients: int, seconds: float, out: Any) -> None:
    tally = asyncio.run(closed_loop("127.0.0.1", port, classify_requests(port, faces), clients=clients, duration=seconds, max_requests=10**9))
    out.put(([(o.status, o.latency_s, o.started_s, o.faces, o.retry_after) for o in tally.outcomes], tally.wall_s))


def drive(port: int, faces: int, clients: int, seconds: float, processes: int) -> Tally:
    """Closed-loop load from ``clients`` connections, spread over ``processes`` processes (1: this one)."""
    if processes <= 1:
        requests = classify_requests(port, faces)
        return asyncio.run(closed_loop("127.0.0.1", port, requests, clients=clients, duration=seconds, max_requests=10**9))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    workers = [ctx.Process(target=_client_process, args=(port, faces, n, seconds, out), daemon=True) for n in shares if n]
    for w in workers:
        w.start()
    tally = Tally()
    for _ in workers:
        outcomes, wall = out.get(timeout=seconds + 300)
        tally.outcomes += [Outcome(*o) for o in outcomes]
        tally.wall_s = max(tally.wall_s, wall)
    for w in workers:
        w.join(timeout=30)
    return tally


@dataclass
class Row:
    faces: int
    clients: str
    tally: Tally
    mean_batch: float
    server_cpu_s: float


def run_http(args: argparse.Namespace) -> list[Row]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="fersnet-bench-", suffix=".log")[1])
    server = start_server(server_settings(args), port, log)
    rows = []
    try:
        wait_ready(base_url, server, log)
        for faces, clients in zip(args.faces, args.clients, strict=True):
            drive(port, faces, clients, args.warmup_seconds, args.client_processes)  # connections and caches warm
            before, cpu_before = batch_stats(base_url), cpu_seconds(server.pid)
            tally = drive(port, faces, clients, args.seconds, args.client_processes)
            after, cpu_after = batch_stats(base_url), cpu_seconds(server.pid)
            batches, images = after[0] - before[0], after[1] - before[1]
            rows.append(Row(faces, str(clients), tally, images / batches if batches else 0.0, cpu_after - cpu_before))
            print(f"  {faces}-face requests: {tally.faces_per_s():.0f} faces/s, statuses {tally.counts()}", flush=True)
        if args.half_load:
            # Latency at half the throughput just measured: open-loop arrivals, so queues show as latency.
            faces, best = rows[-1].faces, rows[-1].tally.faces_per_s()
            rate = 0.5 * best / faces
            requests = classify_requests(port, faces)
            before, cpu_before = batch_stats(base_url), cpu_seconds(server.pid)
            tally = asyncio.run(open_loop("127.0.0.1", port, requests, rate=rate, duration=args.seconds, max_requests=10**9))
            after, cpu_after = batch_stats(base_url), cpu_seconds(server.pid)
            batches, images = after[0] - before[0], after[1] - before[1]
            rows.append(Row(faces, f"open loop, {rate:.0f} req/s", tally, images / batches if batches else 0.0, cpu_after - cpu_before))
            print(f"  half load ({rate:.0f} requests/s of {faces} faces): p99 {percentile_ms(tally.of(200), 99):.1f} ms", flush=True)
    finally:
        stop_server(server)
    return rows


def table(rows: list[Row], model: float, model_cpu_ms: float, device: str) -> str:
    lines = [
        "| request | clients | device | faces/s through HTTP | p50 ms | p99 ms | mean batch | model alone, faces/s | ratio "
        "| server CPU ms/face | model alone, CPU ms/face | CPU ratio | non-200 |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ok = r.tally.of(200)
        other = len(r.tally.outcomes) - len(ok)
        rate = r.tally.faces_per_s()
        answered = sum(o.faces for o in ok)
        cpu_ms = 1000 * r.server_cpu_s / answered if answered else float("nan")
        lines.append(
            f"| {r.faces} face{'s' if r.faces > 1 else ''} | {r.clients} | {device} | {rate:.0f} | {percentile_ms(ok, 50):.1f} "
            f"| {percentile_ms(ok, 99):.1f} | {r.mean_batch:.1f} | {model:.0f} | {rate / model:.2f} | {cpu_ms:.2f} "
            f"| {model_cpu_ms:.2f} | {model_cpu_ms / cpu_ms:.2f} | {other} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 16], help="faces per request, one row each (default 1 16)")
    parser.add_argument("--clients", type=int, nargs="+", default=[64, 8],
                        help="concurrent closed-loop clients, one number per --faces entry (default 64 8: 64 and 128 faces in flight)")
    parser.add_argument("--client-processes", type=int, default=1, help="processes the clients are spread over (a GPU host needs several)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per row (default 15)")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--cpu-precision", choices=["auto", "bfloat16", "float32"], default="auto")
    parser.add_argument("--precision", choices=["float16", "bfloat16", "float32"], default=None, help="on CUDA (default float16)")
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--no-half-load", dest="half_load", action="store_false",
                        help="skip the last row: open-loop arrivals at half the last row's throughput, for its p99 latency")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if len(args.clients) == 1:
        args.clients = args.clients * len(args.faces)
    if len(args.clients) != len(args.faces):
        raise SystemExit("give one --clients number, or one per --faces entry")
    before = model_speed(args)
    print(f"model alone ({before.device}, batch {args.max_batch_size}): {before.faces_per_s:.0f} faces/s", flush=True)
    rows = run_http(args)
    after = model_speed(args)
    model = (before.faces_per_s + after.faces_per_s) / 2
    model_cpu = (before.cpu_ms_per_face + after.cpu_ms_per_face) / 2
    print(f"model alone again: {after.faces_per_s:.0f} faces/s; the ratio uses the mean, {model:.0f}\n")
    print(table(rows, model, model_cpu, before.device))
    print(f"\n{args.seconds:.0f} s per row; max_batch_size {args.max_batch_size}, max_wait_ms {args.max_wait_ms}; "
          f"{args.client_processes} client process(es).")


if __name__ == "__main__":
    main()

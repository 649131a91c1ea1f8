"""Does a faster CPU setting keep the model's answers? Speed and predictions of each, on FER2013's test split.

    python -m bench.precision                       # PrivateTest, the default model
    python -m bench.precision --limit 1000 --threads 1 2

For each engine setting (dtype x memory layout), and for the same classifier exported to ONNX and run by
ONNX Runtime in float32 where the ``onnx`` extra is installed (``pip install 'fersnet[onnx]'``), it

1. classifies every face of the split (PrivateTest, 3,589 faces) through the
   service's own :class:`service.engine.Engine` and preprocessing, and prints
   the accuracy, how many predictions differ from float32's, and the largest
   difference of any probability;
2. times the model alone on full batches, the settings interleaved round by
   round (the median of ``--rounds``), so a machine shared with other work
   slows every setting alike and the ratios stay meaningful (``--batch 1``:
   one face at a time, where a runtime's own overhead shows most).

Reads ``../shared/data/fer2013``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

import service  # noqa: E402,F401  # before torch: its OpenMP wait policy (see service/__init__.py)
from model_core.export import ExportError, require_onnx_extra  # noqa: E402

FER2013_TEST = REPO_ROOT / ".." / "shared" / "data" / "fer2013" / "test"

#: (label, cpu_precision, channels_last)
VARIANTS: list[tuple[str, str, bool]] = [
    ("float32", "float32", False),
    ("float32, channels-last", "float32", True),
    ("bfloat16, channels-last", "bfloat16", True),
]


@dataclass
class Result:
    label: str
    threads: int
    accuracy: float
    changed: int
    max_probability_diff: float
    faces_per_s: float


def test_faces(limit: int | None) -> tuple[list[Path], list[str]]:
    files = sorted(FER2013_TEST.glob("*/PrivateTest_*.jpg"))
    if not files:
        raise SystemExit(f"no FER2013 test faces under {FER2013_TEST}")
    if limit:
        files = files[:: max(1, len(files) // limit)][:limit]
    return files, [f.parent.name for f in files]


def engine_for(checkpoint: str, cpu_precision: str, channels_last: bool, batch: int, threads: int):  # noqa: ANN201
    from service.engine import Engine
    from service.settings import Settings

    settings = Settings(
        checkpoint=checkpoint, device="cpu", cpu_precision=cpu_precision, channels_last=channels_last, max_batch_size=batch,
        torch_threads=threads,
    )  # fmt: skip
    return Engine.load(settings)


#: The ONNX Runtime row's label.
ONNX_RUNTIME = "float32, ONNX Runtime"


class OnnxRuntimeClassifier:
    """An ONNX graph run by ONNX Runtime on ``threads`` threads, with the two methods of
    :class:`service.engine.Engine` this bench calls."""

    def __init__(self, graph: bytes, input_shape: tuple[int, int, int], threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.runner = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_shape = input_shape

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        (probabilities,) = self.runner.run(["probabilities"], {"faces": images.float().numpy()})
        return torch.from_numpy(probabilities)


def onnx_graph(engine) -> bytes:  # noqa: ANN001
    """The engine's classifier (its looks, logits over temperature, the natural prior: what
    :meth:`~service.engine.Engine.classify` answers) exported to ONNX, once for every thread count."""
    from model_core.export import CalibratedClassifier, onnx_program

    loaded = engine.loaded
    classifier = CalibratedClassifier(loaded.model, loaded.temperature)
    return onnx_program(classifier, loaded.model.config).model_proto.SerializeToString()


def probabilities(engine, inputs: torch.Tensor, batch: int) -> torch.Tensor:  # noqa: ANN001
    return torch.cat([engine.classify(inputs[i : i + batch]) for i in range(0, len(inputs), batch)])


def speed(engine, batch: int) -> float:  # noqa: ANN001
    """Faces per second of one full batch (after one untimed pass)."""
    x = torch.rand((batch, *engine.input_shape)) * 2 - 1
    engine.classify(x)
    started, done = time.perf_counter(), 0
    while done < 3 or time.perf_counter() - started < 1.0:
        engine.classify(x)
        done += 1
    return done * batch / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--batch", type=int, default=64, help="batch size, for both the predictions and the timing")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="PyTorch thread counts to time")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (interleaved); the median is reported")
    parser.add_argument("--limit", type=int, default=None, help="use an evenly spaced subset of the split")
    args = parser.parse_args(argv)

    files, labels = test_faces(args.limit)
    probe = engine_for(args.checkpoint, "float32", False, args.batch, args.threads[0])
    classes = probe.classes
    inputs = torch.stack([probe.preprocess(Image.open(f).convert("RGB")) for f in files])
    truth = torch.tensor([classes.index(label) for label in labels])

    engines = {(label, t): engine_for(args.checkpoint, dtype, cl, args.batch, t) for label, dtype, cl in VARIANTS for t in args.threads}
    labels = [label for label, _, _ in VARIANTS]
    try:
        require_onnx_extra()
    except ExportError as e:
        print(f"(no {ONNX_RUNTIME} row: {e})\n")
    else:
        graph = onnx_graph(probe)
        engines |= {(ONNX_RUNTIME, t): OnnxRuntimeClassifier(graph, probe.input_shape, t) for t in args.threads}
        labels.append(ONNX_RUNTIME)
    reference: torch.Tensor | None = None
    predicted: dict[str, torch.Tensor] = {}
    for label in labels:
        engine = engines[(label, args.threads[0])]
        torch.set_num_threads(args.threads[0])
        predicted[label] = probabilities(engine, inputs, args.batch)
        if reference is None:
            reference = predicted[label]
    assert reference is not None

    rates: dict[tuple[str, int], list[float]] = {key: [] for key in engines}
    for _ in range(args.rounds):
        for (label, t), engine in engines.items():
            torch.set_num_threads(t)
            rates[(label, t)].append(speed(engine, args.batch))
    base = {t: statistics.median(rates[(VARIANTS[0][0], t)]) for t in args.threads}

    print(f"FER2013 PrivateTest, {len(files)} faces, batch {args.batch}, {args.rounds} interleaved timing rounds (median)\n")
    print("| setting | threads | accuracy | predictions changed vs float32 | largest probability difference | faces/s | vs float32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label in labels:
        p = predicted[label]
        accuracy = (p.argmax(1) == truth).float().mean().item()
        changed = int((p.argmax(1) != reference.argmax(1)).sum())
        diff = (p - reference).abs().max().item()
        for t in args.threads:
            rate = statistics.median(rates[(label, t)])
            print(f"| {label} | {t} | {accuracy:.2%} | {changed} ({changed / len(files):.2%}) | {diff:.4f} | {rate:.0f} | {rate / base[t]:.2f}x |")


if __name__ == "__main__":
    main()

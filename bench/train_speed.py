"""Training and inference speed on this machine: images/s, float32 against bfloat16 autocast.

For each variant and sharing mode it times the trainer's whole step (every
generator-side loss, one optimiser step, then the discriminator's step) and
the recognition path alone at inference, in float32 and under bfloat16
autocast, and prints the median of ``--repeats`` timed runs and the ratio
bf16 / fp32 measured in the same run (ratios hold on a noisy machine where
absolute figures do not). Random faces: speed does not depend on the data.

    python -m bench.train_speed                                   # fersnet_small, none + selective
    python -m bench.train_speed --variants fersnet_small fersnet_paper --sharing none hard selective
    python -m bench.train_speed --frozen stem shared_stages fer_stages fes_stages gates head   # decoder only
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch

from model_core.discriminator import discriminator_for
from model_core.expressions import one_hot
from model_core.fersnet import create_model
from model_core.hardware import autocast_for
from model_core.train.config import LossSpec
from model_core.train.losses import MultiTaskObjective
from model_core.train.trainer import freeze, training_step


def _timed(step: Callable[[], Any], batch: int, warmup: int, steps: int, repeats: int) -> float:
    """Median images/s over ``repeats`` runs of ``steps`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(batch * steps / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(variant: str, sharing: str, bf16: bool, args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = create_model(variant, sharing=sharing, **({"synthesis_output": args.output} if sharing != "none" else {}))
    model = model.to(device).to(memory_format=torch.channels_last)
    frozen = freeze(model, [n for n in args.frozen if sharing != "none"])
    size, k = model.config.img_size, model.config.num_classes
    disc = discriminator_for(size, model.config.in_chans).to(device) if model.has_synthesis else None
    objective = MultiTaskObjective(model, disc, LossSpec())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    d_optimizer = torch.optim.Adam(disc.parameters(), lr=1e-4) if disc is not None else None
    amp = autocast_for(device) if bf16 else nullcontext()
    images = torch.randn(args.batch, model.config.in_chans, size, size).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, k, (args.batch,))
    targets = one_hot(labels, k)

    def train_step() -> None:
        model.train()
        for module in frozen:
            module.eval()
        training_step(objective, optimizer, amp, images, labels, targets, discriminator=disc, d_optimizer=d_optimizer)

    @torch.inference_mode()
    def infer_step() -> None:
        model.eval()
        with amp:
            model.classify(images)

    return {
        "train": _timed(train_step, args.batch, args.warmup, args.steps, args.repeats),
        "infer": _timed(infer_step, args.batch, args.warmup, args.steps * 4, args.repeats),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["fersnet_small"])
    parser.add_argument("--sharing", nargs="+", default=["none", "selective"])
    parser.add_argument("--output", choices=["direct", "masked"], default="direct", help="the synthesis output mode")
    parser.add_argument("--frozen", nargs="*", default=[], help="submodules held fixed, as a recipe's model.frozen")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps a run (inference: 4x as many)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"median of {args.repeats} runs; images/s")
    print("| variant | sharing | train fp32 | train bf16 | ratio | infer fp32 | infer bf16 | ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for variant in args.variants:
        for sharing in args.sharing:
            fp32 = measure(variant, sharing, False, args)
            bf16 = measure(variant, sharing, True, args)
            print(f"| {variant} | {sharing} | {fp32['train']:.0f} | {bf16['train']:.0f} | {bf16['train'] / fp32['train']:.2f} "
                  f"| {fp32['infer']:.0f} | {bf16['infer']:.0f} | {bf16['infer'] / fp32['infer']:.2f} |", flush=True)


if __name__ == "__main__":
    main()

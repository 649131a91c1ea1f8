"""Which ingredients of the teacher recipe buy accuracy per CPU-hour: a leave-one-out proxy at a fixed budget.

Every run trains the default's recognition network (``small``, 1.8 M parameters)
on FER2013 for the same number of steps (1,350 batches of 64, three epochs:
about four minutes on one core), with the recipe of
:mod:`model_core.train.teachers` (the one the GPU teachers and the default's
trunk were trained with), and with one ingredient taken out, or one added. All
runs see the same seeds, so the difference from the whole recipe is paired on
PublicTest's faces and resampled over seeds too
(:func:`~model_core.comparison.seeded_comparison`). PublicTest is the selection
split: a proxy chooses the recipe, so it never looks at PrivateTest. The
budget is counted in steps, not seconds, because every variant costs the same
per step and a clock would let whatever else the machine runs decide how far
each run gets. Runs keep
no weights; each leaves one small JSON file, and a run already on disk is not
repeated, so a long sweep resumes where it stopped::

    python -m training.pack_data                                 # once: .carry/fer2013.npz
    python -m training.recipe_ablation --seeds 0 1 --threads 1 --out runs/recipe_ablation
    python -m training.recipe_ablation --out runs/recipe_ablation --table   # the table again, no training

The table's verdict reads the interval: an ingredient *helps* when taking it
out loses accuracy beyond the noise (or adding it gains), *hurts* the other
way round, and is *within the noise* otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_core.comparison import seeded_comparison
from model_core.data.batch_augment import BatchAugment
from model_core.data.packed import load_packed
from model_core.train.teachers import TeacherPlan, train_teacher

RECIPE = BatchAugment()

#: Each variant: what it changes in the whole recipe, and the plan's fields that do it.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "recipe": ("the whole recipe", {}),
    "no_geometry": ("no zoom, shift or tilt (mirror kept)",
                    {"augment": replace(RECIPE, scale=(1.0, 1.0), shift=0.0, degrees=0.0)}),
    "no_light": ("no brightness or contrast change", {"augment": replace(RECIPE, brightness=0.0, contrast=0.0)}),
    "no_erasing": ("no erased patch", {"augment": replace(RECIPE, erase=0.0)}),
    "no_smoothing": ("no label smoothing (0.1 in the recipe)", {"label_smoothing": 0.0}),
    "no_ema": ("the raw weights scored, no moving average", {"ema": 0.0}),
    "with_mixup": ("mixup added (Beta(0.2, 0.2))", {"mixup": 0.2}),
}


def run_file(out: Path, variant: str, seed: int) -> Path:
    return out / f"{variant}_s{seed}.json"


def run_one(faces: Any, variant: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one variant with one seed; return its PublicTest accuracy and which faces it got right."""
    plan = replace(TeacherPlan(name=f"{variant}_s{seed}", arch=args.arch, seed=seed, budget_s=args.budget_s,
                               batch_size=args.batch_size, lr=args.lr, max_steps=args.steps, score_all=False),
                   **VARIANTS[variant][1])
    _, result, logits = train_teacher(plan, faces, "cpu", log=lambda line: print(line, flush=True))
    val = faces.rows("val")
    correct = logits[val].argmax(1).numpy() == faces.label[val]
    return {"variant": variant, "seed": seed, "public_test": float(correct.mean()), "epochs": result.epochs,
            "steps": result.steps, "train_s": result.train_s, "images_per_s": result.images_per_s,
            "best_epoch": result.best_epoch, "arch": args.arch,
            "batch_size": args.batch_size, "lr": args.lr, "correct": "".join("1" if c else "0" for c in correct)}


def load_runs(out: Path) -> dict[str, dict[int, dict[str, Any]]]:
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(out.glob("*_s*.json")):
        run = json.loads(path.read_text())
        runs.setdefault(run["variant"], {})[run["seed"]] = run
    return runs


def _correct(runs: dict[int, dict[str, Any]], seeds: list[int]) -> list[np.ndarray]:
    """Each of ``seeds``' runs as per-face correctness (stored as a string of 0s and 1s, one per PublicTest face)."""
    return [np.frombuffer(runs[s]["correct"].encode(), dtype=np.uint8) == ord("1") for s in seeds]


def table(runs: dict[str, dict[int, dict[str, Any]]]) -> str:
    """The markdown table: each variant against the whole recipe, on the seeds both have."""
    lines = ["| variant | what changes | seeds | epochs | PublicTest | difference from the recipe "
             "(95 % interval) | the ingredient |", "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    base = runs.get("recipe", {})
    for variant, (what, _) in VARIANTS.items():
        mine = runs.get(variant)
        if not mine:
            continue
        seeds = sorted(mine)
        acc = np.mean([mine[s]["public_test"] for s in seeds])
        epochs = np.mean([mine[s]["epochs"] for s in seeds])
        shared = [s for s in seeds if s in base]
        diff, verdict = "", ""
        if variant != "recipe" and shared:
            c = seeded_comparison(_correct(mine, shared), _correct(base, shared))
            delta = c.difference
            diff = f"{100 * delta:+.2f} [{100 * c.low:+.2f}, {100 * c.high:+.2f}]"
            added = variant.startswith("with_")
            if c.low > 0:
                verdict = "hurts" if not added else "helps"
            elif c.high < 0:
                verdict = "helps" if not added else "hurts"
            else:
                verdict = "within the noise"
        lines.append(f"| `{variant}` | {what} | {len(seeds)} | {epochs:.1f} | {100 * acc:.2f} % | {diff} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.recipe_ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--pack", default=".carry/fer2013.npz", help="made by python -m training.pack_data")
    p.add_argument("--out", required=True, help="one JSON file per run; runs already there are not repeated")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=int, default=1350, help="optimiser steps per run: the budget, the same for every variant")
    p.add_argument("--budget-s", type=float, default=3600.0, help="a wall-clock cap per run, should the steps take longer")
    p.add_argument("--arch", default="small")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1, help="peak SGD learning rate for 256 faces (scaled to the batch)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--subset", type=int, help="smoke runs only: the first N faces of each split")
    p.add_argument("--table", action="store_true", help="print the table of the runs on disk and train nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    if not args.table:
        torch.set_num_threads(args.threads)
        faces = load_packed(args.pack)
        if args.subset:
            faces = faces.subset(args.subset)
        out.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:  # every variant once before any twice: a sweep cut short is still paired
            for variant in args.variants:
                path = run_file(out, variant, seed)
                if path.exists():
                    continue
                start = time.perf_counter()
                run = run_one(faces, variant, seed, args)
                path.write_text(json.dumps(run) + "\n")
                print(f"{path}: PublicTest {100 * run['public_test']:.2f} % ({time.perf_counter() - start:.0f} s)",
                      flush=True)
    print(table(load_runs(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

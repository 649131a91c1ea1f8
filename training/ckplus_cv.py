"""CK+ 10-fold cross-validation of the paper's ablation: single-task, hard sharing, selective sharing,
and selective sharing plus synthetic balancing, with several seeds and the same budget for every row.

    python -m training.ckplus_cv --out runs/ckplus_cv            # all rows, 10 folds, seeds 0 1 2
    python -m training.ckplus_cv --out runs/ckplus_cv --table    # print the table of what has finished

Rows (every one trains ``--epochs`` epochs from scratch on the fold's training subjects):

``none`` / ``hard`` / ``selective``
    the three sharing modes, trained jointly (FER + FES + discriminator, except ``none``).
``selective+ft``
    the ``selective`` model fine-tuned ``--finetune-epochs`` more epochs on the *real* training faces:
    the control that isolates the effect of the extra epochs.
``selective+balance``
    the same fine-tuning on real plus synthetic faces: the ``selective`` model's FES branch redraws
    faces of the other classes as each rare class until all classes are as large as the largest.

Each fold is tested once on subjects the model never saw; nothing is selected on the test fold (the
last epoch is kept). Results go to ``<out>/results.jsonl``, one line a run, so an interrupted
experiment continues where it stopped; checkpoints are deleted once measured (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from model_core import load_checkpoint
from model_core.data import load_records
from model_core.train import Trainer, TrainConfig, balance
from model_core.train.trainer import hardware

ROWS = ("none", "hard", "selective", "selective+ft", "selective+balance")


def _recipe(args: argparse.Namespace, name: str, fold: int, seed: int, sharing: str, out: Path, **extra: Any) -> TrainConfig:
    split = {"dataset": "ckplus", "root": args.root, "folds": args.folds}
    recipe: dict[str, Any] = {
        "name": name,
        "out_dir": str(out),
        "seed": seed,
        "model": {"variant": args.variant, "sharing": sharing},
        "train": [{**split, "split": f"fold{fold}/train"}],
        "report": [{**split, "split": f"fold{fold}/test"}],
        "optim": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "warmup_epochs": 1},
        "select": "last",
        "num_workers": 0,
        "progress": False,
        "figures": False,
    }
    for key, value in extra.items():
        recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainConfig.model_validate(recipe)


def _run(config: TrainConfig) -> tuple[Path, dict[str, Any], float]:
    """Train one recipe; its checkpoint, the test fold's metrics (accuracy, macro-F1, recalls) and the seconds."""
    start = time.time()
    best = Trainer(config).fit()
    card = load_checkpoint(best).card
    key = next(k for k in card["metrics"] if k.endswith("/test"))
    return best, card["metrics"][key], time.time() - start


def run_fold(args: argparse.Namespace, fold: int, seed: int, done: set[tuple[str, int, int]], log: Path) -> None:
    work = Path(args.out) / "work"

    def record(row: str, metrics: dict[str, Any], seconds: float, **extra: Any) -> None:
        line = {"row": row, "fold": fold, "seed": seed, "accuracy": metrics["accuracy"],
                "macro_f1": metrics.get("macro_f1"), "per_class_recall": metrics.get("per_class_recall"),
                "seconds": round(seconds, 1), "variant": args.variant, "epochs": args.epochs,
                "finetune_epochs": args.finetune_epochs, "hardware": hardware(), **extra}
        with open(log, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(f"fold {fold} seed {seed} {row:<18} accuracy {100 * metrics['accuracy']:.2f} %  ({seconds:.0f} s)", flush=True)

    for sharing in ("none", "hard", "selective"):
        if (sharing, fold, seed) in done and not (sharing == "selective" and _needs_selective(done, fold, seed)):
            continue
        out = work / f"{sharing}_f{fold}_s{seed}"
        best, metrics, seconds = _run(_recipe(args, f"ck_{sharing}", fold, seed, sharing, out))
        if (sharing, fold, seed) not in done:
            record(sharing, metrics, seconds)
        if sharing != "selective" and not args.keep:
            shutil.rmtree(out, ignore_errors=True)

    base = work / f"selective_f{fold}_s{seed}" / "best"
    no_synthesis = {"adversarial": 0, "classification": 0, "cycle": 0, "identity": 0}
    finetune = {"epochs": args.finetune_epochs, "batch_size": args.batch_size, "lr": args.lr / 4, "warmup_epochs": 0}
    if ("selective+ft", fold, seed) not in done:
        out = work / f"ft_f{fold}_s{seed}"
        config = _recipe(args, "ck_selective_ft", fold, seed, "selective", out,
                         model={"init_from": str(base)}, loss=no_synthesis, optim=finetune)
        _, metrics, seconds = _run(config)
        record("selective+ft", metrics, seconds)
        shutil.rmtree(out, ignore_errors=True)
    if ("selective+balance", fold, seed) not in done:
        start = time.time()
        synthetic = work / f"synthetic_f{fold}_s{seed}"
        records = load_records("ckplus", args.root, f"fold{fold}/train", folds=args.folds)
        report = balance(load_checkpoint(base), records, synthetic, seed=seed, progress=False)
        out = work / f"bal_f{fold}_s{seed}"
        config = _recipe(args, "ck_selective_balance", fold, seed, "selective", out,
                         model={"init_from": str(base)}, loss=no_synthesis, optim=finetune)
        config.train.append(config.train[0].model_copy(update={"dataset": "folder", "root": str(synthetic), "split": "all"}))
        _, metrics, seconds = _run(config)
        record("selective+balance", metrics, time.time() - start, synthetic=sum(report.written.values()))
        if not args.keep:
            for path in (out, synthetic):
                shutil.rmtree(path, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(base.parent, ignore_errors=True)


def _needs_selective(done: set[tuple[str, int, int]], fold: int, seed: int) -> bool:
    """The selective checkpoint is needed again only if a fine-tuning row of this fold is missing."""
    return ("selective+ft", fold, seed) not in done or ("selective+balance", fold, seed) not in done


def table(log: Path) -> str:
    """Mean and standard deviation over folds and seeds, and over seeds of the fold means; then recalls per class."""
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_row[r["row"]].append(r)
    lines = [
        "| row | runs (folds x seeds) | accuracy, mean ± std over runs | std of the seed means | macro-F1 | mean time per run |",
        "|---|---|---|---|---|---|",
    ]
    recalls: dict[str, dict[str, float]] = {}
    for row in ROWS:
        rs = by_row.get(row, [])
        if not rs:
            continue
        accs = [100 * r["accuracy"] for r in rs]
        seeds: dict[int, list[float]] = defaultdict(list)
        for r in rs:
            seeds[r["seed"]].append(100 * r["accuracy"])
        seed_means = [statistics.mean(v) for v in seeds.values()]
        seed_std = f"{statistics.stdev(seed_means):.2f}" if len(seed_means) > 1 else "- (one seed)"
        folds = len({r["fold"] for r in rs})
        # Runs logged before macro-F1 and recalls were recorded have neither: those columns show "-".
        f1 = [100 * r["macro_f1"] for r in rs if r.get("macro_f1") is not None]
        f1_text = f"{statistics.mean(f1):.2f}" if len(f1) == len(rs) else "-"
        per_class = [r["per_class_recall"] for r in rs if r.get("per_class_recall")]
        if per_class and len(per_class) == len(rs):
            recalls[row] = {c: 100 * statistics.mean(p[c] for p in per_class) for c in per_class[0]}
        lines.append(
            f"| {row} | {len(rs)} ({folds} x {len(seeds)}) | {statistics.mean(accs):.2f} ± "
            f"{statistics.stdev(accs) if len(accs) > 1 else 0:.2f} | {seed_std} | {f1_text} | "
            f"{statistics.mean(r['seconds'] for r in rs):.0f} s |"
        )
    if recalls:
        classes = list(next(iter(recalls.values())))
        lines += ["", "Recall per class, mean over runs (%):", "",
                  "| row | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
        lines += [f"| {row} | " + " | ".join(f"{r[c]:.1f}" for c in classes) + " |" for row, r in recalls.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data/ckplus48")
    parser.add_argument("--out", default="runs/ckplus_cv")
    parser.add_argument("--variant", default="fersnet_small")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--only-folds", type=int, nargs="*", help="run just these folds (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--keep", action="store_true", help="keep checkpoints and synthetic faces")
    parser.add_argument("--table", action="store_true", help="only print the table of finished runs")
    args = parser.parse_args()
    log = Path(args.out) / "results.jsonl"
    if not args.table:
        log.parent.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            for fold in args.only_folds if args.only_folds is not None else range(args.folds):
                done = {(r["row"], r["fold"], r["seed"]) for r in map(json.loads, log.read_text().splitlines())} if log.is_file() else set()
                if all((row, fold, seed) in done for row in ROWS):
                    continue
                run_fold(args, fold, seed, done, log)
    print(table(log))


if __name__ == "__main__":
    main()

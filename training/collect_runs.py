"""One JSON line per training run, read from its checkpoint card and its epoch log: the per-run record
behind a results table that compares several runs (a control against a treatment, over seeds).

    python -m training.collect_runs control=runs/ferplus_small_ft control=runs/ferplus_small_ft_s1 \\
        balanced=runs/ferplus_balanced --hardware "2 AMD EPYC cores, one thread a run" \\
        > docs/results/ferplus_balancing.jsonl

Everything in a line is what ``fersnet train`` itself wrote, so the file can be rebuilt from the run
folders at any time; only ``--hardware`` is added by hand, because a card knows the threads its run
used but not what else the machine was doing (two runs side by side take longer each).

A line: ``row`` (the name given on the command line), ``run``, ``seed``, ``best_epoch`` (the epoch the
selection split picked), ``train_images``, ``metrics`` (the card's metrics of that epoch, split by
split: accuracy, macro-F1, recall per class), ``val_accuracy_by_epoch`` and ``epoch_time_s_mean``
(from ``metrics.jsonl``), ``wall_time_s`` and ``hardware``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from model_core import CheckpointError
from model_core.checkpoint import read_card, resolve_checkpoint


class RunError(ValueError):
    """A run folder that cannot be collected; the message names the folder and what is missing."""


def collect(row: str, run: Path, hardware: str | None = None) -> dict[str, Any]:
    """The record of one run folder (``<run>/best`` and ``<run>/metrics.jsonl``, as ``fersnet train`` writes them)."""
    log_path = run / "metrics.jsonl"
    if not log_path.is_file():
        raise RunError(f"{run}: no metrics.jsonl (is this a run folder of `fersnet train`?)")
    try:
        card = read_card(resolve_checkpoint(run / "best"))  # the card alone: no weights to load for a record
    except CheckpointError as exc:
        raise RunError(f"{run}: {exc}") from None
    epochs = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    training = card.training
    return {
        "row": row,
        "run": str(run),
        "seed": training["seed"],
        "best_epoch": training["epoch"],
        "train_images": training["train_images"],
        "metrics": card.metrics,
        "val_accuracy_by_epoch": [round(e["val"]["accuracy"], 5) for e in epochs if "val" in e],
        "epoch_time_s_mean": round(statistics.mean(e["epoch_time_s"] for e in epochs), 1) if epochs else None,
        "wall_time_s": training.get("wall_time_s"),
        "hardware": hardware or training["hardware"],
    }


def _pair(spec: str) -> tuple[str, Path]:
    row, _, run = spec.partition("=")
    if not row or not run:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected ROW=RUN_FOLDER")
    return row, Path(run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=_pair, metavar="ROW=RUN_FOLDER", help="a row name and its run folder")
    parser.add_argument("--hardware", help="what the runs ran on (default: what each card says)")
    args = parser.parse_args(argv)
    try:
        lines = [json.dumps(collect(row, run, args.hardware)) for row, run in args.runs]
    except RunError as exc:
        parser.error(str(exc))
    sys.stdout.write("".join(line + "\n" for line in lines))


if __name__ == "__main__":
    main()

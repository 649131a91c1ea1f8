"""Single-task, hard and selective sharing at one budget, several seeds a row: the table, from the runs' answers.

    python -m training.sharing_table runs/sharing                  # what training/gpu_sharing.sh left (or brought back)
    python -m training.sharing_table runs/sharing --json

Each run folder (``<row>_s<seed>``: ``none_s0``, ``selective_s2``, ...) holds
its probabilities on PublicTest and PrivateTest (``val.csv.gz`` and
``test.csv.gz``, from ``fersnet teacher-targets``) and its per-epoch log
(``metrics.jsonl``); labels come from the local FER2013 folders. Per row: the
mean accuracy over its seeds and the epochs its runs trained; per pair of rows
on each split, the difference of their means with a 95 % interval that
resamples seeds and faces together (:func:`~model_core.comparison.seeded_comparison`).
PublicTest selected each run's epoch, so PrivateTest is the split that judges
the claim.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model_core.comparison import seeded_comparison
from model_core.data import DataError
from model_core.train.ensemble import LabelledSplit, correct, probabilities_for
from model_core.train.teacher import read_teacher_targets

from .teacher_table import labelled_splits

DATA = Path("../shared/data")
#: The rows in the paper's order, and the comparisons that test its claim.
ROWS = ("none", "hard", "selective")
PAIRS = (("selective", "none"), ("selective", "hard"), ("hard", "none"))
FILES = {"PublicTest": "val.csv.gz", "PrivateTest": "test.csv.gz"}
RUN_NAME = re.compile(r"^(?P<row>[a-z]+)_s(?P<seed>\d+)$")


@dataclass
class Row:
    """One sharing mode: per split, which faces each of its seeds got right; and the epochs each seed trained."""

    name: str
    seeds: list[int] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    correct: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def accuracy(self, split: str) -> float:
        return float(np.mean([c.mean() for c in self.correct[split]]))


def epochs_trained(run: Path) -> int:
    """Lines of the run's per-epoch log: the epochs it trained (a time budget may have cut its recipe's)."""
    log = run / "metrics.jsonl"
    return sum(1 for line in log.read_text().splitlines() if line.strip()) if log.is_file() else 0


def read_rows(runs: Path, splits: list[LabelledSplit]) -> dict[str, Row]:
    """Every ``<row>_s<seed>`` folder under ``runs`` that has its answers, grouped by row."""
    rows: dict[str, Row] = {}
    for run in sorted(p for p in runs.iterdir() if p.is_dir() and RUN_NAME.match(p.name)):
        match = RUN_NAME.match(run.name)
        assert match is not None
        row = rows.setdefault(match["row"], Row(match["row"]))
        row.seeds.append(int(match["seed"]))
        row.epochs.append(epochs_trained(run))
        for split in splits:
            targets = read_teacher_targets(run / FILES[split.name])
            probs = probabilities_for(targets, split.keys)
            if probs is None:
                raise DataError(f"{run / FILES[split.name]}: lacks some of {split.name}'s faces")
            row.correct.setdefault(split.name, []).append(correct(probs, split.labels, targets.classes, split.classes))
    return rows


def table(rows: dict[str, Row], splits: list[LabelledSplit]) -> tuple[str, dict[str, Any]]:
    """The rows and the paired differences in Markdown, and the same as a dictionary."""
    names = [s.name for s in splits]
    ordered = [rows[r] for r in ROWS if r in rows] + [row for r, row in rows.items() if r not in ROWS]
    lines = ["| row | seeds | epochs | " + " | ".join(names) + " |", "| --- | ---: | ---: |" + " ---: |" * len(names)]
    data: dict[str, Any] = {"rows": {}, "differences": {}}
    for row in ordered:
        epochs = f"{min(row.epochs)}" if min(row.epochs) == max(row.epochs) else f"{min(row.epochs)}-{max(row.epochs)}"
        lines.append(f"| {row.name} | {len(row.seeds)} | {epochs} | "
                     + " | ".join(f"{100 * row.accuracy(n):.2f} %" for n in names) + " |")
        data["rows"][row.name] = {"seeds": row.seeds, "epochs": row.epochs,
                                  **{n: [float(c.mean()) for c in row.correct[n]] for n in names}}
    lines += ["", "| difference | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for a, b in PAIRS:
        if a in rows and b in rows:
            cells = []
            for n in names:
                c = seeded_comparison(rows[a].correct[n], rows[b].correct[n])
                cells.append(f"{100 * c.difference:+.2f} [{100 * c.low:+.2f}, {100 * c.high:+.2f}]")
                data["differences"].setdefault(f"{a} - {b}", {})[n] = c.to_dict()
            lines.append(f"| {a} - {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines), data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sharing_table", description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="the folder holding <row>_s<seed>/ runs")
    parser.add_argument("--root", type=Path, default=DATA / "fer2013", help="FER2013's folders, for the labels")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        splits = labelled_splits(args.root, None)
        rows = read_rows(args.runs, splits) if args.runs.is_dir() else {}
        if not rows:
            raise DataError(f"{args.runs}: no <row>_s<seed> runs with their answers")
        text, data = table(rows, splits)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(data, indent=1) if args.json else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

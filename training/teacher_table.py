"""The teacher ensemble's table: every committed teacher's accuracy, and the ensemble's as it grew.

    python -m training.teacher_table                     # training/teachers/*, labels from ../shared/data
    python -m training.teacher_table --json              # the same rows as JSON

Each folder of ``training/teachers/`` (taken in name order, hence the number
in front: ``01_default``, ``02_vgg_s0``, ...) holds one teacher's probability
files (``fer2013.csv.gz``, and ``ferplus.csv.gz`` where it has one) and the
``command.txt`` that made them. Only probabilities are committed, never
labels or faces, so the labels are read from the local datasets: FER2013's
PublicTest and PrivateTest, and FER+ test by majority vote where
``../shared/data/ferplus`` is present.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from model_core.data import DataError, load_records
from model_core.train.ensemble import LabelledSplit, ensemble_table, format_table, read_teacher_folder
from model_core.train.teacher import target_key

TEACHERS = Path(__file__).parent / "teachers"
DATA = Path("../shared/data")


def labelled_splits(fer2013: Path, ferplus: Path | None) -> list[LabelledSplit]:
    """The table's columns from the local datasets, keyed as the teachers' files are."""
    wanted = [("PublicTest", "fer2013", fer2013, "val"), ("PrivateTest", "fer2013", fer2013, "test")]
    if ferplus is not None and ferplus.is_dir():
        wanted.append(("FER+ test", "ferplus", ferplus, "test"))
    splits = []
    for title, dataset, root, split in wanted:
        records = load_records(dataset, root, split)
        splits.append(LabelledSplit(title, [target_key(r.source, root) for r in records.records],
                                    np.array([r.label for r in records.records]), records.classes))
    return splits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.teacher_table", description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", type=Path, default=TEACHERS, help="one folder per teacher, in ensemble order by name")
    parser.add_argument("--fer2013", type=Path, default=DATA / "fer2013")
    parser.add_argument("--ferplus", type=Path, default=DATA / "ferplus", help="for the FER+ test column, if present")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    folders = sorted(p for p in args.teachers.glob("*") if p.is_dir()) if args.teachers.is_dir() else []
    if not folders:
        print(f"error: no teacher folders in {args.teachers}", file=sys.stderr)
        return 2
    try:
        splits = labelled_splits(args.fer2013, args.ferplus)
        rows = ensemble_table([(f.name, read_teacher_folder(f)) for f in folders], splits)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps([vars(r) for r in rows], indent=2) if args.json else format_table(rows, splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

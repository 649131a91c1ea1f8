"""Synthesis-based balancing fills the rare classes and says where every face came from."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from model_core import load_checkpoint
from model_core.data import load_records
from model_core.train import balance

from ..shared_fixtures import MakeCheckpoint


def test_balance_reaches_the_target_and_writes_a_manifest(
    tmp_path: Path, make_checkpoint: MakeCheckpoint, make_folder: Callable[[dict[str, int]], Path]
) -> None:
    root = make_folder({"happy": 10, "disgust": 2, "fear": 5})
    out = tmp_path / "synthetic"
    report = balance(load_checkpoint(make_checkpoint()), load_records("folder", root, "all"), out, progress=False)
    assert report.before == {"disgust": 2, "fear": 5, "happy": 10}
    assert report.written == {"disgust": 8, "fear": 5}
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert len(rows) == 13
    assert {r["target_expression"] for r in rows} == {"disgust", "fear"}
    assert all(r["source_expression"] != r["target_expression"] for r in rows)
    assert all(Path(r["source"]).is_file() and (out / r["file"]).is_file() for r in rows)
    # The output is itself a dataset: real + synthetic is now balanced.
    synthetic = load_records("folder", out, "all")
    assert synthetic.class_counts() == {"disgust": 8, "fear": 5}


def test_min_confidence_rejects_unconvincing_fakes(
    tmp_path: Path, make_checkpoint: MakeCheckpoint, make_folder: Callable[[dict[str, int]], Path]
) -> None:
    root = make_folder({"happy": 4, "sad": 1})
    report = balance(load_checkpoint(make_checkpoint()), load_records("folder", root, "all"), tmp_path / "s",
                     min_confidence=1.01, progress=False)
    assert report.written == {"sad": 0} and report.rejected == {"sad": 4}


def test_single_task_model_cannot_balance(
    tmp_path: Path, make_checkpoint: MakeCheckpoint, make_folder: Callable[[dict[str, int]], Path]
) -> None:
    folder = make_checkpoint("none", sharing="none")
    with pytest.raises(ValueError, match="no synthesis branch"):
        balance(load_checkpoint(folder), load_records("folder", make_folder({"happy": 2, "sad": 1}), "all"), tmp_path / "x")

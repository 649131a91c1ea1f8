"""The paper's-claim lease script on the CPU: FER2013 unpacked from the pack, runs side by side, their answers back, the table.

A GPU lease is minutes long and brings back only files, so the script runs here end to end on fake FER2013,
with two rows and two seeds of a few steps each; then :mod:`training.sharing_table` reads what came back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from model_core.data.packed import pack
from model_core.train.ensemble import LabelledSplit
from training import sharing_table
from training.sharing_table import Row

from ..core.fakes import REPO


@pytest.mark.slow
def test_the_script_trains_each_row_and_seed_and_brings_back_answers_the_table_reads(
        fer2013_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packed = pack(fer2013_folder, tmp_path / "fer2013.npz").path
    out, runs, data = tmp_path / "out", tmp_path / "runs", tmp_path / "data" / "fer2013"
    env = os.environ | {"OUT": str(out), "RUNS": str(runs), "PACK": str(packed), "DATA": str(data), "ROWS": "none selective",
                        "SEEDS": "0 1", "EPOCHS": "1", "DEVICE": "cpu", "PYTHON": sys.executable, "WHEELS": str(tmp_path / "none"),
                        "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(REPO / "training" / "gpu_sharing.sh"), "--set", "max_steps_per_epoch=1",
                           "--set", "optim.batch_size=8", "--set", "num_workers=0", "--set", "threads=1"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(list(data.rglob("*.jpg"))) == 70  # unpacked from the pack: the host had no folders

    back = tmp_path / "back"
    with tarfile.open(out / "sharing.tar.gz") as tar:
        tar.extractall(back, filter="data")
    for name in ("none_s0", "none_s1", "selective_s0", "selective_s1"):
        assert {p.name for p in (back / name).iterdir()} == {"best", "metrics.jsonl", "val.csv.gz", "test.csv.gz", "console.log"}
        assert [p.name for p in (back / name / "best").iterdir()] == ["card.json"]  # never the weights

    assert sharing_table.main([str(back), "--root", str(data)]) == 0
    printed = capsys.readouterr().out
    assert printed == (out / "sharing.md").read_text()
    assert "| none | 2 | 1 |" in printed and "| selective | 2 | 1 |" in printed and "| selective - none |" in printed
    assert sharing_table.main([str(tmp_path / "nowhere"), "--root", str(data)]) == 2


def test_the_table_averages_seeds_and_pairs_rows_on_the_same_faces() -> None:
    split = LabelledSplit("PrivateTest", ["a", "b", "c", "d"], np.array([0, 1, 2, 3]), ("angry", "happy", "sad", "neutral"))
    rows = {
        "selective": Row("selective", [0, 1], [3, 3], {"PrivateTest": [np.array([1, 1, 1, 0], bool), np.array([1, 1, 0, 0], bool)]}),
        "none": Row("none", [0, 1], [3, 4], {"PrivateTest": [np.array([1, 0, 0, 0], bool), np.array([1, 1, 0, 0], bool)]}),
    }
    text, data = sharing_table.table(rows, [split])
    assert text.splitlines()[2] == "| none | 2 | 3-4 | 37.50 % |"  # the paper's order, whatever the folders'
    assert text.splitlines()[3] == "| selective | 2 | 3 | 62.50 % |"
    assert "| selective - none | +25.00 [" in text and "selective - hard" not in text
    assert data["differences"]["selective - none"]["PrivateTest"]["difference"] == pytest.approx(0.25)

"""The synthesis benchmark: an independent judge, a round trip, and the faces-by-targets figure."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import synthesis_quality
from model_core import Preprocess, create_model, save_checkpoint
from model_core.checkpoint import build_card
from model_core.expressions import FER2013_CLASSES


def _checkpoint(folder: Path, sharing: str, seed: int) -> Path:
    torch.manual_seed(seed)
    model = create_model("fersnet_tiny", sharing=sharing)
    return save_checkpoint(folder, model, build_card(model, FER2013_CLASSES, Preprocess()))


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["synthesis_quality", *argv])
    synthesis_quality.main()


def test_judged_table_and_grid(
    tmp_path: Path, fer2013_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = _checkpoint(tmp_path / "generator", "selective", 0)
    judge = _checkpoint(tmp_path / "judge", "none", 1)
    grid = tmp_path / "figures" / "grid.png"
    _run(monkeypatch, "--checkpoint", str(generator), "--judge", str(judge), "--root", str(fer2013_folder),
         "--limit", "100", "--grid", str(grid))
    out = capsys.readouterr().out
    assert "judged as target" in out and "input judged as target" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| target")]
    assert [line.split("|")[1].strip() for line in rows] == [*FER2013_CLASSES, "all"]
    # 14 PrivateTest faces, 2 of each class: every face is edited towards the six expressions it does not show.
    assert int(rows[-1].split("|")[2]) == 14 * 6
    judged = float(rows[-1].split("|")[3].strip(" %"))
    assert 0.0 <= judged <= 100.0
    # The figure exists and is a real image (its content is a matplotlib rendering of 7 rows x 8 columns).
    assert np.asarray(Image.open(grid)).ndim == 3


def test_the_generator_cannot_judge_itself(tmp_path: Path, fer2013_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = _checkpoint(tmp_path / "generator", "selective", 0)
    with pytest.raises(SystemExit, match="another model"):
        _run(monkeypatch, "--checkpoint", str(generator), "--judge", str(generator), "--root", str(fer2013_folder),
             "--limit", "7")

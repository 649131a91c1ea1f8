"""The synthesis benchmark: an independent judge, a round trip, and the faces-by-targets figure."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import synthesis_quality
from model_core.expressions import FER2013_CLASSES

from .conftest import MakeCheckpoint


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["synthesis_quality", *argv])
    synthesis_quality.main()


def test_judged_table_and_grid(
    tmp_path: Path,
    fer2013_folder: Path,
    make_checkpoint: MakeCheckpoint,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    generator = make_checkpoint("generator")
    judge = make_checkpoint("judge", sharing="none", seed=1)
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


def test_the_generator_cannot_judge_itself(
    fer2013_folder: Path, make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = make_checkpoint("generator")
    with pytest.raises(SystemExit, match="another model"):
        _run(monkeypatch, "--checkpoint", str(generator), "--judge", str(generator), "--root", str(fer2013_folder),
             "--limit", "7")

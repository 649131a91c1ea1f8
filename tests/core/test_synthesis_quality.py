"""The synthesis benchmark: generators side by side, an independent judge, a round trip, the realism probe and the figure."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import synthesis_quality
from model_core import load_checkpoint

from ..shared_fixtures import MakeCheckpoint


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["synthesis_quality", *argv])
    synthesis_quality.main()


def test_generators_side_by_side_with_a_judge_and_a_grid(
    tmp_path: Path,
    fer2013_folder: Path,
    make_checkpoint: MakeCheckpoint,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    direct = make_checkpoint("direct")
    masked = make_checkpoint("masked", synthesis_output="masked", seed=2)
    judge = make_checkpoint("judge", sharing="none", seed=1)
    grid = tmp_path / "figures" / "grid.png"
    _run(monkeypatch, "--checkpoint", str(direct), str(masked), "--judge", str(judge), "--root", str(fer2013_folder),
         "--limit", "100", "--judge-limit", "7", "--grid", str(grid))
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[1:]]
    assert [row["generator"] for row in rows] == ["direct", "masked"]
    # 14 PrivateTest faces, 2 of each class: every face is edited towards the six expressions it does not show.
    assert all(int(row["edits"]) == 14 * 6 for row in rows)
    for row in rows:
        assert 0.0 <= float(row["judged as target"].strip(" %")) <= 100.0
        assert 0.0 <= float(row["real vs edited"].strip(" %")) <= 100.0
        assert float(row["cycle L1"]) > 0 and float(row["changed"]) > 0
        float(row["outside the expression"])  # measured on the masked generator's closed pixels, for both rows
    assert np.asarray(Image.open(grid)).ndim == 3


def test_the_generator_cannot_judge_itself(
    fer2013_folder: Path, make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = make_checkpoint("generator")
    with pytest.raises(SystemExit, match="another model"):
        _run(monkeypatch, "--checkpoint", str(generator), "--judge", str(generator), "--root", str(fer2013_folder),
             "--limit", "7")


def test_intensities_side_by_side_and_the_chosen_one_written_to_the_card(
    fer2013_folder: Path, make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    masked = make_checkpoint("masked", synthesis_output="masked", seed=2)
    judge = make_checkpoint("judge", sharing="none", seed=1)
    common = ["--checkpoint", str(masked), "--judge", str(judge), "--root", str(fer2013_folder), "--limit", "14",
              "--judge-limit", "14", "--intensity", "0", "1", "2"]
    with pytest.raises(SystemExit, match="validation --split"):
        _run(monkeypatch, *common, "--write-intensity")  # the test split never chooses
    capsys.readouterr()
    _run(monkeypatch, *common, "--split", "val", "--write-intensity", "--min-judged", "0")
    out = capsys.readouterr().out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| masked")]
    assert [r[2].strip() for r in rows] == ["0", "1", "2"]
    assert float(rows[0][5]) == 0 < float(rows[1][5]) < float(rows[2][5])  # "changed" grows with the intensity
    card = load_checkpoint(masked).card
    assert card.intensity is not None and card.intensity.default == 0  # the smallest reaching 0 %: any
    assert set(card.intensity.measured) == {"0", "1", "2"} and "--write-intensity" in (card.intensity.command or "")
    with pytest.raises(SystemExit, match="no intensity tried reached"):
        _run(monkeypatch, *common, "--split", "val", "--write-intensity", "--min-judged", "1.01")
    assert load_checkpoint(masked).card.intensity == card.intensity  # unchanged


def test_fine_change_tells_streaks_from_shapes() -> None:
    """Two changes of the same mean size: one broad smooth region, one of stripes a pixel wide."""
    import torch

    y, x = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    broad = torch.exp(-((x - 24) ** 2 + (y - 30) ** 2) / (2 * 8.0**2))[None, None]
    stripes = (torch.arange(48) % 2).float().expand(1, 1, 48, 48) * 2 - 1
    stripes = stripes * broad.abs().mean() / stripes.abs().mean()
    assert synthesis_quality.fine_change(torch.zeros(1, 1, 48, 48)) == 0.0
    assert synthesis_quality.fine_change(broad) < 0.05 * synthesis_quality.fine_change(stripes)

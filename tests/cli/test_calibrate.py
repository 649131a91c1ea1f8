"""`fersnet calibrate`: the temperature fitted on a validation split and written on the card, never on a test split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fersnet_cli.main import main
from model_core import load_checkpoint

from ..shared_fixtures import MakeCheckpoint


def test_calibrate_command_writes_the_temperature_on_the_card(
    make_checkpoint: MakeCheckpoint, fer2013_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = make_checkpoint()
    assert load_checkpoint(checkpoint).temperature == 1.0  # none fitted yet
    main(["calibrate", str(checkpoint), "--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "val",
          "--report", f"fer2013:test:{fer2013_folder}", "--figure", str(tmp_path / "reliability.png")])
    assert "temperature" in capsys.readouterr().out

    card = json.loads((checkpoint / "card.json").read_text())
    calibration = card["calibration"]
    assert set(calibration["measured"]) == {"fer2013/val", "fer2013/test"}
    val = calibration["measured"]["fer2013/val"]
    assert val["after"]["nll"] <= val["before"]["nll"] + 1e-4
    assert val["after"]["accuracy"] == val["before"]["accuracy"]
    assert calibration["command"].startswith("fersnet calibrate")
    loaded = load_checkpoint(checkpoint)  # the weights' hash still holds: only the card changed
    assert loaded.temperature == calibration["temperature"] > 0
    assert (tmp_path / "reliability.png").stat().st_size > 1000


def test_calibrate_refuses_to_fit_on_a_test_split(make_checkpoint: MakeCheckpoint, fer2013_folder: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["calibrate", str(make_checkpoint()), "--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "test"])
    assert "fitted on a validation split" in capsys.readouterr().err


def test_a_figure_that_cannot_be_written_leaves_the_card_as_it_was(
    make_checkpoint: MakeCheckpoint, fer2013_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """calibrate and evaluate --record write the card and a figure: a figure they cannot write stops them before
    the card changes (calibrate checks first; evaluate draws the figure first), one line, exit 2."""
    checkpoint = make_checkpoint()
    before = (checkpoint / "card.json").read_bytes()
    data = ["--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "val"]
    for argv in (["calibrate", str(checkpoint), *data, "--figure", str(tmp_path)],
                 ["calibrate", str(checkpoint), *data, "--figure", str(tmp_path / "no" / "such" / "r.png")],
                 ["evaluate", "--checkpoint", str(checkpoint), *data, "--record", "--figure", str(tmp_path)]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("fersnet: error:") and str(tmp_path) in err and len(err.strip().splitlines()) == 1, err
        assert (checkpoint / "card.json").read_bytes() == before, argv

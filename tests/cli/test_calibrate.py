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


def test_a_figure_must_be_a_picture_file(make_checkpoint: MakeCheckpoint, fer2013_folder: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """--figure fig.txt: matplotlib would refuse it only after the work (and after calibrate had written its card)."""
    checkpoint = make_checkpoint()
    before = (checkpoint / "card.json").read_bytes()
    data = ["--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "val", "--figure", str(tmp_path / "fig.txt")]
    for argv in (["calibrate", str(checkpoint), *data], ["evaluate", "--checkpoint", str(checkpoint), *data]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "--figure" in err and "fig.txt" in err and "png" in err and len(err.strip().splitlines()) == 1, err
    assert (checkpoint / "card.json").read_bytes() == before


def test_a_bundled_checkpoint_named_by_its_name_keeps_its_card(fer2013_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its card is what every answer of it reads: calibrated on a user's few images it would change them all."""
    from model_core import registry

    card = registry.BUNDLED[registry.DEFAULT].folder / "card.json"
    before = card.read_bytes()
    data = ["--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "val"]
    for argv in (["calibrate", "default", *data], ["prior", "default", *data[:-2], "--split", "train"],
                 ["evaluate", *data, "--record"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert "default is a bundled checkpoint" in err and "DIR" in err and len(err.strip().splitlines()) == 1, err
    assert card.read_bytes() == before


def test_out_writes_the_new_card_on_a_copy(make_checkpoint: MakeCheckpoint, fer2013_folder: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = make_checkpoint()
    before = (checkpoint / "card.json").read_bytes()
    data = ["--dataset", "fer2013", "--root", str(fer2013_folder)]
    main(["calibrate", str(checkpoint), *data, "--split", "val", "--out", str(tmp_path / "calibrated")])
    main(["prior", str(tmp_path / "calibrated"), *data, "--split", "train", "--default", "balanced"])  # the copy's own
    assert f"{tmp_path / 'calibrated' / 'card.json'}" in capsys.readouterr().out
    assert (checkpoint / "card.json").read_bytes() == before
    copy = load_checkpoint(tmp_path / "calibrated")  # the copied weights' hash holds
    assert copy.temperature != 1.0 and copy.prior == "balanced"
    assert copy.sha256 == load_checkpoint(checkpoint).sha256


def test_evaluate_prints_its_answer_before_a_figure_the_system_refuses(
    make_checkpoint: MakeCheckpoint, fer2013_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A folder that looks writable but is not (/proc, a full disk) fails only when the figure is saved: the whole
    evaluation's figures are on the screen by then, and the card, with --record, is as it was."""
    from fersnet_cli.commands import evaluate

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "confusion.png"))

    monkeypatch.setattr(evaluate, "plot_confusion", refused)
    checkpoint = make_checkpoint()
    before = (checkpoint / "card.json").read_bytes()
    with pytest.raises(SystemExit):
        main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "fer2013", "--root", str(fer2013_folder),
              "--split", "val", "--record", "--json", "--figure", str(tmp_path / "confusion.png")])
    out, err = capsys.readouterr()
    assert json.loads(out)["accuracy"] >= 0 and "No space left on device" in err
    assert (checkpoint / "card.json").read_bytes() == before


def test_out_never_overwrites_a_checkpoint_or_other_files(make_checkpoint: MakeCheckpoint, fer2013_folder: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second --out into the copy would have replaced its new card with the source's (the calibration lost)."""
    checkpoint = make_checkpoint()
    data = ["--dataset", "fer2013", "--root", str(fer2013_folder)]
    main(["calibrate", "--checkpoint", str(checkpoint), *data, "--split", "val", "--out", str(tmp_path / "copy")])
    calibrated = (tmp_path / "copy" / "card.json").read_bytes()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    for out, message in ((tmp_path / "copy", "already holds a checkpoint; to change its card, name it as the checkpoint"),
                         (tmp_path / "other", "a folder holding other files")):
        with pytest.raises(SystemExit) as exit_info:
            main(["prior", str(checkpoint), *data, "--out", str(out)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "copy" / "card.json").read_bytes() == calibrated
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["keep.txt"]
    with pytest.raises(SystemExit):  # the checkpoint named twice is ambiguous
        main(["prior", str(checkpoint), "--checkpoint", str(checkpoint), *data])
    assert "name the checkpoint once" in capsys.readouterr().err

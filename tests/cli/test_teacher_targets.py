"""`fersnet teacher-targets` then `fersnet train`: offline distillation from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fersnet_cli.main import main

from ..core.fakes import tiny_recipe
from ..shared_fixtures import MakeCheckpoint


def test_distillation_end_to_end_from_the_command_line(fer2013_folder: Path, make_checkpoint: MakeCheckpoint,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    targets = tmp_path / "teacher" / "train.csv"
    main(["teacher-targets", "--checkpoint", str(make_checkpoint("teacher")), "--dataset", "fer2013",
          "--root", str(fer2013_folder), "--out", str(targets), "--temperature", "2", "--device", "cpu"])
    assert f"wrote {targets}" in capsys.readouterr().out
    recipe = tiny_recipe(tmp_path, fer2013_folder)
    recipe["train"][0] |= {"teacher": str(targets), "teacher_weight": 0.5}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    main(["train", "--config", str(path), "--set", "optim.epochs=1"])
    card = json.loads((tmp_path / "run" / "best" / "card.json").read_text())
    assert card["training"]["recipe"]["train"][0]["teacher"] == str(targets)  # the card says how it was taught

    path.write_text(yaml.safe_dump(tiny_recipe(tmp_path, fer2013_folder) | {
        "train": [recipe["train"][0] | {"teacher": str(tmp_path / "nowhere.csv")}]}))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(path)])
    assert exit_info.value.code == 2
    assert "nowhere.csv: teacher-targets file not found" in capsys.readouterr().err

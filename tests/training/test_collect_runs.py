"""The per-run record behind a results table: rebuilt from what `fersnet train` wrote, or a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_core import load_checkpoint
from model_core.train import TrainConfig, Trainer
from training import collect_runs

from ..core.fakes import tiny_recipe


def test_a_run_folder_gives_its_selected_epoch_and_metrics(
    tmp_path: Path, fer2013_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = Trainer(TrainConfig.model_validate(tiny_recipe(tmp_path, fer2013_folder, seed=3, figures=False))).fit()
    run = tmp_path / "run"
    capsys.readouterr()  # the trainer's own epoch lines
    collect_runs.main([f"control={run}", "--hardware", "two cores"])
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]

    card = load_checkpoint(best).card
    epochs = [json.loads(text) for text in (run / "metrics.jsonl").read_text().splitlines()]
    assert (line["row"], line["run"], line["seed"], line["hardware"]) == ("control", str(run), 3, "two cores")
    assert line["metrics"] == card.metrics and set(line["metrics"]) == {"fer2013/val", "fer2013/test"}
    assert len(line["val_accuracy_by_epoch"]) == len(epochs) == 2
    # The selected epoch is the one with the best validation accuracy, and its metrics are that epoch's.
    assert line["best_epoch"] == 1 + line["val_accuracy_by_epoch"].index(max(line["val_accuracy_by_epoch"]))
    assert line["metrics"]["fer2013/val"]["accuracy"] == pytest.approx(max(line["val_accuracy_by_epoch"]), abs=1e-4)


def test_a_folder_that_is_not_a_run_is_named_in_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        collect_runs.main([f"control={tmp_path / 'nowhere'}"])
    assert f"{tmp_path / 'nowhere'}: no metrics.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        collect_runs.main(["runs/without_a_row"])
    assert "expected ROW=RUN_FOLDER" in capsys.readouterr().err

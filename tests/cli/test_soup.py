"""`fersnet soup`: the soup written with its ingredients, measurements and temperature on its card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fersnet_cli.main import main
from model_core import load_checkpoint, save_checkpoint

from ..core.fakes import flat_parameters, perturbed
from ..shared_fixtures import MakeCheckpoint


def test_cli_writes_the_soup_with_its_ingredients_and_measurements_on_its_card(
    fer2013_folder: Path, make_checkpoint: MakeCheckpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = make_checkpoint("base")
    paths = []
    for seed in (1, 2, 3):
        loaded = perturbed(base, 0.005, seed)
        paths.append(save_checkpoint(tmp_path / f"ft{seed}", loaded.model, loaded.card))
    out = tmp_path / "soup"
    main(["soup", *map(str, paths), "--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "val",
          "--report", f"fer2013:test:{fer2013_folder}", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "fer2013/val" in printed and "fer2013/test" in printed

    card = json.loads((out / "card.json").read_text())
    soup = card["training"]["soup"]
    assert [i["checkpoint"] for i in soup["ingredients"]] == [str(p) for p in paths]
    assert soup["selected_on"].startswith("fer2013:val")
    assert len(soup["greedy_trials"]) == len(paths) - 1  # every ingredient after the best was tried once
    assert set(card["metrics"]) == {"fer2013/val", "fer2013/test"}
    assert card["calibration"]["fitted_on"].startswith("fer2013:val")  # a new set of weights gets its own temperature
    assert set(card["calibration"]["measured"]) == {"fer2013/val", "fer2013/test"}
    # The weights on disk are the average of exactly the ingredients the card says are in the soup.
    chosen = [load_checkpoint(p).model for p, i in zip(paths, soup["ingredients"], strict=True) if i["in_soup"]]
    expected = torch.stack([flat_parameters(m) for m in chosen]).mean(0)
    assert torch.allclose(flat_parameters(load_checkpoint(out).model), expected, atol=1e-6)


def test_cli_names_a_bad_report_spec(fer2013_folder: Path, make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_checkpoint("a"), make_checkpoint("b", seed=1)
    with pytest.raises(SystemExit) as exit_info:
        main(["soup", str(a), str(b), "--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "val",
              "--method", "uniform", "--report", "fer2013-test", "--out", str(tmp_path / "s")])
    assert exit_info.value.code == 2
    assert "expected dataset:split:root" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("command", ["soup", "calibrate"])
def test_a_report_under_the_name_of_the_fitted_split_is_refused(
    command: str, fer2013_folder: Path, make_checkpoint: MakeCheckpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Splits are named dataset/split on a card: a report of fer2013/val from another folder would replace the split the
    soup is chosen on (or the temperature fitted on) while the card still named the first folder."""
    a, b = make_checkpoint("a"), make_checkpoint("b", seed=1)
    card_before = (a / "card.json").read_bytes()
    other = tmp_path / "other"
    checkpoints = [str(a), str(b)] if command == "soup" else [str(a)]
    out = ["--out", str(tmp_path / "s")] if command == "soup" else []
    with pytest.raises(SystemExit) as exit_info:
        main([command, *checkpoints, "--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "val",
              "--report", f"fer2013:val:{other}", *out])
    assert exit_info.value.code == 2
    assert f"fer2013/val is already fer2013:val from {fer2013_folder}" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() and (a / "card.json").read_bytes() == card_before


def test_cli_refuses_to_choose_a_soup_on_a_test_split(fer2013_folder: Path, make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_checkpoint("a"), make_checkpoint("b", seed=1)
    with pytest.raises(SystemExit):
        main(["soup", str(a), str(b), "--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "test",
              "--out", str(tmp_path / "s")])
    assert "chosen on a validation split" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()

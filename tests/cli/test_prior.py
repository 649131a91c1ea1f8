"""`fersnet prior` records a checkpoint's training class frequencies and default prior on its card; `fersnet
evaluate` answers under the card's prior, or `--prior`'s, and `--record` writes its figures on the card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fersnet_cli.main import main
from model_core import Preprocess, create_model, load_checkpoint, save_checkpoint
from model_core.card import Prior
from model_core.checkpoint import build_card, write_card
from model_core.expressions import FER2013_CLASSES

from ..shared_fixtures import MakeCheckpoint


def test_prior_writes_the_training_splits_frequencies_and_refuses_a_test_split(
    make_checkpoint: MakeCheckpoint, fer2013_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = make_checkpoint()
    with pytest.raises(SystemExit):
        main(["prior", str(checkpoint), "--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "test"])
    assert "training data's" in capsys.readouterr().err and load_checkpoint(checkpoint).card.prior is None
    main(["prior", str(checkpoint), "--dataset", "fer2013", "--root", str(fer2013_folder), "--default", "balanced"])
    prior = load_checkpoint(checkpoint).card.prior  # the weights' hash still holds: only the card changed
    assert prior is not None and prior.default == "balanced"
    assert prior.frequencies == pytest.approx(dict.fromkeys(FER2013_CLASSES, 1 / 7), abs=1e-6)  # six faces a class
    assert prior.command is not None and prior.command.startswith("fersnet prior")
    assert "neutral 14.29 %" in capsys.readouterr().out


def test_prior_keeps_the_cards_default_unless_told_and_says_when_its_figures_went_stale(
    make_checkpoint: MakeCheckpoint, fer2013_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recording frequencies again must not switch a balanced model to natural in silence; switching on purpose is
    said, since the card's figures are answers under the old prior."""
    checkpoint = make_checkpoint()
    data = ["--dataset", "fer2013", "--root", str(fer2013_folder)]
    main(["prior", "--checkpoint", str(checkpoint), *data, "--default", "balanced"])  # --checkpoint, as elsewhere
    capsys.readouterr()
    main(["prior", str(checkpoint), *data])
    assert load_checkpoint(checkpoint).prior == "balanced" and "note:" not in capsys.readouterr().err
    main(["evaluate", "--checkpoint", str(checkpoint), *data, "--split", "val", "--record"])  # a figure, as answered
    assert load_checkpoint(checkpoint).card.metrics["fer2013/val"]["prior"] == "balanced"
    main(["prior", str(checkpoint), *data, "--default", "natural"])
    assert load_checkpoint(checkpoint).prior == "natural"
    assert "fersnet: note: the card's figures were measured under the balanced prior; its answers are now under natural" in capsys.readouterr().err


@pytest.fixture
def leaning_neutral(tmp_path: Path) -> Path:
    """A model that answers neutral by a little over fear for every face (its head's bias), trained, its card says,
    where neutral was ten times as frequent as fear: under a balanced prior it answers fear."""
    model = create_model("fersnet_tiny")
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.zero_()
        model.head.fc.bias[FER2013_CLASSES.index("neutral")] = 1.0
        model.head.fc.bias[FER2013_CLASSES.index("fear")] = 0.5
    folder = save_checkpoint(tmp_path / "leaning", model, build_card(model, FER2013_CLASSES, Preprocess()))
    card = load_checkpoint(folder).card
    frequencies = dict.fromkeys(FER2013_CLASSES, 0.09) | {"neutral": 0.5, "fear": 0.05}
    card.prior = Prior(frequencies=frequencies, default="balanced")
    write_card(folder, card)
    return folder


def evaluate(capsys: pytest.CaptureFixture[str], checkpoint: Path, root: Path, *options: str) -> dict:
    main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "fer2013", "--root", str(root), "--split", "val",
          "--json", *options])
    return json.loads(capsys.readouterr().out)


def test_evaluate_answers_under_the_cards_prior_or_the_one_asked(
    leaning_neutral: Path, fer2013_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    balanced = evaluate(capsys, leaning_neutral, fer2013_folder)
    natural = evaluate(capsys, leaning_neutral, fer2013_folder, "--prior", "natural")
    assert balanced["prior"] == "balanced" and balanced["per_class_recall"]["fear"] == 1.0
    assert natural["prior"] == "natural" and natural["per_class_recall"]["neutral"] == 1.0
    expression = evaluate(capsys, leaning_neutral, fer2013_folder, "--head", "expression")
    assert expression["prior"] is None and expression["per_class_recall"]["neutral"] == 1.0
    with pytest.raises(SystemExit):
        evaluate(capsys, leaning_neutral, fer2013_folder, "--head", "expression", "--prior", "balanced")
    assert "--prior is the served head's" in capsys.readouterr().err


def test_a_balanced_prior_needs_the_cards_frequencies(make_checkpoint: MakeCheckpoint, fer2013_folder: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = make_checkpoint()
    with pytest.raises(SystemExit):
        evaluate(capsys, checkpoint, fer2013_folder, "--prior", "balanced")
    assert "records no class frequencies (fersnet prior writes them)" in capsys.readouterr().err
    assert evaluate(capsys, checkpoint, fer2013_folder)["prior"] == "natural"


def test_record_writes_the_figures_the_card_answers_with_and_nothing_else(
    leaning_neutral: Path, fer2013_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        evaluate(capsys, leaning_neutral, fer2013_folder, "--prior", "natural", "--record")
    assert "its own prior (balanced)" in capsys.readouterr().err
    assert "fer2013/val" not in load_checkpoint(leaning_neutral).card.metrics
    figures = evaluate(capsys, leaning_neutral, fer2013_folder, "--record")
    recorded = load_checkpoint(leaning_neutral).card.metrics["fer2013/val"]
    assert recorded["accuracy"] == pytest.approx(figures["accuracy"], abs=1e-4) and recorded["per_class_recall"]["fear"] == 1.0
    assert recorded["measured_by"].startswith("fersnet evaluate --checkpoint") and "--record" in recorded["measured_by"]

"""training/graft_generator.py: a new generator in a served checkpoint, its recogniser and answer tail kept exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_core import Preprocess, load_checkpoint, save_checkpoint
from model_core.card import Calibration, Intensity
from model_core.checkpoint import build_card, write_card
from model_core.expressions import FER2013_CLASSES, FERPLUS_CLASSES, one_hot
from model_core.transfer import without_answer_tail
from training import graft_generator

from ..shared_fixtures import MakeCheckpoint


def _generator(served: Path, out: Path, change: str) -> Path:
    """The served network without its tail, with every tensor of the modules whose names start with ``change`` moved."""
    model = without_answer_tail(load_checkpoint(served).model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(change):
                p.add_(0.05)
    return save_checkpoint(out, model, build_card(model, FER2013_CLASSES, Preprocess(), name="generator"))


@pytest.fixture
def served(make_checkpoint: MakeCheckpoint) -> Path:
    path = make_checkpoint("served", synthesis_output="masked", answer=FERPLUS_CLASSES)
    loaded = load_checkpoint(path)
    loaded.card.intensity = Intensity(default=1.2, chosen_on="the old decoder")
    loaded.card.calibration = Calibration(temperature=0.6)
    write_card(path, loaded.card)
    return path


def test_the_generator_moves_in_and_the_served_answers_stay(served: Path, tmp_path: Path) -> None:
    generator = _generator(served, tmp_path / "generator", "decoder")
    code = graft_generator.main(["--generator", str(generator), "--into", str(served), "--out", str(tmp_path / "new"),
                                 "--name", "grafted"])
    assert code == 0
    old, new, drawn = load_checkpoint(served), load_checkpoint(tmp_path / "new"), load_checkpoint(generator)
    faces, targets = torch.rand(3, 1, 48, 48) * 2 - 1, one_hot(torch.tensor([0, 3, 5]), 7)
    for m in (old, new, drawn):
        m.model.eval()
    with torch.no_grad():
        assert torch.equal(new.model.classify(faces), old.model.classify(faces))  # the served tail answers as before
        assert torch.equal(new.model.synthesize(faces, targets), drawn.model.synthesize(faces, targets))
        assert not torch.equal(new.model.synthesize(faces, targets), old.model.synthesize(faces, targets))
    card = new.card
    assert card.name == "grafted" and card.classes == list(FERPLUS_CLASSES) and card.expressions == list(FER2013_CLASSES)
    assert card.calibration is not None and card.calibration.temperature == 0.6
    assert card.intensity is None  # chosen for the old decoder: to be chosen again
    assert card.training["graft"]["into_sha256"] == old.sha256 and card.training["graft"]["generator_sha256"] == drawn.sha256


def test_a_generator_whose_trunk_moved_is_refused(served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator = _generator(served, tmp_path / "generator", "stem")
    code = graft_generator.main(["--generator", str(generator), "--into", str(served), "--out", str(tmp_path / "new"),
                                 "--name", "grafted"])
    assert code == 1 and not (tmp_path / "new").exists()
    error = capsys.readouterr().err
    assert error.startswith("graft_generator: error: stem.") and "must freeze everything the recogniser uses" in error
    code = graft_generator.main(["--generator", str(tmp_path / "nowhere"), "--into", str(served), "--out",
                                 str(tmp_path / "new"), "--name", "grafted"])
    error = capsys.readouterr().err
    assert code == 1 and error.startswith("graft_generator: error: ") and "nowhere" in error and "Traceback" not in error

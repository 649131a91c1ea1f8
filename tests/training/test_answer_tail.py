"""training/answer_tail.py: a FER+ tail fitted on a frozen network; only the tail moves, and the card serves it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_core import load_checkpoint
from model_core.card import Intensity
from model_core.checkpoint import write_card
from model_core.expressions import FER2013_CLASSES, FERPLUS_CLASSES
from training import answer_tail

from ..shared_fixtures import MakeCheckpoint


def test_the_tail_learns_and_nothing_else_moves(tmp_path: Path, make_checkpoint: MakeCheckpoint, ferplus_root: Path,
                                               fer2013_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = load_checkpoint(make_checkpoint("base", synthesis_output="masked"))
    base.card.intensity = Intensity(default=1.2, chosen_on="a test")
    write_card(base.path, base.card)
    out = tmp_path / "two_heads"
    code = answer_tail.main(["--checkpoint", str(base.path), "--out", str(out), "--ferplus", str(ferplus_root),
                             "--fer2013", str(fer2013_folder), "--epochs", "2", "--batch-size", "4", "--lr", "0.01"])
    assert code == 0
    grown = load_checkpoint(out)
    assert grown.classes == FERPLUS_CLASSES and grown.expressions == FER2013_CLASSES == base.classes
    before, after = base.model.state_dict(), grown.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # trunk, expression head, generator: as they were
    tail = {k: v for k, v in after.items() if grown.model.in_answer_tail(k)}
    started = load_checkpoint(make_checkpoint("started", synthesis_output="masked", answer=FERPLUS_CLASSES)).model.state_dict()
    assert any(not torch.equal(v, started[k]) for k, v in tail.items() if v.is_floating_point())  # the tail learnt
    card = grown.card
    assert card.training["answer_tail"]["selected_on"].startswith("ferplus:val")
    assert len(card.training["answer_tail"]["epochs"]) == 2
    # Candidates are chosen on the validation splits: no test figure is measured (or printed) before that choice.
    assert set(card.metrics) == {"ferplus/val", "expression_head/fer2013/val"}
    assert "--head expression" in card.metrics["expression_head/fer2013/val"]["measured_by"]
    assert card.intensity == base.card.intensity and card.intensity.default == 1.2  # the generator's, carried over
    assert "FER+ val accuracy" in capsys.readouterr().out


def test_a_missing_dataset_is_one_clear_error(tmp_path: Path, make_checkpoint: MakeCheckpoint, capsys: pytest.CaptureFixture[str]) -> None:
    code = answer_tail.main(["--checkpoint", str(make_checkpoint()), "--out", str(tmp_path / "x"),
                             "--ferplus", str(tmp_path / "nowhere")])
    assert code == 2 and "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_network_with_a_tail_gets_a_new_one_grown_from_its_expression_head(
        tmp_path: Path, make_checkpoint: MakeCheckpoint, ferplus_root: Path, fer2013_folder: Path) -> None:
    base = load_checkpoint(make_checkpoint("two_heads", synthesis_output="masked", answer=FERPLUS_CLASSES))
    out = tmp_path / "regrown"
    code = answer_tail.main(["--checkpoint", str(base.path), "--out", str(out), "--ferplus", str(ferplus_root),
                             "--fer2013", str(fer2013_folder), "--epochs", "1", "--batch-size", "4"])
    assert code == 0
    regrown = load_checkpoint(out)
    assert regrown.classes == FERPLUS_CLASSES and regrown.expressions == base.expressions == FER2013_CLASSES
    before, after = base.model.state_dict(), regrown.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not base.model.in_answer_tail(k))


def test_changed_copies_are_new_faces_drawn_alike_each_run(make_checkpoint: MakeCheckpoint) -> None:
    model = load_checkpoint(make_checkpoint("copies", answer=FERPLUS_CLASSES)).model.eval()
    images = torch.rand(6, 1, 48, 48) * 2 - 1
    first, second = answer_tail.changed_copies(model, images, copies=2, seed=3, batch_size=4)
    again = answer_tail.changed_copies(model, images, copies=2, seed=3, batch_size=4)
    clean = model.tail_input(images)
    assert first.shape == second.shape == clean.shape
    assert not torch.allclose(first, clean) and not torch.allclose(first, second)  # each copy changes each face anew
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])  # the seed repeats a run


def test_copies_are_read_in_turn_and_named_on_the_card(tmp_path: Path, make_checkpoint: MakeCheckpoint,
                                                      ferplus_root: Path, fer2013_folder: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "with_copies"
    code = answer_tail.main(["--checkpoint", str(make_checkpoint("base", synthesis_output="masked")), "--out", str(out),
                             "--ferplus", str(ferplus_root), "--fer2013", str(fer2013_folder),
                             "--epochs", "3", "--batch-size", "4", "--copies", "2"])
    assert code == 0
    tail = load_checkpoint(out).card.training["answer_tail"]
    assert tail["copies"] == 2 and tail["changes"]["gamma"] == answer_tail.CHANGES.gamma > 1
    assert len(tail["epochs"]) == 3 and "(2 changed copies)" in capsys.readouterr().out


def test_a_negative_number_of_copies_is_refused_up_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        answer_tail.main(["--out", str(tmp_path / "x"), "--copies", "-1"])
    assert refused.value.code == 2 and "--copies" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

"""`fersnet evaluate` on a set that lacks some of the model's classes: the headline counts an answer the set never
uses as wrong, ``accuracy_restricted`` beside it scores the best of the set's classes (the library's side of this is
tests/core/test_evaluate.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from fersnet_cli.main import main
from model_core import Preprocess, create_model, save_checkpoint
from model_core.checkpoint import build_card
from model_core.data import load_records
from model_core.expressions import CKPLUS_CLASSES, FER2013_CLASSES, FERPLUS_CLASSES


@pytest.fixture
def always(tmp_path: Path) -> Callable[..., Path]:
    """A checkpoint whose every answer is ``answer``: its head's weights zeroed, its bias one-hot.
    Every other class ties at zero, so the best of a subset that lacks ``answer`` is that subset's first class."""

    def make(answer: str, classes: tuple[str, ...] = FER2013_CLASSES) -> Path:
        model = create_model("fersnet_tiny", num_classes=len(classes))
        with torch.no_grad():
            model.head.fc.weight.zero_()
            model.head.fc.bias.zero_()
            model.head.fc.bias[classes.index(answer)] = 10.0
        return save_checkpoint(tmp_path / f"always_{answer}", model, build_card(model, classes, Preprocess()))

    return make


def _evaluate(capsys: pytest.CaptureFixture[str], checkpoint: Path, *data: str) -> dict:
    main(["evaluate", "--checkpoint", str(checkpoint), *data, "--json"])
    return json.loads(capsys.readouterr().out)


def test_a_one_class_folder_no_longer_scores_every_model_perfect(
    always: Callable[..., Path], make_folder: Callable[[dict[str, int]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Four happy faces and a model that answers sad to everything: wrong four times, not right four times."""
    root = make_folder({"happy": 4})
    result = _evaluate(capsys, always("sad"), "--dataset", "folder", "--root", str(root), "--split", "all")
    assert result["accuracy"] == 0 and result["per_class_recall"] == {"happy": 0.0}
    assert result["accuracy_restricted"] == 1.0  # the old protocol: happy is the only answer it allowed
    assert result["classes"] == ["happy"] and result["extra_classes"] == ["angry", "disgust", "fear", "sad", "surprise", "neutral"]
    assert result["predicted_classes"] == ["happy", *result["extra_classes"]]
    assert result["confusion"] == [[0, 0, 0, 0, 4, 0, 0]]  # the four answers in the sad column

    happy = _evaluate(capsys, always("happy"), "--dataset", "folder", "--root", str(root), "--split", "all")
    assert happy["accuracy"] == happy["accuracy_restricted"] == 1.0


def test_an_always_neutral_model_scores_nothing_on_ck_plus(
    always: Callable[..., Path], ckplus_root: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """End to end: every answer neutral is every answer wrong; restricted, ties go to the first class (angry)."""
    data = ["--dataset", "ckplus", "--root", str(ckplus_root), "--split", "all"]
    result = _evaluate(capsys, always("neutral"), *data)
    angry = sum(r.label == CKPLUS_CLASSES.index("angry") for r in load_records("ckplus", ckplus_root, "all").records)
    assert result["accuracy"] == 0 and result["macro_f1"] == 0 and result["n"] == 36 and result["unsupported"] == 6
    assert result["accuracy_restricted"] == pytest.approx(angry / 36)
    figure = tmp_path / "confusion.png"
    main(["evaluate", "--checkpoint", str(always("neutral")), *data, "--figure", str(figure)])
    text = capsys.readouterr().out
    assert "answers of a class the set never uses (neutral): 30, counted wrong" in text and figure.stat().st_size > 1000


def test_head_expression_measures_the_expression_head_of_a_two_head_model(
    tmp_path: Path, fer2013_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """FER2013's seven in the expression head (always sad), FER+'s eight in the answer tail (always contempt): served,
    every answer is contempt, a class FER2013 never uses; --head expression answers in the seven, sad."""
    model = create_model("fersnet_tiny", answer_classes=len(FERPLUS_CLASSES))
    with torch.no_grad():
        for head, classes, answer in ((model.head, FER2013_CLASSES, "sad"), (model.answer_head, FERPLUS_CLASSES, "contempt")):
            head.fc.weight.zero_()
            head.fc.bias.zero_()
            head.fc.bias[classes.index(answer)] = 10.0
    card = build_card(model, FERPLUS_CLASSES, Preprocess(), expressions=FER2013_CLASSES)
    checkpoint = save_checkpoint(tmp_path / "two-heads", model, card)
    data = ["--dataset", "fer2013", "--root", str(fer2013_folder), "--split", "test"]

    served = _evaluate(capsys, checkpoint, *data)
    assert served["head"] == "served" and served["accuracy"] == 0 and served["extra_classes"] == ["contempt"]
    assert all(row[-1] == sum(row) for row in served["confusion"])  # every answer in the contempt column

    main(["evaluate", "--checkpoint", str(checkpoint), *data, "--json", "--head", "expression"])
    expression = json.loads(capsys.readouterr().out)
    assert expression["head"] == "expression" and expression["predicted_classes"] == list(FER2013_CLASSES)
    sad = FER2013_CLASSES.index("sad")
    assert expression["per_class_recall"]["sad"] == 1.0 and all(row[sad] == sum(row) for row in expression["confusion"])
    assert expression["n"] == served["n"] and expression["accuracy"] == pytest.approx(1 / 7)

    main(["evaluate", "--checkpoint", str(checkpoint), *data, "--head", "expression"])
    assert ", expression head) on fer2013/test" in capsys.readouterr().out

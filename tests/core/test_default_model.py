"""The bundled default model: its card's accuracy is what `fersnet evaluate` measures on the real data."""

from __future__ import annotations

import json

import pytest
import torch

from model_core import DEFAULT_CHECKPOINT, LoadedModel, load_checkpoint
from model_core.registry import BUNDLED

from ..card_checks import assert_card_states
from .fakes import SHARED_DATA

FERPLUS = SHARED_DATA / "ferplus"
FER2013 = SHARED_DATA / "fer2013"


@pytest.fixture(scope="module")
def default_on_cpu() -> LoadedModel:
    """The default, loaded once for the realdata checks and laid out as the CLI and the service run it (faster)."""
    from model_core.hardware import lay_out_for

    loaded = load_checkpoint(None)
    lay_out_for(loaded.model, torch.device("cpu"))
    return loaded


def test_default_checkpoint_loads_and_is_small() -> None:
    loaded = load_checkpoint(None)
    assert loaded.path == DEFAULT_CHECKPOINT
    assert (DEFAULT_CHECKPOINT / "model.safetensors").stat().st_size <= 25 * 2**20
    assert loaded.model.has_synthesis and loaded.model.has_answer_tail
    assert len(loaded.expressions) == loaded.model.config.num_classes  # FER2013's seven: the synthesis targets
    assert len(loaded.classes) == loaded.model.config.answer_classes and "contempt" in loaded.classes  # FER+'s eight


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_cards_state_ck_plus_under_both_protocols(name: str) -> None:
    """Every bundled card's CK+48 figure is the plain argmax over the model's seven classes, with the restricted one
    (neutral never an answer) beside it; where the card's calibration also measured CK+48, its accuracy (the same
    argmax, on the 927 faces whose class the model has) counts the same faces right. Runs no model: the full-size
    ones take minutes on a CPU (the commands that measured them are on the cards)."""
    card = json.loads((BUNDLED[name].folder / "card.json").read_text())
    ck = card["metrics"]["ckplus/all"]
    assert ck["images"] == 981 and ck["restricted_excludes"] == ["neutral"]
    assert ck["accuracy"] < ck["accuracy_restricted"] and "--dataset ckplus" in ck["measured_by"]
    calibrated = card.get("calibration", {}).get("measured", {}).get("ckplus/all")
    if calibrated:
        before = calibrated["before"]
        assert round(before["accuracy"] * before["images"]) == round(ck["accuracy"] * ck["images"])


@pytest.mark.realdata
def test_card_calibration_and_ferplus_accuracy_are_reproduced(default_on_cpu: LoadedModel) -> None:
    """The card's temperature is the one that fits the validation split it names (FER+'s, for the served FER+ head),
    and does on the test split what the card says (ECE and NLL after scaling); the same logits, answered as served
    (calibrated, then under the card's prior), score the card's FER+ accuracies, as ``fersnet evaluate`` scores them.

    One pass of the model over each FER+ split serves every check: on a 2-core CPU a pass over one split with the
    default's four looks takes minutes, so the FER+ rows are measured here and not again through the CLI
    (tests/cli/test_default_model.py runs ``fersnet evaluate`` on CK+48)."""
    from model_core.calibration import CalibrationMetrics, dataset_logits, fit_temperature
    from model_core.data import load_records
    from model_core.evaluate import evaluate_dataset, evaluation_set

    if not FERPLUS.is_dir():
        pytest.skip(f"{FERPLUS} is not present")
    loaded = default_on_cpu
    calibration = loaded.card.calibration
    assert calibration is not None and calibration.fitted_on.startswith("ferplus:val")

    def logits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        faces = evaluation_set(load_records("ferplus", FERPLUS, split), loaded.preprocess, loaded.classes)
        scores = dataset_logits(loaded.model, loaded.classes, faces)
        served = evaluate_dataset(loaded.model, loaded.classes, faces, logits=scores, answer=loaded.probabilities)
        assert served.accuracy == pytest.approx(loaded.card.metrics[f"ferplus/{split}"]["accuracy"], abs=0.005)
        return scores

    assert fit_temperature(*logits("val")) == pytest.approx(calibration.temperature, abs=0.01)
    test = CalibrationMetrics.measure(*logits("test"), loaded.temperature)
    stated = calibration.measured["ferplus/test"]["after"]
    assert test.ece == pytest.approx(stated["ece"], abs=0.005) and test.nll == pytest.approx(stated["nll"], abs=0.005)
    before = calibration.measured["ferplus/test"]["before"]
    assert test.nll <= before["nll"]  # what the temperature minimises on validation also falls on the test split
    assert test.ece < 0.05  # and the probabilities stay calibrated there (the default's were before scaling too)


@pytest.mark.realdata
def test_card_fer2013_accuracy_of_both_heads_is_reproduced(default_on_cpu: LoadedModel) -> None:
    """FER2013 PrivateTest as the card states it for both heads, from one pass of the model (``heads_logits``): the
    served FER+ head answered as served (calibrated, under the card's prior; its contempt answers wrong), and the
    expression head, FER2013's seven classes (the literature's figure), as ``fersnet evaluate --head expression``
    scores them."""
    from model_core.calibration import heads_logits
    from model_core.data import load_records
    from model_core.evaluate import evaluate_dataset, evaluation_set

    if not FER2013.is_dir():
        pytest.skip(f"{FER2013} is not present")
    loaded = default_on_cpu
    faces = evaluation_set(load_records("fer2013", FER2013, "test"), loaded.preprocess, loaded.classes)
    expression_classes = loaded.classes_of("expression")
    logits = heads_logits(loaded.model, {"served": loaded.classes, "expression": expression_classes}, faces)
    served = evaluate_dataset(loaded.model, loaded.classes, faces, logits=logits["served"], answer=loaded.probabilities)
    expression = evaluate_dataset(loaded.model, expression_classes, faces, logits=logits["expression"])
    assert_card_states(loaded.card.metrics["fer2013/test"], served, ["contempt"])
    assert_card_states(loaded.card.metrics["expression_head/fer2013/test"], expression, [])

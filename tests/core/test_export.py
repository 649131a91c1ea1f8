"""Checkpoints leaving the package (model_core.export): re-saved with their origin, or as a calibrated classifier."""

from __future__ import annotations

from pathlib import Path

import torch

from model_core import create_model, load_checkpoint
from model_core.card import Prior
from model_core.checkpoint import write_card
from model_core.export import CalibratedClassifier, export_classifier, resave_checkpoint
from model_core.expressions import FERPLUS_CLASSES

from ..shared_fixtures import MakeCheckpoint


def test_a_resaved_half_checkpoint_names_the_weights_it_came_from(make_checkpoint: MakeCheckpoint,
                                                                  tmp_path: Path) -> None:
    loaded = load_checkpoint(make_checkpoint())
    half = load_checkpoint(resave_checkpoint(loaded, tmp_path / "half", half=True))
    assert half.card.exported_from == loaded.sha256 != half.sha256
    assert half.card.weights.dtype == "float16" and half.classes == loaded.classes
    x = torch.rand(2, 1, 48, 48)
    assert torch.allclose(half.model.classify(x), loaded.model.classify(x), atol=1e-2)


def test_the_exported_classifier_answers_calibrated_probabilities() -> None:
    model = create_model("fersnet_tiny").eval()
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        probs = CalibratedClassifier(model, temperature=0.5)(x)
        assert torch.allclose(probs, (model.classify(x) * 2).softmax(1), atol=1e-6)


def test_an_exported_two_headed_mirror_averaging_classifier_keeps_its_batch_dynamic_and_its_prior(
        make_checkpoint: MakeCheckpoint, tmp_path: Path) -> None:
    """The default's shape: flip averaging, an answer tail, a balanced prior. Exported once, it answers any batch size
    exactly as the service does (LoadedModel.probabilities)."""
    folder = make_checkpoint(answer=FERPLUS_CLASSES, flip_average=True)
    card = load_checkpoint(folder).card
    card.prior = Prior(frequencies=dict(zip(FERPLUS_CLASSES, [0.1, 0.02, 0.05, 0.25, 0.15, 0.1, 0.31, 0.02], strict=True)),
                       default="balanced")
    write_card(folder, card)
    loaded = load_checkpoint(folder)
    program = torch.export.load(str(export_classifier(loaded, tmp_path / "classifier.pt2"))).module()
    for n in (1, 3):
        x = torch.rand(n, 1, 48, 48) * 2 - 1
        with torch.no_grad():
            assert torch.allclose(program(x), loaded.probabilities(loaded.model.classify(x)), atol=1e-5)

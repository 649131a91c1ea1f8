"""Checkpoints leaving the package (model_core.export): re-saved with their origin, or as a calibrated classifier."""

from __future__ import annotations

from pathlib import Path

import torch

from model_core import create_model, load_checkpoint
from model_core.export import CalibratedClassifier, resave_checkpoint

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

"""model_core.prior: answers moved from the training data's class prior to a balanced one, and the frequencies read
off a split's labels; the card's ``prior`` section; LoadedModel.probabilities and the export agreeing on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model_core import load_checkpoint
from model_core.card import Prior
from model_core.checkpoint import write_card
from model_core.data import load_records
from model_core.export import CalibratedClassifier
from model_core.expressions import FER2013_CLASSES, FERPLUS_CLASSES
from model_core.prior import class_frequencies, reweigh, split_frequencies

from ..shared_fixtures import MakeCheckpoint

FREQUENCIES = [0.1, 0.02, 0.05, 0.25, 0.15, 0.1, 0.33]  # FER2013's seven classes, neutral the most frequent


def test_balanced_is_the_calibrated_logits_less_the_log_frequencies_and_natural_changes_nothing() -> None:
    logits = torch.randn(5, 7) * 3
    probabilities = logits.softmax(1)
    assert torch.equal(reweigh(probabilities, FREQUENCIES, "natural"), probabilities)
    balanced = reweigh(probabilities, FREQUENCIES, "balanced")
    expected = (logits - torch.tensor(FREQUENCIES).log()).softmax(1)
    assert torch.allclose(balanced, expected, atol=1e-6) and torch.allclose(balanced.sum(1), torch.ones(5))
    with pytest.raises(ValueError, match="prior must be one of"):
        reweigh(probabilities, FREQUENCIES, "uniform")  # type: ignore[arg-type]


def test_a_face_the_training_prior_calls_neutral_by_a_little_is_the_rarer_class_under_a_balanced_one() -> None:
    probabilities = torch.tensor([[0.0, 0.0, 0.45, 0.0, 0.0, 0.0, 0.55]])  # fear 0.45, neutral 0.55
    assert FER2013_CLASSES[int(reweigh(probabilities, FREQUENCIES, "balanced").argmax())] == "fear"


def test_frequencies_are_the_mean_target_and_a_class_that_never_occurs_is_refused() -> None:
    targets = np.array([[1, 0, 0], [0.5, 0.5, 0], [0, 0.2, 0.8], [1, 0, 0]])
    assert class_frequencies(targets, ["a", "b", "c"]) == pytest.approx({"a": 0.625, "b": 0.175, "c": 0.2})
    with pytest.raises(ValueError, match="no target of class c"):
        class_frequencies(targets[[0, 1, 3]], ["a", "b", "c"])


def test_a_splits_frequencies_come_from_its_votes_or_its_labels(ferplus_root: Path, fer2013_folder: Path) -> None:
    soft = load_records("ferplus", ferplus_root, "train", label_mode="soft")
    votes = np.array([r.votes for r in soft.records])
    expected = votes.mean(0) / votes.mean(0).sum()
    assert list(split_frequencies(soft, FERPLUS_CLASSES).values()) == pytest.approx(list(expected), abs=1e-6)
    hard = split_frequencies(load_records("fer2013", fer2013_folder, "train"), FER2013_CLASSES)
    assert hard == pytest.approx(dict.fromkeys(FER2013_CLASSES, 1 / 7), abs=1e-6)  # six faces of each class


def test_the_cards_prior_names_every_class_with_a_positive_frequency(make_checkpoint: MakeCheckpoint) -> None:
    folder = make_checkpoint()
    card = load_checkpoint(folder).card
    with pytest.raises(ValueError, match="positive numbers"):
        Prior(frequencies={"happy": 0.0, "sad": 1.0})
    with pytest.raises(ValueError, match="default must be one of"):
        Prior(frequencies={"happy": 1.0}, default="uniform")  # type: ignore[arg-type]
    card.prior = Prior(frequencies={"happy": 0.5, "sad": 0.5})
    with pytest.raises(ValueError, match="prior.frequencies has classes"):
        card.__post_init__()
    card.prior = Prior(frequencies=dict(zip(FER2013_CLASSES, FREQUENCIES, strict=True)), default="balanced")
    write_card(folder, card)
    assert load_checkpoint(folder).card.prior == card.prior  # through card.json and back


def test_loaded_probabilities_and_the_export_answer_under_the_cards_prior(make_checkpoint: MakeCheckpoint) -> None:
    folder = make_checkpoint()
    plain = load_checkpoint(folder)
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        logits = plain.model.classify(x)
    natural = plain.probabilities(logits)
    assert plain.prior == "natural" and torch.allclose(natural, logits.softmax(1))
    with pytest.raises(ValueError, match="records no class frequencies"):
        plain.probabilities(logits, "balanced")

    card = plain.card
    card.prior = Prior(frequencies=dict(zip(FER2013_CLASSES, FREQUENCIES, strict=True)), default="balanced")
    write_card(folder, card)
    balanced = load_checkpoint(folder)
    assert balanced.prior == "balanced"
    assert torch.allclose(balanced.probabilities(logits), reweigh(natural, FREQUENCIES, "balanced"))
    assert torch.equal(balanced.probabilities(logits, "natural"), natural)
    with torch.no_grad():
        exported = CalibratedClassifier.of(balanced).eval()(x)
    assert torch.allclose(exported, balanced.probabilities(logits), atol=1e-6)

"""Temperature scaling: the fit recovers a known temperature, the error measure sees miscalibration, and
``fersnet calibrate`` writes a temperature every loader of the card then applies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model_core import load_checkpoint
from model_core.calibration import (
    CalibrationMetrics,
    calibrate_checkpoint,
    expected_calibration_error,
    fit_temperature,
)

from ..shared_fixtures import MakeCheckpoint


def sampled(temperature: float, n: int = 6000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits, and labels drawn from softmax(logits / temperature): calibrated exactly at that temperature."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 7, generator=generator) * 3
    labels = torch.multinomial((logits / temperature).softmax(1), 1, generator=generator).squeeze(1)
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.0])
def test_the_fit_recovers_the_temperature_the_labels_were_drawn_at(true_temperature: float) -> None:
    assert fit_temperature(*sampled(true_temperature)) == pytest.approx(true_temperature, rel=0.1)


def test_the_error_is_small_when_calibrated_and_large_when_not() -> None:
    logits, labels = sampled(1.0)
    assert expected_calibration_error(logits.softmax(1), labels) < 0.03
    assert expected_calibration_error((logits * 3).softmax(1), labels) > 0.1  # overconfident
    assert expected_calibration_error((logits / 3).softmax(1), labels) > 0.1  # underconfident


def test_scaling_keeps_every_prediction_and_lowers_the_nll() -> None:
    logits, labels = sampled(2.0)
    before = CalibrationMetrics.measure(logits, labels)
    after = CalibrationMetrics.measure(logits, labels, fit_temperature(logits, labels))
    assert after.accuracy == before.accuracy
    assert after.nll < before.nll and after.ece < before.ece
    assert after.nll == pytest.approx(float(F.cross_entropy(logits / after.temperature, labels)), abs=1e-3)


def test_the_temperature_is_fitted_on_the_first_split_and_written_on_the_card_alone(
    make_checkpoint: MakeCheckpoint,
) -> None:
    checkpoint = make_checkpoint()
    splits = {"fer2013/val": sampled(2.0), "fer2013/test": sampled(2.0, seed=1)}
    section = calibrate_checkpoint(load_checkpoint(checkpoint), splits, "fer2013:val from data", "fersnet calibrate")
    assert section.temperature == pytest.approx(fit_temperature(*splits["fer2013/val"]), abs=1e-4)
    assert section.fitted_on == "fer2013:val from data" and section.command == "fersnet calibrate"
    assert set(section.measured) == {"fer2013/val", "fer2013/test"}
    reloaded = load_checkpoint(checkpoint)  # the weights' hash still holds: only the card changed
    assert reloaded.card.calibration == section and reloaded.temperature == section.temperature

"""Two models on the same images: per-image scoring, the paired interval, McNemar, and `fersnet compare`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_core import load_checkpoint
from model_core.data import load_records
from model_core.evaluate import correct_per_image, evaluate_records, paired_comparison
from model_core.expressions import FERPLUS_CLASSES
from training.cli import main

from .conftest import MakeCheckpoint


def test_a_model_against_itself_differs_by_nothing() -> None:
    correct = np.random.default_rng(0).random(500) < 0.7
    result = paired_comparison(correct, correct.copy())
    assert result.difference == 0 and result.low == result.high == 0
    assert (result.a_only, result.b_only, result.mcnemar_p) == (0, 0, 1.0)


def test_a_clear_lead_is_beyond_the_noise_and_a_coin_flip_is_not() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(2000) < 0.6
    a = b.copy()
    a[np.flatnonzero(~b)[:120]] = True  # A also gets 120 of B's mistakes right: +6 points
    lead = paired_comparison(a, b)
    assert lead.difference == pytest.approx(0.06) and lead.low > 0.04 and lead.high < 0.08
    assert (lead.a_only, lead.b_only) == (120, 0) and lead.mcnemar_p < 1e-30

    noise = paired_comparison(rng.random(2000) < 0.6, rng.random(2000) < 0.6)
    assert noise.low < noise.difference < noise.high and noise.high - noise.low > 0.03


def test_mcnemar_is_the_exact_binomial_tail() -> None:
    a = np.array([True] * 1 + [False] * 9 + [True] * 5)
    b = np.array([False] * 1 + [True] * 9 + [True] * 5)
    # 10 discordant images, split 1 / 9: p = 2 * (C(10,0) + C(10,1)) / 2**10
    assert paired_comparison(a, b).mcnemar_p == pytest.approx(22 / 1024)


def test_models_must_be_scored_on_the_same_images() -> None:
    with pytest.raises(ValueError, match="same images"):
        paired_comparison(np.ones(10, bool), np.ones(11, bool))


@pytest.mark.parametrize("classes", [None, FERPLUS_CLASSES], ids=["seven-class model", "eight-class model"])
def test_per_image_scoring_agrees_with_evaluate(
    classes: tuple[str, ...] | None, ferplus_root: Path, make_checkpoint: MakeCheckpoint
) -> None:
    """On FER+ (contempt included) a seven-class model's contempt faces are wrong in both views."""
    loaded = load_checkpoint(make_checkpoint(**({"classes": classes} if classes else {})))
    records = load_records("ferplus", ferplus_root, "test")
    correct = correct_per_image(loaded, records)
    metrics = evaluate_records(loaded.model, loaded.classes, loaded.preprocess, records)
    assert len(correct) == metrics.n and correct.mean() == pytest.approx(metrics.accuracy)


def test_compare_command(ferplus_root: Path, make_checkpoint: MakeCheckpoint, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_checkpoint("a", seed=0), make_checkpoint("b", classes=FERPLUS_CLASSES, seed=1)
    data = ["--dataset", "ferplus", "--root", str(ferplus_root), "--split", "test"]
    main(["compare", str(a), "--against", str(b), *data, "--json"])
    result = json.loads(capsys.readouterr().out)
    for key, checkpoint in (("accuracy_a", a), ("accuracy_b", b)):
        main(["evaluate", "--checkpoint", str(checkpoint), *data, "--json"])
        assert result[key] == pytest.approx(json.loads(capsys.readouterr().out)["accuracy"])
    assert result["low"] <= result["difference"] <= result["high"]

    main(["compare", str(a), "--against", str(a), *data])
    text = capsys.readouterr().out
    assert "A - B: +0.00 points" in text and "McNemar p = 1" in text


def test_compare_names_a_missing_checkpoint(ferplus_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "default", "--against", "/no/such/ckpt", "--dataset", "ferplus", "--root", str(ferplus_root),
              "--split", "test"])
    assert exit_info.value.code == 2 and "/no/such/ckpt" in capsys.readouterr().err

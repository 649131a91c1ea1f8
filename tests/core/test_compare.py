"""Two models (or two recipes, several seeds each) on the same images: per-image scoring, the intervals, McNemar, and `fersnet compare`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_core import load_checkpoint
from model_core.comparison import paired_comparison, seeded_comparison
from model_core.data import load_records
from model_core.evaluate import correct_per_image, evaluate_records
from model_core.expressions import FERPLUS_CLASSES

from ..shared_fixtures import MakeCheckpoint


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


def test_seeds_that_agree_differ_by_nothing_and_seeds_that_vary_show_it() -> None:
    """Three copies of one model a side: no seed noise. The same three seeds a side: no difference, but noise."""
    seeds = [np.random.default_rng(s).random(400) < 0.7 for s in range(3)]
    copies = seeded_comparison([seeds[0]] * 3, [seeds[0].copy()] * 3)
    assert copies.difference == 0 and copies.low == copies.high == 0

    same_recipe = seeded_comparison(seeds, [s.copy() for s in seeds])
    assert same_recipe.difference == 0 and same_recipe.low < -0.02 and same_recipe.high > 0.02


def test_seed_noise_widens_the_interval_and_a_steady_lead_clears_it() -> None:
    """A lead that one seed shows and the others reverse is not a lead; one that every seed shows is."""
    rng = np.random.default_rng(2)
    b = [rng.random(3000) < 0.6 for _ in range(3)]

    def moved(correct: np.ndarray, points: int) -> np.ndarray:
        """``correct`` with ``points`` more (or, negative, fewer) images right, from 3,000."""
        out = correct.copy()
        pool = np.flatnonzero(~out if points > 0 else out)
        out[pool[: 30 * abs(points)]] = points > 0
        return out

    steady = seeded_comparison([moved(x, 4) for x in b], b)
    assert steady.difference == pytest.approx(0.04) and steady.low > 0.02

    wobbly_a = [moved(b[0], 8), moved(b[1], -3), moved(b[2], -3)]
    wobbly = seeded_comparison(wobbly_a, b)
    assert wobbly.low < 0 < wobbly.high
    one_pair = paired_comparison(wobbly_a[0], b[0])
    assert wobbly.high - wobbly.low > one_pair.high - one_pair.low
    assert wobbly.accuracies_a == pytest.approx([x.mean() for x in wobbly_a])


def test_every_seed_must_be_scored_on_the_same_images() -> None:
    with pytest.raises(ValueError, match="same images"):
        seeded_comparison([np.ones(10, bool)] * 2, [np.ones(11, bool)] * 2)


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
    assert correct_per_image(loaded, records, restricted=True).mean() == pytest.approx(metrics.accuracy_restricted)

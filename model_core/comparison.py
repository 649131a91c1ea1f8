"""How sure a difference between two models, or two recipes, is: paired bootstrap intervals on the same faces.

Both compare per-face verdicts (:func:`~model_core.evaluate.correct_per_image`), so that the two sides are scored
on exactly the same images and each image's pair of verdicts stays together when resampled. One pair of
checkpoints shows the test images' noise only (:func:`paired_comparison`, with McNemar's exact test beside it);
a recipe's accuracy also moves with its training seed, which :func:`seeded_comparison` resamples too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class PairedComparison:
    """Model A against model B on the same images: the accuracy difference and how sure it is."""

    n: int
    accuracy_a: float
    accuracy_b: float
    low: float  # 95 % paired-bootstrap interval of accuracy_a - accuracy_b
    high: float
    a_only: int  # images only A gets right
    b_only: int
    mcnemar_p: float  # exact two-sided McNemar test on the a_only / b_only split

    @property
    def difference(self) -> float:
        return self.accuracy_a - self.accuracy_b

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "difference": self.difference}


def paired_comparison(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    """Compare two models' per-image correctness (from :func:`~model_core.evaluate.correct_per_image`) on the same images.

    The interval resamples images with replacement, keeping each image's pair
    of verdicts together. It measures the *test set's* sampling noise only:
    another training seed moves a row as well, which only more seeds show.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"the two models must be scored on the same images (got {a.shape} and {b.shape})")
    diff = a.astype(np.float64) - b.astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate([
        diff[rng.integers(0, len(diff), size=(min(1000, resamples - start), len(diff)))].mean(1)
        for start in range(0, resamples, 1000)
    ])
    low, high = np.quantile(means, [0.025, 0.975])
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    return PairedComparison(len(a), float(a.mean()), float(b.mean()), float(low), float(high), a_only, b_only,
                            _mcnemar_exact(a_only, b_only))


@dataclass
class SeededComparison:
    """Two recipes, each trained with several seeds, on the same images: the mean accuracy difference and how sure it is."""

    n: int
    accuracies_a: list[float]  # one per seed (checkpoint) of recipe A
    accuracies_b: list[float]
    low: float  # 95 % interval of mean(accuracies_a) - mean(accuracies_b), seeds and images resampled
    high: float

    @property
    def accuracy_a(self) -> float:
        return float(np.mean(self.accuracies_a))

    @property
    def accuracy_b(self) -> float:
        return float(np.mean(self.accuracies_b))

    @property
    def difference(self) -> float:
        return self.accuracy_a - self.accuracy_b

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b, "difference": self.difference}


def seeded_comparison(
    correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray], resamples: int = 10_000, seed: int = 0
) -> SeededComparison:
    """Compare two recipes from the per-image correctness of several seeds of each, on the same images.

    A single pair of checkpoints shows the test images' noise only
    (:func:`paired_comparison`); a recipe's accuracy also moves with its
    training seed. This two-level bootstrap resamples, in every round, each
    side's seeds with replacement (independently: seed *i* of A and of B share
    nothing that matters) and the images (together, since both sides see the
    same faces), and takes the difference of the mean accuracies. With three
    seeds a side the seed level is coarse (a bootstrap of k units shrinks
    their variance by (k - 1) / k): an interval that clears zero is evidence,
    not proof.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not a.shape[1]:  # an empty side has ndim 1
        raise ValueError(f"every model must be scored on the same images (got {a.shape} and {b.shape})")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, resamples, 500):
        rounds = min(500, resamples - start)
        images = rng.integers(0, n, size=(rounds, n))
        side_means = []
        for side in (a, b):
            seeds = rng.integers(0, len(side), size=(rounds, len(side)))
            per_seed = side[:, images].mean(axis=2).T  # (rounds, seeds): each seed's accuracy on the resampled images
            side_means.append(np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1))
        diffs.append(side_means[0] - side_means[1])
    low, high = np.quantile(np.concatenate(diffs), [0.025, 0.975])
    return SeededComparison(n, [float(x) for x in a.mean(1)], [float(x) for x in b.mean(1)], float(low), float(high))


def _mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference" each discordant image is a fair coin."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)

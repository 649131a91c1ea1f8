"""Randomly damaged uploads of every format: each is a picture or the service's 400/413, never anything that would be a 500."""

from __future__ import annotations

import random
import warnings

from bench.fuzz_images import damage, originals, outcome
from service.images import SUPPORTED_FORMATS


def test_every_format_is_damaged_and_still_answered_with_a_picture_or_a_4xx() -> None:
    files = originals()
    assert len(files) == len(SUPPORTED_FORMATS) + 2  # lossy and lossless WebP, plain and LZW TIFF
    rng = random.Random(11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        escaped = [(label, result) for label, data in files.items() for _ in range(60)
                   if (result := outcome(damage(data, rng))).startswith("UNCAUGHT")]
    assert escaped == []

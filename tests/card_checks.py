"""What every check of a bundled card's figure against a measurement asserts."""

from __future__ import annotations

from typing import Any

import pytest

from model_core.evaluate import Metrics


def assert_card_states(stated: dict[str, Any], measured: Metrics, extra: list[str]) -> None:
    """``measured`` is the card's figure ``stated``; a class the set lacks (CK+48's neutral, FER2013's contempt) is an
    answer that is always wrong, so the card states the restricted figure beside the headline, and names the class."""
    assert measured.accuracy == pytest.approx(stated["accuracy"], abs=0.005)
    assert stated.get("restricted_excludes", []) == measured.extra_classes == extra
    if extra:
        assert measured.accuracy_restricted == pytest.approx(stated["accuracy_restricted"], abs=0.005)
        assert measured.accuracy < measured.accuracy_restricted

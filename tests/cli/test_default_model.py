"""The bundled default model: its card's CK+48 accuracy is what `fersnet evaluate` measures on the real data.

The FER2013 and FER+ rows are reproduced by tests/core/test_default_model.py from one pass of the model over each
split (both heads at once on FER2013): with four looks at each face a pass takes minutes on a 2-core CPU."""

from __future__ import annotations

import json

import pytest

from fersnet_cli.main import main
from model_core import load_checkpoint
from model_core.evaluate import Metrics

from ..card_checks import assert_card_states
from ..core.fakes import SHARED_DATA

CKPLUS = SHARED_DATA / "ckplus48"


@pytest.mark.realdata
def test_card_ckplus_accuracy_is_what_fersnet_evaluate_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The whole command, as a user runs it: CK+48 has no neutral, so a neutral answer counts wrong."""
    if not CKPLUS.is_dir():
        pytest.skip(f"{CKPLUS} is not present")
    card = load_checkpoint(None).card
    main(["evaluate", "--dataset", "ckplus", "--root", str(CKPLUS), "--split", "all", "--json"])
    printed = json.loads(capsys.readouterr().out)
    measured = Metrics(**{k: v for k, v in printed.items() if k in Metrics.__dataclass_fields__})
    assert_card_states(card.metrics["ckplus/all"], measured, ["neutral"])

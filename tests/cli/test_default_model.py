"""The bundled default model: its card's accuracy is what `fersnet evaluate` measures on the real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fersnet_cli.main import main
from model_core import load_checkpoint

from ..core.fakes import SHARED_DATA

FER2013 = SHARED_DATA / "fer2013"
CKPLUS = SHARED_DATA / "ckplus48"


# The FER+ rows are reproduced by tests/core/test_default_model.py from the logits its calibration check computes:
# one pass over each split, since with four looks a pass takes minutes on a 2-core CPU.
CASES = [  # card key, dataset, root, split, head, the model's classes the set never uses
    ("fer2013/test", "fer2013", FER2013, "test", "served", ["contempt"]),
    ("expression_head/fer2013/test", "fer2013", FER2013, "test", "expression", []),
    ("ckplus/all", "ckplus", CKPLUS, "all", "served", ["neutral"]),
]


@pytest.mark.realdata
@pytest.mark.parametrize("key,dataset,root,split,head,extra", CASES, ids=[c[0] for c in CASES])
def test_card_accuracy_is_reproduced(key: str, dataset: str, root: Path, split: str, head: str, extra: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Both heads: the served FER+ head, and the FER2013 expression head on FER2013 (the literature's)."""
    if not root.is_dir():
        pytest.skip(f"{root} is not present")
    card = load_checkpoint(None).card
    if key not in card.metrics:
        pytest.fail(f"the default model's card states no {key} accuracy")
    main(["evaluate", "--dataset", dataset, "--root", str(root), "--split", split, "--head", head, "--json"])
    measured = json.loads(capsys.readouterr().out)
    stated = card.metrics[key]
    assert measured["accuracy"] == pytest.approx(stated["accuracy"], abs=0.005)
    # A class the set lacks (CK+48's neutral, FER2013's contempt) is an answer that is always wrong: the card states
    # the restricted figure beside the headline.
    assert stated.get("restricted_excludes", []) == measured["extra_classes"] == extra
    if measured["extra_classes"]:
        assert measured["accuracy_restricted"] == pytest.approx(stated["accuracy_restricted"], abs=0.005)
        assert measured["accuracy"] < measured["accuracy_restricted"]

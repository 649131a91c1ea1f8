"""The bundled default model: its card's accuracy is what `fersnet evaluate` measures on the real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fersnet_cli.main import main
from model_core import load_checkpoint

from ..core.fakes import SHARED_DATA

FER2013 = SHARED_DATA / "fer2013"
FERPLUS = SHARED_DATA / "ferplus"
CKPLUS = SHARED_DATA / "ckplus48"


@pytest.mark.realdata
@pytest.mark.parametrize("dataset,root,split", [("fer2013", FER2013, "val"), ("fer2013", FER2013, "test"), ("ferplus", FERPLUS, "test"),
                                                ("ckplus", CKPLUS, "all")])
def test_card_accuracy_is_reproduced(dataset: str, root: Path, split: str, capsys: pytest.CaptureFixture[str]) -> None:
    if not root.is_dir():
        pytest.skip(f"{root} is not present")
    card = load_checkpoint(None).card
    key = f"{dataset}/{split}"
    if key not in card.metrics:
        pytest.fail(f"the default model's card states no {key} accuracy")
    main(["evaluate", "--dataset", dataset, "--root", str(root), "--split", split, "--json"])
    measured = json.loads(capsys.readouterr().out)
    stated = card.metrics[key]
    assert measured["accuracy"] == pytest.approx(stated["accuracy"], abs=0.005)
    # CK+48 has no neutral: the card states the restricted figure beside the headline, FER2013 and FER+ need none.
    assert stated.get("restricted_excludes", []) == measured["extra_classes"] == (["neutral"] if dataset == "ckplus" else [])
    if measured["extra_classes"]:
        assert measured["accuracy_restricted"] == pytest.approx(stated["accuracy_restricted"], abs=0.005)
        assert measured["accuracy"] < measured["accuracy_restricted"]

"""`fersnet compare`: what it scores agrees with `fersnet evaluate`, one checkpoint or several seeds a side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fersnet_cli.main import main
from model_core.expressions import FERPLUS_CLASSES

from ..shared_fixtures import MakeCheckpoint


def test_compare_scores_the_headline_or_with_restricted_the_restricted_figure(
    ckplus_root: Path, make_checkpoint: MakeCheckpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    """On CK+ (no neutral) a FER2013 model's neutral answers are wrong in compare as in evaluate's headline."""
    a, b = make_checkpoint("a", seed=0), make_checkpoint("b", seed=1)
    data = ["--dataset", "ckplus", "--root", str(ckplus_root), "--split", "all"]
    evaluated = []
    for checkpoint in (a, b):
        main(["evaluate", "--checkpoint", str(checkpoint), *data, "--json"])
        evaluated.append(json.loads(capsys.readouterr().out))
    for flag, key in (([], "accuracy"), (["--restricted"], "accuracy_restricted")):
        main(["compare", str(a), "--against", str(b), *data, "--json", *flag])
        result = json.loads(capsys.readouterr().out)
        assert result["restricted"] == bool(flag)
        assert (result["accuracy_a"], result["accuracy_b"]) == pytest.approx([m[key] for m in evaluated])
    main(["compare", str(a), "--against", str(b), *data, "--restricted"])
    assert "accuracy (restricted to the set's classes) A" in capsys.readouterr().out


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


def test_compare_command_with_several_seeds_a_side(
    ferplus_root: Path, make_checkpoint: MakeCheckpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    a = [make_checkpoint(f"a{seed}", seed=seed) for seed in (0, 1)]
    b = [make_checkpoint(f"b{seed}", seed=seed) for seed in (2, 3)]
    data = ["--dataset", "ferplus", "--root", str(ferplus_root), "--split", "test"]
    main(["compare", *map(str, a), "--against", *map(str, b), *data, "--json"])
    result = json.loads(capsys.readouterr().out)
    for key, checkpoints in (("accuracies_a", a), ("accuracies_b", b)):
        for accuracy, checkpoint in zip(result[key], checkpoints, strict=True):
            main(["evaluate", "--checkpoint", str(checkpoint), *data, "--json"])
            assert accuracy == pytest.approx(json.loads(capsys.readouterr().out)["accuracy"])
    assert result["difference"] == pytest.approx(sum(result["accuracies_a"]) / 2 - sum(result["accuracies_b"]) / 2)
    assert result["low"] <= result["difference"] <= result["high"]

    main(["compare", *map(str, a), "--against", *map(str, a), *data])
    text = capsys.readouterr().out
    assert "mean A - mean B: +0.00 points" in text and "over 2 checkpoint(s)" in text

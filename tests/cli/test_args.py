"""Options several commands share mean the same in each: the data options (``--folds`` included) and ``--device``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fersnet_cli.main import main

from ..shared_fixtures import MakeCheckpoint


def commands_with_data(checkpoint: Path, out: Path) -> dict[str, list[str]]:
    """Every command that takes --dataset/--root/--split/--folds, with what else it needs to run."""
    return {
        "evaluate": ["evaluate", "--checkpoint", str(checkpoint)],
        "compare": ["compare", str(checkpoint), "--against", str(checkpoint)],
        "balance": ["balance", "--checkpoint", str(checkpoint), "--out", str(out)],
        "teacher-targets": ["teacher-targets", "--checkpoint", str(checkpoint), "--out", str(out / "t.csv")],
        "soup": ["soup", str(checkpoint), str(checkpoint), "--out", str(out)],
        "calibrate": ["calibrate", str(checkpoint)],
    }


@pytest.mark.parametrize("command", ["evaluate", "compare", "balance", "teacher-targets", "soup", "calibrate"])
def test_every_command_honours_folds(command: str, ckplus_root: Path, make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Fold 5 exists among 10 folds (the default) and not among 3: a command that dropped --folds would accept it."""
    argv = commands_with_data(make_checkpoint(), tmp_path / "out")[command]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--dataset", "ckplus", "--root", str(ckplus_root), "--split", "fold5/train", "--folds", "3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fersnet: error: unknown CK+ split 'fold5/train'") and "i in 0..2" in err


def test_a_missing_gpu_is_one_line(make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--checkpoint", str(make_checkpoint()), "--dataset", "folder", "--root", str(tmp_path),
              "--split", "all", "--device", "cuda"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "fersnet: error: --device=cuda but PyTorch sees no CUDA GPU (use 'auto' or 'cpu')\n"

"""`fersnet train` under torchrun: two CPU processes (gloo) train one recipe, as `python -m fersnet_cli`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model_core import load_checkpoint

from ..core.fakes import REPO, tiny_recipe


@pytest.mark.slow
def test_ddp_with_gloo_on_two_cpu_processes(tmp_path: Path, fer2013_folder: Path) -> None:
    recipe = tiny_recipe(tmp_path, fer2013_folder, report=[])
    recipe["optim"]["epochs"] = 1
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "fersnet_cli", "train", "--config", str(config)],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    card = load_checkpoint(tmp_path / "run" / "best").card
    assert card.training["processes"] == 2
    # Each process saw half of the 42 training images per epoch: 2 steps of 8 each, not 5.
    log = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert log["images_per_s"] > 0

"""The GPU scripts end to end on the CPU: a leased GPU is too scarce to find a shell slip on.

Each script trains its recipe (here shrunk to one step of fersnet_tiny on the fake FER2013 folder)
and must leave under $OUT what a lease can bring back: shards that join into the weights the card
names, model.sha256, and run.tar.gz with the cards, logs and figures.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from model_core import load_checkpoint

from ..core.fakes import REPO


@pytest.mark.slow
@pytest.mark.parametrize(("script", "half"), [("gpu_paper.sh", True), ("gpu_small.sh", False)])
def test_the_gpu_script_leaves_loadable_shards_and_the_run_under_out(
    tmp_path: Path, fer2013_folder: Path, script: str, half: bool
) -> None:
    run, out = tmp_path / "run", tmp_path / "out"
    data = f"dataset: fer2013, root: {fer2013_folder}"
    cpu = ["--set", "device=cpu", "--set", "model.variant=fersnet_tiny", "--set", "optim.epochs=1",
           "--set", "max_steps_per_epoch=1", "--set", "optim.batch_size=4", "--set", "num_workers=0",
           "--set", f"train=[{{{data}, split: train}}]", "--set", f"val={{{data}, split: val}}",
           "--set", f"report=[{{{data}, split: test}}]"]
    # The scripts call `fersnet` from the repository root: this checkout's (python -m), whatever console script the
    # environment has installed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fersnet").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fersnet_cli "$@"\n')
    (bin_dir / "fersnet").chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = os.environ | {"RUN": str(run), "OUT": str(out), "PATH": path}
    done = subprocess.run(["bash", str(REPO / "training" / script), *cpu], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    weights = run / ("half" if half else "best")
    folder = tmp_path / "fetched"
    folder.mkdir()
    for shard in sorted(out.glob("model.safetensors.part-*")):
        shutil.copy(shard, folder)
    shutil.copy(weights / "card.json", folder)
    loaded = load_checkpoint(folder)  # joins the shards and checks them against the card's sha256
    digest = hashlib.sha256((weights / "model.safetensors").read_bytes()).hexdigest()
    assert loaded.sha256 == digest and (out / "model.sha256").read_text().split()[0] == digest
    with tarfile.open(out / "run.tar.gz") as packed:
        names = packed.getnames()
    assert any(n.endswith("metrics.jsonl") for n in names) and any(n.endswith("figures/curves.png") for n in names)
    assert any(n.endswith(".train.log") for n in names) and any(n.endswith("best/card.json") for n in names)

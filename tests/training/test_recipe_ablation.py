"""The recipe ablation: each variant changes what it says, every run is paired with the recipe's, a sweep resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model_core.data.packed import load_packed, pack
from model_core.train.teachers import TeacherPlan, train_teacher
from training import recipe_ablation
from training.recipe_ablation import VARIANTS


@pytest.fixture
def packed(fer2013_folder: Path, tmp_path: Path) -> Path:
    return pack(fer2013_folder, tmp_path / "fer2013.npz").path


def test_every_variant_changes_one_thing_of_the_plan() -> None:
    recipe = TeacherPlan(name="r", arch="tiny")
    for variant, (_, changes) in VARIANTS.items():
        plan = recipe.__class__(**{**recipe.__dict__, **changes})
        differing = {k for k in recipe.__dict__ if getattr(plan, k) != getattr(recipe, k)}
        assert differing == set(changes), variant
    assert VARIANTS["no_geometry"][1]["augment"].flip == recipe.augment.flip  # the mirror stays


def test_a_proxy_run_with_mixup_scores_public_test_alone(packed: Path) -> None:
    torch.set_num_threads(1)
    faces = load_packed(packed)
    plan = TeacherPlan(name="p", arch="tiny", budget_s=60, batch_size=16, max_steps=4, mixup=0.2, score_all=False)
    _, result, logits = train_teacher(plan, faces, "cpu", log=lambda line: None)
    assert set(result.accuracy) == {"PublicTest"} and result.steps == 4
    assert logits[faces.rows("val")].abs().sum() > 0 and logits[faces.rows("train")].abs().sum() == 0
    assert result.plan["mixup"] == 0.2 and result.plan["augment"]["erase"] == 0.5  # the plan as written to summary.json


def test_the_sweep_pairs_each_variant_with_the_recipe_and_resumes(packed: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "ablation"
    argv = ["--pack", str(packed), "--out", str(out), "--variants", "recipe", "no_ema", "with_mixup", "--seeds", "0", "1",
            "--steps", "3", "--arch", "tiny", "--batch-size", "16"]
    assert recipe_ablation.main(argv) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"{v}_s{s}.json" for v in ("recipe", "no_ema", "with_mixup") for s in (0, 1))
    run = json.loads((out / "no_ema_s1.json").read_text())
    assert run["seed"] == 1 and len(run["correct"]) == len(load_packed(packed).rows("val"))
    table = capsys.readouterr().out
    assert "| `no_ema` |" in table and "| `with_mixup` |" in table and "| 2 |" in table
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert recipe_ablation.main(argv) == 0  # nothing trains again
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert recipe_ablation.main(["--out", str(out), "--table"]) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == table.splitlines()[-3:]

"""Every shipped recipe validates, names a registered variant, and never selects on a test split."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model_core import list_variants, load_checkpoint
from model_core.train import TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "training" / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))


def _all_but_sharing(config: TrainConfig) -> dict[str, object]:
    """A recipe's every setting except its name and sharing mode: what two rows of an ablation must share."""
    return config.model_dump(exclude={"name": True, "model": {"sharing"}})


def test_the_recipes_the_issues_ask_for_are_shipped() -> None:
    names = {p.stem for p in RECIPES}
    assert {"fer2013_small", "fer2013_small_ft", "ferplus_small", "ckplus_fold", "fer2013_balanced", "fer2013_paper_gpu"} <= names
    assert {"ferplus_small_ft", "ferplus_balanced"} <= names
    assert {f"fer2013_ablation_{mode}" for mode in ("none", "hard", "selective")} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_validates(path: Path) -> None:
    config = load_config(path)
    assert config.name == path.stem or path.stem == "ckplus_fold"
    assert config.model.variant in list_variants()
    if config.val is not None:
        assert "test" not in config.val.split, "models are selected on validation splits only"
    usage = re.findall(r"--config (\S+)", path.read_text())
    assert all(ROOT.joinpath(u).resolve() == path.resolve() for u in usage if u.endswith(".yaml")), "the usage line names this file"


def test_the_ablation_rows_differ_only_in_sharing() -> None:
    rows = {mode: load_config(CONFIGS / f"fer2013_ablation_{mode}.yaml") for mode in ("none", "hard", "selective")}
    assert _all_but_sharing(rows["none"]) == _all_but_sharing(rows["hard"]) == _all_but_sharing(rows["selective"])
    assert [rows[m].model.sharing for m in rows] == ["none", "hard", "selective"]


def test_the_ferplus_rows_differ_only_in_sharing() -> None:
    """The FER+ table compares ``ferplus_ablation_{none,hard}`` with ``ferplus_small`` (selective): same data, budget, seed."""
    rows = {mode: load_config(CONFIGS / f"{name}.yaml") for mode, name in
            (("none", "ferplus_ablation_none"), ("hard", "ferplus_ablation_hard"), ("selective", "ferplus_small"))}
    assert [rows[m].model.sharing for m in rows] == ["none", "hard", "selective"]
    assert _all_but_sharing(rows["none"]) == _all_but_sharing(rows["hard"]) == _all_but_sharing(rows["selective"])
    assert rows["none"].train[0].label_mode == "soft"


@pytest.mark.parametrize("dataset", ["fer2013", "ferplus"])
def test_each_balanced_run_differs_from_its_control_only_by_synthetic_faces(dataset: str) -> None:
    """``<dataset>_small_ft`` (for FER2013 the bundled model's stage 2) is the control of ``<dataset>_balanced``:
    both start from ``<dataset>_small``'s best epoch and differ only by the synthetic faces added to training."""
    control, balanced = (load_config(CONFIGS / f"{dataset}_{n}.yaml") for n in ("small_ft", "balanced"))
    assert control.model.init_from == load_config(CONFIGS / f"{dataset}_small.yaml").run_dir.joinpath("best").as_posix()
    assert control.model_dump(exclude={"name", "train"}) == balanced.model_dump(exclude={"name", "train"})
    assert balanced.train[: len(control.train)] == control.train and len(balanced.train) == len(control.train) + 1


@pytest.mark.parametrize(("control_name", "taught_name"), [
    ("fer2013_small_long", "fer2013_small_distill"),
    ("fer2013_small_long_ft", "fer2013_small_long_ft_distill"),
])
def test_each_distilled_run_differs_from_its_control_only_by_the_teacher(control_name: str, taught_name: str) -> None:
    """A distilled recipe is its control (the same data, budget and seed) plus a teacher's probabilities
    mixed into the training targets, from the file ``fer2013_small_distill.yaml`` says how to write."""
    control, taught = (load_config(CONFIGS / f"{n}.yaml") for n in (control_name, taught_name))
    teacher_fields = {"teacher", "teacher_weight"}
    assert control.model_dump(exclude={"name", "train"}) == taught.model_dump(exclude={"name", "train"})
    assert [t.model_dump(exclude=teacher_fields) for t in taught.train] == [c.model_dump(exclude=teacher_fields) for c in control.train]
    assert control.train[0].teacher is None and taught.train[0].teacher and 0 < taught.train[0].teacher_weight < 1
    assert taught.train[0].teacher in (CONFIGS / "fer2013_small_distill.yaml").read_text().split("--out ")[1]


@pytest.mark.parametrize(("script", "recipe", "variant"), [
    ("gpu_paper.sh", "fer2013_paper_gpu", "fersnet_paper"),
    ("gpu_small.sh", "fer2013_small_gpu", "fersnet_small"),
])
def test_each_gpu_script_runs_its_gpu_recipe(script: str, recipe: str, variant: str) -> None:
    assert f"training/configs/{recipe}.yaml" in (ROOT / "training" / script).read_text()
    config = load_config(CONFIGS / f"{recipe}.yaml")
    assert config.model.variant == variant and config.device == "cuda" and config.time_budget_s


def test_the_lease_script_runs_both_gpu_scripts_on_the_data_it_unpacks() -> None:
    """gpu_lease.sh unpacks FER2013 where the recipes look for it (../shared/data), then runs both scripts."""
    script = (ROOT / "training" / "gpu_lease.sh").read_text()
    assert "bash training/gpu_small.sh" in script and "bash training/gpu_paper.sh --set model.sharing=none" in script
    assert "shared/data" in script
    for recipe in ("fer2013_small_gpu", "fer2013_paper_gpu"):
        assert load_config(CONFIGS / f"{recipe}.yaml").train[0].root == "../shared/data/fer2013"


def test_the_default_models_card_names_the_shipped_recipe_that_trained_it() -> None:
    """The bundled card's command is a recipe in this repository, and the recipe still says what the card recorded."""
    training = load_checkpoint(None).card.training
    if "soup" in training:
        _check_soup_ingredients(training["soup"])
        training = training["base"]  # the model the ingredients were fine-tuned from
    config = re.search(r"--config (\S+\.yaml)", training["command"])
    assert config, training["command"]
    shipped = load_config(ROOT / config.group(1))
    recorded = TrainConfig.model_validate(training["recipe"])
    where = {"progress", "out_dir"}  # where a run writes and how it shows progress do not change what it learns
    assert shipped.model_dump(exclude=where) == recorded.model_dump(exclude=where)


def _check_soup_ingredients(soup: dict) -> None:
    """Every ingredient in a bundled soup was trained by the shipped ingredient recipe, at a seed, teacher weight
    and learning rate that ``training/soup_default.sh`` trains, so that the script remakes the soup."""
    script = (ROOT / "training" / "soup_default.sh").read_text()
    shipped = load_config(CONFIGS / "fer2013_small_soup_ingredient.yaml")
    # What a run's own settings may change without changing what it learns, and what the script sets per ingredient.
    free = {"name", "out_dir", "seed", "progress", "figures", "threads", "num_workers"}
    in_soup = [i for i in soup["ingredients"] if i["in_soup"]]
    assert len(in_soup) >= 2
    for ingredient in in_soup:
        recorded = TrainConfig.model_validate(ingredient["recipe"])
        assert recorded.model_dump(exclude=free | {"train", "optim"}) == shipped.model_dump(exclude=free | {"train", "optim"})
        assert recorded.optim.model_dump(exclude={"lr"}) == shipped.optim.model_dump(exclude={"lr"})
        assert [t.model_dump(exclude={"teacher_weight"}) for t in recorded.train] == \
            [t.model_dump(exclude={"teacher_weight"}) for t in shipped.train]
        line = re.search(rf"ingredient {recorded.seed} (\S+) (\S+) {Path(ingredient['checkpoint']).parent.name} ", script)
        assert line, f"soup_default.sh does not train {ingredient['checkpoint']}"
        assert float(line.group(1)) == recorded.train[0].teacher_weight and float(line.group(2)) == recorded.optim.lr

"""The trainer: it learns, it resumes exactly, it selects on validation only (under torchrun: tests/cli/test_train.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from model_core import create_model, load_checkpoint
from model_core.fersnet import FERSNet
from model_core.train import TrainConfig, Trainer, load_config
from model_core.train.config import ConfigError, LossSpec
from model_core.train.losses import MultiTaskObjective, StepOutput, blur, frozen_call, jitter, total_variation
from model_core.train.teacher_nets import build_teacher

from ..shared_fixtures import MakeCheckpoint
from .fakes import REPO, face, tiny_recipe


@pytest.mark.parametrize("sharing", ["none", "hard", "selective"])
def test_a_few_steps_lower_every_loss(sharing: str) -> None:
    torch.manual_seed(0)
    model = create_model("fersnet_tiny", sharing=sharing)
    disc = None
    if model.has_synthesis:
        from model_core.discriminator import discriminator_for

        disc = discriminator_for(48, 1, width=8)
    objective = MultiTaskObjective(model, disc, LossSpec(synthesis_fraction=0.5, label_smoothing=0.0))
    labels = torch.arange(7).repeat(2)
    images = torch.stack([torch.from_numpy(face(int(c), i)).float()[None] / 127.5 - 1 for i, c in enumerate(labels)])
    targets = torch.eye(7)[labels]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        out = objective(images, labels, targets)
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        first = first or {k: v.item() for k, v in out.losses.items()}
    last = {k: v.item() for k, v in out.losses.items()}
    assert last["fer"] < 0.5 * first["fer"]
    if model.has_synthesis:
        assert last["cycle"] < first["cycle"] and last["identity"] < first["identity"]


def test_the_fake_is_judged_without_training_the_judge() -> None:
    model = create_model("fersnet_tiny")
    fake = torch.randn(2, 1, 48, 48, requires_grad=True)
    running_mean = model.stem[0][1].running_mean.clone()
    model.train()
    frozen_call(model, fake, torch.eye(7)[:2]).logits.sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model.stem[0][1].running_mean, running_mean)


def test_critics_judge_each_fake_beside_the_fer_branch_and_learn_nothing() -> None:
    """The classification loss is the mean of every judge's cross-entropy; the generator learns from all of them."""
    torch.manual_seed(0)
    model = create_model("fersnet_tiny", synthesis_output="masked")
    critic = build_teacher("tiny").eval().requires_grad_(False)
    labels = torch.arange(7)
    images = torch.stack([torch.from_numpy(face(int(c), i)).float()[None] / 127.5 - 1 for i, c in enumerate(labels)])
    weights = LossSpec(synthesis_fraction=1.0)
    torch.manual_seed(1)  # the same wanted expressions and dropout in both calls
    alone = MultiTaskObjective(model.eval(), None, weights)(images, labels, torch.eye(7)[labels])
    torch.manual_seed(1)
    judged = MultiTaskObjective(model.eval(), None, weights, (critic,))(images, labels, torch.eye(7)[labels])
    assert judged.fake is not None and alone.fake is not None and torch.equal(judged.fake, alone.fake)
    critic_ce = judged.losses["cls"] * 2 - alone.losses["cls"]  # the mean of two verdicts: the critic's is the rest
    assert critic_ce.item() > 0 and not torch.isclose(judged.losses["cls"], alone.losses["cls"])
    judged.total.backward()
    assert all(p.grad is None for p in critic.parameters())
    assert model.decoder["to_image"].weight.grad is not None


def test_jitter_moves_each_face_differently_and_passes_gradients() -> None:
    torch.manual_seed(0)
    faces = torch.stack([torch.from_numpy(face(c, c)).float()[None] / 127.5 - 1 for c in range(7)]).requires_grad_(True)
    moved = jitter(faces)
    assert moved.shape == faces.shape and moved.abs().max() <= 1.0 + 1e-6
    change = (moved - faces).abs().mean(dim=(1, 2, 3))
    assert (change > 0.01).all() and change.unique().numel() == 7  # every face moved, each its own way
    moved.sum().backward()
    assert faces.grad is not None and faces.grad.abs().sum() > 0


def _one_step_each(*specs: LossSpec) -> tuple[FERSNet, list[StepOutput]]:
    """One step of the objective on the same seven fake faces under each of ``specs``, from the same random draws."""
    torch.manual_seed(0)
    model = create_model("fersnet_tiny", synthesis_output="masked").eval()
    labels = torch.arange(7)
    images = torch.stack([torch.from_numpy(face(int(c), i)).float()[None] / 127.5 - 1 for i, c in enumerate(labels)])
    steps = []
    for spec in specs:
        torch.manual_seed(1)
        steps.append(MultiTaskObjective(model, None, spec)(images, labels, torch.eye(7)[labels]))
    return model, steps


def test_judge_jitter_shows_every_judge_a_moved_copy_of_the_fake() -> None:
    """The cycle still starts from the fake itself; only the verdicts differ, and the generator learns from them."""
    model, (plain, jittered) = _one_step_each(LossSpec(synthesis_fraction=1.0), LossSpec(synthesis_fraction=1.0, judge_jitter=True))
    assert plain.fake is not None and jittered.fake is not None and torch.equal(plain.fake, jittered.fake)
    assert torch.equal(plain.losses["cycle"], jittered.losses["cycle"])
    assert not torch.isclose(plain.losses["cls"], jittered.losses["cls"])
    jittered.total.backward()
    assert model.decoder["to_image"].weight.grad is not None


def test_a_blurred_judge_sees_no_streaks_but_the_shapes() -> None:
    """Stripes a pixel wide average out under the judge's blur; a broad shape keeps most of its contrast."""
    torch.manual_seed(0)
    stripes = (torch.arange(48) % 2).float().expand(4, 1, 48, 48) * 2 - 1
    shape = torch.zeros(4, 1, 48, 48)
    shape[..., 16:32, 12:36] = 1.0
    assert torch.equal(blur(stripes, 0.0), stripes)
    blurred_stripes, blurred_shape = blur(stripes, 2.0), blur(shape, 2.0)
    assert blurred_stripes.shape == stripes.shape
    # Each image draws its own width, so every image loses stripes, each by its own amount.
    lost = 1 - total_variation(blurred_stripes[:, :, :, 4:-4]) / total_variation(stripes[:, :, :, 4:-4])
    assert lost > 0.3
    assert blurred_shape[..., 24, 24].min() > 0.9 and abs(float(blurred_shape.sum() - shape.sum())) < 1.0
    faces = stripes.clone().requires_grad_(True)
    blur(faces, 1.0).sum().backward()
    assert faces.grad is not None and faces.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs judge_jitter"):
        LossSpec(judge_blur=1.0)


def test_change_smooth_prices_the_roughness_of_the_change_alone() -> None:
    _, (plain, smooth) = _one_step_each(LossSpec(synthesis_fraction=1.0), LossSpec(synthesis_fraction=1.0, change_smooth=3.0))
    assert "change_tv" not in plain.losses and smooth.fake is not None and smooth.real is not None
    assert torch.isclose(smooth.losses["change_tv"], total_variation(smooth.fake - smooth.real))
    assert torch.isclose(smooth.total - plain.total, 3.0 * smooth.losses["change_tv"])


def test_init_fresh_starts_a_new_generator_on_a_trained_recogniser(tmp_path: Path, fer2013_folder: Path,
                                                                    make_checkpoint: MakeCheckpoint) -> None:
    start = make_checkpoint("start", synthesis_output="masked")
    model = {"variant": "fersnet_tiny", "sharing": "selective", "overrides": {"synthesis_output": "masked"},
             "init_from": str(start), "init_fresh": ["embedding", "decoder"]}
    trainer = Trainer(TrainConfig.model_validate(tiny_recipe(tmp_path, fer2013_folder, model=model)))
    assert trainer.init_report is not None
    kept_fresh = trainer.init_report["kept_fresh"]
    assert kept_fresh and all(name.split(".")[0] in ("embedding", "decoder") for name in kept_fresh)
    assert torch.equal(trainer.model.stem[0][0].weight, load_checkpoint(start).model.stem[0][0].weight)
    with pytest.raises(ConfigError, match="model.init_fresh: no submodule decodr"):
        Trainer(TrainConfig.model_validate(tiny_recipe(tmp_path, fer2013_folder, model=model | {"init_fresh": ["decodr"]})))
    with pytest.raises(ValueError, match="without init_from every one is"):
        TrainConfig.model_validate(tiny_recipe(tmp_path, fer2013_folder, model=model | {"init_from": None}))


def test_a_critic_must_read_and_answer_as_the_model_does(tmp_path: Path) -> None:
    from model_core.data import DataError
    from model_core.expressions import FER2013_CLASSES
    from model_core.train.teacher_nets import load_critic, save_teacher

    folder = save_teacher(tmp_path / "resnet", build_teacher("resnet18"), "resnet18", {"name": "r"})
    critic = load_critic(folder, FER2013_CLASSES, 48)
    assert not critic.training and not any(p.requires_grad for p in critic.parameters())
    with pytest.raises(DataError, match="must read 96-pixel faces"):
        load_critic(folder, FER2013_CLASSES, 96)
    with pytest.raises(DataError, match="answer in"):
        load_critic(save_teacher(tmp_path / "tiny", build_teacher("tiny"), "tiny", {"name": "t"}), FER2013_CLASSES[::-1], 48)
    with pytest.raises(DataError, match="not a checkpoint or teacher folder"):
        load_critic(tmp_path, FER2013_CLASSES, 48)


def _fit(recipe: dict) -> tuple[Trainer, Path]:
    trainer = Trainer(TrainConfig.model_validate(recipe))
    return trainer, trainer.fit()


def test_fit_writes_checkpoint_log_and_figures(tmp_path: Path, fer2013_folder: Path) -> None:
    trainer, best = _fit(tiny_recipe(tmp_path, fer2013_folder))
    run = tmp_path / "run"
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all("val" in r for r in log)
    card = load_checkpoint(best).card
    assert set(card.metrics) == {"fer2013/val", "fer2013/test"}
    assert card.training["selected_on"].startswith("fer2013:val")
    best_epoch = max(log, key=lambda r: r["val"]["accuracy"])["epoch"]
    assert card.training["epoch"] == best_epoch  # selected on validation, not on test
    assert card.metrics["fer2013/val"]["accuracy"] == pytest.approx(log[best_epoch - 1]["val"]["accuracy"], abs=1e-4)
    calibration = card.calibration  # fitted on validation, measured on both
    assert calibration is not None and (calibration.fitted_on or "").startswith("fer2013:val")
    assert set(calibration.measured) == {"fer2013/val", "fer2013/test"}
    val = calibration.measured["fer2013/val"]
    assert val["after"]["nll"] <= val["before"]["nll"] + 1e-4
    for figure in ("curves.png", "confusion_fer2013_val.png", "confusion_fer2013_test.png", "synthesis_grid.png"):
        assert (run / "figures" / figure).stat().st_size > 1000


@pytest.mark.parametrize("progress", [False, True])
def test_the_log_holds_each_loss_as_its_mean_over_the_steps(tmp_path: Path, fer2013_folder: Path, progress: bool) -> None:
    """A loss is logged as its mean a step, with the progress bar on or off (off, it once logged the epoch's sum)."""
    recipe = tiny_recipe(tmp_path, fer2013_folder, report=[], progress=progress)
    recipe["optim"]["epochs"] = 1
    trainer = Trainer(TrainConfig.model_validate(recipe))
    seen: list[float] = []
    objective = trainer.objective

    def recording(*args: object) -> object:
        out = objective(*args)
        seen.append(float(out.losses["fer"].detach()))
        return out

    trainer.objective = recording  # type: ignore[assignment]
    trainer.fit()
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["train"]["fer"]
    assert len(seen) > 1
    assert logged == pytest.approx(sum(seen) / len(seen), rel=1e-6)


def test_the_validation_split_is_decoded_once_not_every_epoch(
    tmp_path: Path, fer2013_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU an epoch of the small network takes seconds; decoding the validation JPEGs each time cost one."""
    import model_core.train.trainer as trainer_module

    decoded: list[object] = []
    original = trainer_module.evaluation_set

    def counting(*args: object, **kwargs: object) -> object:
        decoded.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluation_set", counting)
    recipe = tiny_recipe(tmp_path, fer2013_folder, report=[], figures=False)
    recipe["optim"]["epochs"] = 3
    _fit(recipe)
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all("val" in r for r in log)
    assert len(decoded) == 1


def test_resume_continues_exactly_where_it_stopped(tmp_path: Path, fer2013_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_core.checkpoint import load_state

    straight = TrainConfig.model_validate(tiny_recipe(tmp_path / "a", fer2013_folder, report=[]))
    Trainer(straight).fit()

    interrupted = TrainConfig.model_validate(tiny_recipe(tmp_path / "b", fer2013_folder, report=[]))
    original = Trainer.train_epoch

    def crash_in_second_epoch(self: Trainer, epoch: int) -> dict:
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        Trainer(interrupted).fit()
    monkeypatch.undo()

    resumed = Trainer(interrupted)
    assert resumed.resume() and resumed.start_epoch == 1
    resumed.fit()
    a, b = load_state(tmp_path / "a" / "run" / "last"), load_state(tmp_path / "b" / "run" / "last")
    assert a["epoch"] == b["epoch"] == 1
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert json.loads(a["history"])[1]["train"] == json.loads(b["history"])[1]["train"]


@pytest.mark.parametrize(("budget_s", "epochs_run"), [(1e-3, 1), (1e6, 3)])
def test_a_time_budget_cuts_the_run_to_the_epochs_that_fit(tmp_path: Path, fer2013_folder: Path, budget_s: float,
                                                           epochs_run: int) -> None:
    recipe = tiny_recipe(tmp_path, fer2013_folder, report=[], figures=False, time_budget_s=budget_s)
    recipe["optim"]["epochs"] = 3
    trainer, best = _fit(recipe)
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == trainer.epochs == epochs_run
    assert load_checkpoint(best).card.training["epochs"] == epochs_run
    end_of_run = trainer.scheduler.lr_lambdas[0](epochs_run * trainer.steps_per_epoch)
    assert end_of_run == pytest.approx(0.0, abs=1e-9)  # the cosine schedule is spread over the epochs that run


def test_the_budget_is_judged_on_the_first_epoch_then_on_the_steady_second(
    tmp_path: Path, fer2013_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tiny_recipe(tmp_path, fer2013_folder, report=[], time_budget_s=400)
    recipe["optim"]["epochs"] = 30
    trainer = Trainer(TrainConfig.model_validate(recipe))
    trainer.started = trainer._budget_mark = 1000.0
    clock = iter([1040.0, 1060.0])  # a slow first epoch (start-up), then 20 s an epoch
    monkeypatch.setattr("model_core.train.trainer.time.time", lambda: next(clock))
    trainer._fit_to_budget(400, epoch=0)
    assert trainer.epochs == 10  # 400 s at the first epoch's 40 s
    trainer._fit_to_budget(400, epoch=1)
    assert trainer.epochs == 2 + 340 // 20  # the 340 s left at the second epoch's 20 s


def test_recipe_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "train": [], "optim": {"epochs": 0}}))
    with pytest.raises(ConfigError, match=r"r\.yaml: .*train.*optim\.epochs"):
        load_config(path)
    path.write_text(yaml.safe_dump({"name": "x", "train": [{"dataset": "fer2013", "root": "r", "split": "train"}]}))
    assert load_config(path, ["optim.epochs=3", "model.sharing=hard"]).optim.epochs == 3
    with pytest.raises(ConfigError, match="sharing"):
        load_config(path, ["model.sharing=soft"])
    assert load_config(path, ["train.0.teacher_weight=0.9"]).train[0].teacher_weight == 0.9  # a number indexes a list
    with pytest.raises(ConfigError, match=r"--set train\.1\.split: 1 is not an index of a list of 1"):
        load_config(path, ["train.1.split=val"])
    with pytest.raises(ConfigError, match=r"--set name\.x: name is not a section"):
        load_config(path, ["name.x=1"])
    # Checked when the recipe is read, not when the model is built: the variant, the network's settings, the values.
    with pytest.raises(ConfigError, match=r"model\.variant: unknown variant 'fersnet_huge'; registered: fersnet_paper"):
        load_config(path, ["model.variant=fersnet_huge"])
    with pytest.raises(ConfigError, match=r"model\.overrides: not a network setting: foo; the settings: answer_classes"):
        load_config(path, ["model.overrides.foo=1"])
    assert load_config(path, ["model.overrides.head_width=64"]).model.overrides == {"head_width": 64}
    with pytest.raises(ConfigError, match=r"--set 'optim\.epochs=\[': the value is not valid YAML"):
        load_config(path, ["optim.epochs=["])
    path.write_text("name: x\ntrain: [1,\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: not valid YAML \(.*r\.yaml\", line 3") as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_every_shipped_recipe_validates() -> None:
    recipes = sorted((REPO / "training" / "configs").glob("*.yaml"))
    assert recipes
    for recipe in recipes:
        load_config(recipe)


def test_a_frozen_recogniser_answers_exactly_as_before_while_the_generator_learns() -> None:
    from model_core.discriminator import discriminator_for
    from model_core.train.trainer import freeze

    torch.manual_seed(0)
    model = create_model("fersnet_tiny", synthesis_output="masked")
    frozen = freeze(model, ["stem", "fer_stages", "fes_stages", "gates", "head"])
    objective = MultiTaskObjective(model, discriminator_for(48, 1, width=8, spectral_norm=True), LossSpec(synthesis_fraction=1.0))
    labels = torch.arange(7).repeat(2)
    images = torch.stack([torch.from_numpy(face(int(c), i)).float()[None] / 127.5 - 1 for i, c in enumerate(labels)])
    model.eval()
    logits_before = model.classify(images).detach()
    decoder_before = model.decoder["to_image"].weight.detach().clone()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(3):
        model.train()
        for module in frozen:
            module.eval()
        out = objective(images, labels, torch.eye(7)[labels])
        assert {"mask", "mask_tv"} <= set(out.losses)
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
    model.eval()
    assert torch.equal(model.classify(images), logits_before)
    assert not torch.equal(model.decoder["to_image"].weight, decoder_before)
    with pytest.raises(ValueError, match="no submodule"):
        freeze(model, ["encoder"])


def test_a_recipe_cannot_ask_the_trainer_for_an_answer_tail(tmp_path: Path, fer2013_folder: Path) -> None:
    """The trainer fits the expression head; a tail grown in a recipe would be saved unfitted and served."""
    recipe = tiny_recipe(tmp_path, fer2013_folder)
    recipe["model"]["overrides"] = {**recipe["model"].get("overrides", {}), "answer_classes": 8}
    with pytest.raises(ConfigError, match="training.answer_tail"):
        Trainer(TrainConfig.model_validate(recipe))

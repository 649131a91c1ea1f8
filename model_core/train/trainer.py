"""The multi-task trainer: FER, FES and the discriminator, trained jointly.

One :class:`Trainer` runs a recipe (:class:`TrainConfig`) in one process, or in
several under ``torchrun`` (DDP; NCCL on CUDA, gloo on the CPU). Each step:

1. the generator side (:class:`MultiTaskObjective`): recognition loss on the
   whole batch, synthesis losses on ``synthesis_fraction`` of it; one backward,
   one optimiser step for the whole FERSNet;
2. the discriminator: LSGAN on the real faces and the fakes of step 1.

After every epoch it measures the validation split, logs one JSON line to
``metrics.jsonl``, saves the full training state to ``last/`` (for
``--resume``) and, when the validation metric improves, the servable model to
``best/``. Only the validation split is ever used to select. At the end it
measures the ``report`` splits (test sets) once, on the selected model, fits
the temperature that calibrates its probabilities on the validation split
(:mod:`model_core.calibration`), and draws the figures beside the checkpoint:
training curves, the confusion matrix and a synthesis grid.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler
from tqdm import tqdm

from ..calibration import calibrate, dataset_logits
from ..card import CardDraft
from ..checkpoint import build_card, load_checkpoint, load_state, save_checkpoint, save_state
from ..data import FaceDataset, Records, train_augmentation
from ..discriminator import discriminator_for
from ..evaluate import Metrics, evaluate_dataset, evaluation_set
from ..fersnet import FERSNet, create_model
from ..figures import plot_confusion, plot_curves, synthesis_grid
from ..hardware import autocast_for, resolve_device
from ..preprocess import Preprocess
from ..transfer import init_from_checkpoint
from .config import ConfigError, DataSpec, TrainConfig
from .losses import MultiTaskObjective, StepOutput, discriminator_loss
from .teacher import teacher_targets_for
from .teacher_nets import load_critics


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_kind: str) -> DistEnv:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(device: torch.device, env: DistEnv) -> torch.device:
    """``device`` (resolved by :func:`~model_core.hardware.resolve_device`); on CUDA, this process's own GPU under torchrun."""
    if device.type == "cuda":
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads"


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple), "the global RandomState is an MT19937, whose legacy state is a tuple"
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))




def freeze(model: nn.Module, names: list[str]) -> list[nn.Module]:
    """Stop the named submodules from learning; returns them so that each epoch can put them in eval mode."""
    modules = dict(model.named_children())
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"model.frozen: no submodule {', '.join(unknown)}; the model has {', '.join(modules)}")
    for name in names:
        modules[name].requires_grad_(False)
    return [modules[name] for name in names]


def training_step(
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    amp: Any,
    images: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    *,
    clip: float | None = None,
    discriminator: nn.Module | None = None,
    d_optimizer: torch.optim.Optimizer | None = None,
) -> StepOutput:
    """One step of every loss: the generator side (one backward, one optimiser step, gradients clipped to
    ``clip``), then the discriminator on the real faces and the fakes of that step. The trainer and
    ``bench.train_speed`` both run exactly this."""
    with amp:
        out = objective(images, labels, targets)
    optimizer.zero_grad(set_to_none=True)
    out.total.backward()
    if clip:
        nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip)
    optimizer.step()
    if discriminator is not None and d_optimizer is not None and out.fake is not None:
        with amp:
            d_loss = discriminator_loss(discriminator, out.real, out.fake)
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        out.losses["disc"] = d_loss
    return out


class Trainer:
    """Runs one recipe end to end. ``fit()`` returns the folder of the selected checkpoint."""

    def __init__(self, config: TrainConfig, command: str | None = None) -> None:
        self.config = config
        self.command = command or " ".join(sys.argv)
        if config.threads:
            torch.set_num_threads(config.threads)
        device = resolve_device(config.device, setting="device")  # the recipe's field; before joining a process group
        self.env = init_distributed(device.type)
        self.device = pick_device(device, self.env)
        self.run_dir = config.run_dir
        seed_everything(config.seed + self.env.rank)

        train_records = [s.load() for s in config.train]  # read once
        self.classes = tuple(config.model.classes) if config.model.classes else train_records[0].classes
        self.model, self.init_report = self._build_model()
        cfg = self.model.config
        self.preprocess = Preprocess(img_size=cfg.img_size, in_chans=cfg.in_chans)
        self.train_set = self._build_train_set(train_records)
        d = config.discriminator
        self.discriminator = (
            discriminator_for(cfg.img_size, cfg.in_chans, width=d.width, spectral_norm=d.spectral_norm).to(self.device)
            if self.model.has_synthesis else None
        )

        use_cuda = self.device.type == "cuda"
        # Every training batch has the same shape, so cuDNN's one-off search for the fastest kernels pays.
        torch.backends.cudnn.benchmark = use_cuda
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(self.device).to(memory_format=self.memory_format)
        self.amp = autocast_for(self.device, cpu=config.cpu_bf16) if config.amp else nullcontext()

        self.objective: nn.Module = MultiTaskObjective(self.model, self.discriminator, config.loss,
                                                       load_critics(config.loss.critics, self.classes, cfg.img_size, self.device))
        self.disc_step: nn.Module | None = self.discriminator
        if self.env.distributed:
            ids = [self.device.index] if use_cuda else None
            # Recognition-only fine-tuning leaves the decoder idle; DDP must be told to expect that.
            idle = self.model.has_synthesis and not config.loss.trains_synthesis
            self.objective = DistributedDataParallel(self.objective, device_ids=ids, find_unused_parameters=idle)
            if self.discriminator is not None:
                self.disc_step = DistributedDataParallel(self.discriminator, device_ids=ids)

        o = config.optim
        self.frozen = freeze(self.model, config.model.frozen)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=o.lr, weight_decay=o.weight_decay)
        self.d_optimizer = (
            torch.optim.Adam(self.discriminator.parameters(), lr=o.lr_d, betas=o.betas_d) if self.discriminator else None
        )
        self.steps_per_epoch = self._steps_per_epoch()
        self.epochs = o.epochs
        """Epochs this run trains: the recipe's, unless a time budget cuts them (see ``_fit_to_budget``)."""
        warmup = max(1, int(o.warmup_epochs * self.steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / self._total_steps()))),
        )
        self.start_epoch = 0
        self.best_score = -math.inf
        self.history: list[dict[str, Any]] = []
        self.started = time.time()
        self._budget_mark = self.started  # end of the last epoch that _fit_to_budget timed
        self.elapsed_before = 0.0
        self._val_set: FaceDataset | None = None  # decoded by the first validate()

    # ------------------------------------------------------------------ setup

    def _build_model(self) -> tuple[FERSNet, dict[str, Any] | None]:
        """The network of the recipe, and what ``init_from`` copied into it (None when it starts fresh)."""
        spec = self.config.model
        model = create_model(spec.variant, sharing=spec.sharing, num_classes=len(self.classes), **spec.overrides)
        if model.has_answer_tail:  # the trainer fits the expression head; a tail it cannot fit would be served stale
            raise ConfigError("model.overrides.answer_classes: the trainer fits the expression network only; "
                              "grow and fit an answer tail afterwards (python -m training.answer_tail)")
        if unknown := sorted(set(spec.init_fresh) - {name for name, _ in model.named_children()}):
            raise ConfigError(f"model.init_fresh: no submodule {', '.join(unknown)}")
        report = init_from_checkpoint(model, self.classes, spec.init_from, fresh=spec.init_fresh) if spec.init_from else None
        return model, report

    def _dataset(self, spec: DataSpec, augment: bool, records: Records | None = None) -> FaceDataset:
        """``spec``'s faces as the model learns them; ``records`` where the split was already read."""
        if records is None:
            records = spec.load()
        transform = train_augmentation(self.preprocess.img_size, self.config.augment) if augment else None
        teacher = teacher_targets_for(records, spec.root, spec.teacher, self.classes) if spec.teacher else None
        return FaceDataset(records, self.preprocess, classes=self.classes, augment=transform, skip_bad=spec.skip_bad,
                           teacher=teacher, teacher_weight=spec.teacher_weight)

    def _build_train_set(self, records: list[Records]) -> ConcatDataset[Any]:
        parts = [self._dataset(spec, augment=True, records=r) for spec, r in zip(self.config.train, records, strict=True)]
        self.skipped = {spec.describe(): len(part.skipped) for spec, part in zip(self.config.train, parts, strict=True)}
        return ConcatDataset(parts)

    def _steps_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.train_set) / self.env.world_size)
        steps = per_rank // self.config.optim.batch_size
        if self.config.max_steps_per_epoch:
            steps = min(steps, self.config.max_steps_per_epoch)
        return max(1, steps)

    def _total_steps(self) -> int:
        return max(1, self.epochs * self.steps_per_epoch)

    def _loader(self, epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)
        sampler: DistributedSampler[int] | None = None
        if self.env.distributed:
            sampler = DistributedSampler(self.train_set, shuffle=True, seed=self.config.seed, drop_last=True)
            sampler.set_epoch(epoch)
        return DataLoader(
            self.train_set,
            batch_size=self.config.optim.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=generator,
            drop_last=True,
            num_workers=self.config.num_workers,
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
        )

    # ------------------------------------------------------------------ state

    def _state(self, epoch: int) -> dict[str, Any]:
        state = {
            "epoch": epoch,
            "best_score": self.best_score,
            "history": json.dumps(self.history),
            "elapsed": self.elapsed_before + time.time() - self.started,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(),
        }
        if self.discriminator is not None and self.d_optimizer is not None:
            state["discriminator"] = self.discriminator.state_dict()
            state["d_optimizer"] = self.d_optimizer.state_dict()
        return state

    def resume(self) -> bool:
        """Continue from ``last/`` if a previous run of this recipe left one. Returns whether it did."""
        folder = self.run_dir / "last"
        if not (folder / "state.json").is_file():
            return False
        state = load_state(folder)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.discriminator is not None and "discriminator" in state:
            self.discriminator.load_state_dict(state["discriminator"])
            assert self.d_optimizer is not None, "__init__ builds one whenever there is a discriminator"
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        _set_rng_state(state["rng"])
        self.start_epoch = int(state["epoch"]) + 1
        self.best_score = float(state["best_score"])
        self.history = json.loads(state["history"])
        self.elapsed_before = float(state["elapsed"])
        self._log(f"resumed from {folder} at epoch {self.start_epoch}")
        return True

    def _card(self, metrics: dict[str, Any], epoch: int) -> CardDraft:
        c = self.config
        training = {
            "command": self.command,
            "recipe": c.model_dump(),
            "data": [s.describe() for s in c.train],
            "train_images": len(self.train_set),
            "skipped_images": self.skipped,
            "selected_on": c.val.describe() if c.val else None,
            "select": c.select,
            "epoch": epoch,
            "epochs": self.epochs,
            "seed": c.seed,
            "hardware": hardware(),
            "processes": self.env.world_size,
            "wall_time_s": round(self.elapsed_before + time.time() - self.started, 1),
            "torch": torch.__version__,
        }
        if self.init_report:
            training["init_from"] = {k: v for k, v in self.init_report.items() if k != "kept_fresh"}
        return build_card(self.model, self.classes, self.preprocess, name=c.name, training=training, metrics=metrics)

    # ------------------------------------------------------------------ the loop

    def _log(self, message: str) -> None:
        if self.env.is_main:
            tqdm.write(message)

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        self.model.train()
        for module in self.frozen:
            module.eval()  # frozen batch norms keep their statistics
        if self.discriminator is not None:
            self.discriminator.train()
        sums: dict[str, float] = {}
        correct = seen = steps = 0
        start = time.time()
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            disable=not (self.env.is_main and self.config.progress),
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
            leave=False,
        )
        clip = self.config.optim.grad_clip
        for step, (images, labels, targets) in enumerate(self._loader(epoch)):
            if step >= self.steps_per_epoch:
                break
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            labels, targets = labels.to(self.device), targets.to(self.device)
            out = training_step(self.objective, self.optimizer, self.amp, images, labels, targets, clip=clip,
                                discriminator=self.disc_step, d_optimizer=self.d_optimizer)
            self.scheduler.step()
            for key, value in out.losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            correct += int((out.logits.argmax(1) == labels).sum())
            seen += len(labels)
            steps += 1
            bar.update(1)
            bar.set_postfix({k: f"{v / steps:.3f}" for k, v in sums.items()}, refresh=False)
        bar.close()
        # Counted here, not read from the bar: a disabled bar (progress: false) never counts, and
        # the log then held each loss summed over the epoch instead of its mean a step.
        steps = max(1, steps)
        elapsed = time.time() - start
        return {
            "train": {k: v / steps for k, v in sums.items()},
            "train_accuracy": correct / max(1, seen),
            "lr": self.scheduler.get_last_lr()[0],
            "epoch_time_s": round(elapsed, 1),
            "images_per_s": round(seen * self.env.world_size / max(elapsed, 1e-9), 1),
        }

    def validate(self) -> Metrics | None:
        """Measure the validation split. Its faces are decoded on the first call and kept: on a GPU an
        epoch of the small network takes seconds, and decoding 3,589 JPEGs again each time took a second."""
        if self.config.val is None:
            return None
        if self._val_set is None:
            spec = self.config.val
            records = spec.load()
            self._val_set = evaluation_set(records, self.preprocess, self.classes, skip_bad=spec.skip_bad)
        return evaluate_dataset(self.model, self.classes, self._val_set, self.device)

    def fit(self) -> Path:
        c = self.config
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "recipe.json").write_text(json.dumps(c.model_dump(), indent=2))
            params = sum(p.numel() for p in self.model.parameters())
            self._log(
                f"{c.name}: {c.model.variant} ({c.model.sharing}), {params / 1e6:.2f}M parameters, "
                f"{len(self.train_set)} training images, {self.steps_per_epoch} steps/epoch, "
                f"{self.env.world_size} process(es) on {self.device}"
            )
        epoch = self.start_epoch
        while epoch < self.epochs:
            record: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            if self.env.is_main:
                self._end_epoch(epoch, record)
            if c.time_budget_s and epoch - self.start_epoch < 2:
                self._fit_to_budget(c.time_budget_s, epoch)
            epoch += 1
        best = self.run_dir / "best"
        if self.env.is_main:
            self.finish(best)
        if self.env.distributed:
            dist.barrier()
        return best

    def _end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """Validate, log, keep the best checkpoint by validation score and the state to resume from."""
        c = self.config
        metrics = self.validate()
        if metrics is not None:
            record["val"] = {"accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1}
        self.history.append(record)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        score = epoch if c.select == "last" or metrics is None else getattr(metrics, c.select)
        improved = score > self.best_score
        if improved:
            self.best_score = score
            val_metrics = {f"{c.val.dataset}/{c.val.split}": metrics.summary()} if metrics and c.val else {}
            save_checkpoint(self.run_dir / "best", self.model, self._card(val_metrics, epoch + 1))
        save_state(self.run_dir / "last", self._state(epoch))
        val_text = f", val accuracy {100 * metrics.accuracy:.2f} %, macro-F1 {100 * metrics.macro_f1:.2f} %" if metrics else ""
        self._log(
            f"epoch {epoch + 1}: loss {record['train'].get('fer', 0):.3f}, train accuracy "
            f"{100 * record['train_accuracy']:.1f} %{val_text}, {record['epoch_time_s']} s{' *' if improved else ''}"
        )

    def _fit_to_budget(self, budget_s: float, epoch: int) -> None:
        """Cut the run to the epochs that fit in ``budget_s``, judged after each of its first two epochs.

        After the first epoch the pace is that epoch's wall time (validation and checkpoint included),
        which errs on the short side: workers start and cuDNN picks its kernels then. After the second,
        the rest of the budget is divided by the second epoch's time, the steady pace. The run never grows
        beyond the recipe's epochs. Every process takes rank 0's decision, so distributed ranks stop together.
        """
        now = time.time()
        elapsed = now - self.started
        pace = now - self._budget_mark
        self._budget_mark = now
        fits = epoch + 1 + int(max(0.0, budget_s - elapsed) // max(pace, 1e-9))
        epochs = torch.tensor(min(self.config.optim.epochs, fits))
        if self.env.distributed:
            epochs = epochs.to(self.device)
            dist.broadcast(epochs, src=0)
        if int(epochs) != self.epochs:
            self._log(f"time budget {budget_s:.0f} s: {elapsed:.0f} s spent, {pace:.0f} s an epoch, "
                      f"so this run trains {int(epochs)} of the recipe's {self.config.optim.epochs} epochs")
            self.epochs = int(epochs)

    def finish(self, best: Path) -> None:
        """Measure the selected model on the report splits, calibrate it, and draw the figures beside it."""
        loaded = load_checkpoint(best, self.device)
        card = loaded.card
        card.training["epochs"] = self.epochs  # a time budget may have cut the run after this card was written
        draw = self.config.figures
        figures = self.run_dir / "figures"
        figures.mkdir(exist_ok=True)
        if self.history and draw:
            plot_curves(self.history, figures / "curves.png")
        logits = {}
        for spec in ([self.config.val] if self.config.val else []) + list(self.config.report):
            if spec is self.config.val and self._val_set is not None:
                faces = self._val_set  # decoded once for the whole run (validate)
            else:
                records = spec.load()
                faces = evaluation_set(records, self.preprocess, self.classes, skip_bad=spec.skip_bad)
            key = f"{spec.dataset}/{spec.split}"
            logits[key] = dataset_logits(loaded.model, self.classes, faces, self.device)  # once, for accuracy and calibration
            metrics = evaluate_dataset(loaded.model, self.classes, faces, self.device, logits=logits[key])
            card.metrics[key] = {**metrics.summary(), "measured_by": f"fersnet evaluate --checkpoint {best} "
                                 f"--dataset {spec.dataset} --root {spec.root} --split {spec.split} (the same measurement)"}
            if draw:
                plot_confusion(metrics, figures / f"confusion_{spec.dataset}_{spec.split.replace('/', '-')}.png", title=f"{key}: "
                               f"accuracy {100 * metrics.accuracy:.2f} %, macro-F1 {100 * metrics.macro_f1:.2f} %")
            self._log(f"{key}: {metrics.headline()}")
        if (val := self.config.val) is not None:  # the temperature that calibrates the selected model, fitted on validation
            fitted_from = f"{val.dataset}:{val.split} from {val.root}"
            card.calibration = calibrate(logits, f"{val.dataset}/{val.split}", fitted_from, self.command)
            self._log(f"calibration: temperature {card.calibration.temperature:g} "
                      f"(fitted on {val.dataset}/{val.split})")
        if draw and loaded.model.has_synthesis and self.config.val is not None:
            images, labels = grid_faces(self.config.val, self.preprocess, self.classes)
            synthesis_grid(loaded.model, images, self.classes, self.preprocess, figures / "synthesis_grid.png", labels)
        card.figures = sorted(str(p.relative_to(self.run_dir)) for p in figures.glob("*.png"))
        save_checkpoint(best, loaded.model, card)
        self._log(f"selected checkpoint: {best}")


def grid_faces(spec: DataSpec, preprocess: Preprocess, classes: tuple[str, ...], per_class: int = 1) -> tuple[torch.Tensor, list[str]]:
    """The first ``per_class`` faces of each class of a split: varied rows for a synthesis grid."""
    records = spec.load()
    dataset = FaceDataset(records, preprocess, classes=classes, drop_unknown_labels=True, skip_bad=True)
    chosen: list[int] = []
    for c in range(len(classes)):
        chosen += [int(i) for i in np.flatnonzero(dataset.labels == c)[:per_class]]
    return torch.stack([dataset[i][0] for i in chosen]), [classes[int(dataset.labels[i])] for i in chosen]

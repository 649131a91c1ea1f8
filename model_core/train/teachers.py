"""Fast teachers: one classifier trained against the clock with the data resident on the device.

The recipe trainer (:mod:`.trainer`) decodes and augments on CPU workers, which
suits the CPU this project trains on for hours. A borrowed GPU is there for
minutes, and small 48x48 networks would leave it waiting on those workers. So
here the whole packed FER2013 (:mod:`model_core.data.packed`, 83 MB of uint8)
sits on the device, batches are gathered by index and augmented there
(:mod:`model_core.data.batch_augment`), in bfloat16 autocast and channels-last.

The run is sized by wall-clock, not epochs: the learning rate follows a
warm-up and a cosine over the *time* budget, so a teacher ends on schedule
however fast the machine is and however many teachers share it. Weights are
averaged (EMA) as they train, and the average is scored on PublicTest after
every epoch; the best one is kept (selection never sees PrivateTest). At the
end the kept weights give every face's probabilities, the face and its mirror
image averaged in logit space (so that a temperature applied later, as
``p ** (1 / T)`` renormalised, is exact).

What :func:`write_teacher` leaves in a teacher's folder::

    fer2013.csv.gz   probabilities for all 35,887 FER2013 faces (train/, test/ keys): teacher-targets format
    ferplus.csv.gz   the same for FER+'s faces, keyed under the FER+ root (each is its FER2013 JPEG)
    summary.json     what it is, how long it trained, its accuracy on PublicTest, PrivateTest and FER+ test
    log.jsonl        one line per PublicTest evaluation
    command.txt      the command that made it
    weights/         float16 weights and card (see :mod:`.teacher_nets`)
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import DataError
from ..data.batch_augment import BatchAugment
from ..data.packed import PackedFaces
from ..expressions import FER2013_CLASSES
from ..hardware import autocast_for
from .ensemble import LabelledSplit, accuracy
from .teacher import write_probabilities
from .teacher_nets import build_teacher, save_teacher, student_of

FER2013_FILE = "fer2013.csv.gz"
FERPLUS_FILE = "ferplus.csv.gz"
SUMMARY_FILE = "summary.json"

#: What of the teachers' answer a student learns (:attr:`TeacherPlan.distill_mode`).
DistillMode = Literal["full", "non_target"]
DISTILL_MODES: tuple[DistillMode, ...] = ("full", "non_target")


@dataclass(frozen=True)
class TeacherPlan:
    """How to train one teacher. ``budget_s`` is the wall-clock for training (not counting the final scoring)."""

    name: str
    arch: str
    seed: int = 0
    budget_s: float = 300.0
    batch_size: int = 256
    lr: float = 0.1  # SGD with Nesterov momentum, for 256 faces a batch (scaled linearly with the batch)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup: float = 0.05  # share of the budget spent warming the learning rate up
    ema: float = 0.999  # 0: score the raw weights
    max_steps: int | None = None  # a cap besides the clock (smoke runs)
    eval_every: int | None = None  # steps between PublicTest scorings; None: once an epoch
    compile: bool = False  # torch.compile the network (falls back to eager if compiling fails)
    flip_tta: bool = True
    #: Distillation: the student starts from this FERSNet checkpoint (None: ``arch``, freshly initialised)...
    init: str | None = None
    #: ... and learns from these probabilities (a .npy, one row per face of the pack, FER2013's classes;
    #: ``python -m training.gpu_teachers targets`` averages the teachers' into one) with weight ``distill``,
    #: the labels' cross-entropy taking the rest. Softened by ``temperature`` as Hinton et al. do.
    soft_targets: str | None = None
    distill: float = 0.0
    temperature: float = 2.0
    #: What of the teachers' answer is learnt: ``full``, the whole distribution (Hinton et al.), the labels'
    #: cross-entropy weighted ``1 - distill``; or ``non_target``, only how the teachers share their doubt among the
    #: classes *other than the label* (NCKD, Zhao et al. 2022, "Decoupled Knowledge Distillation"), added to the
    #: labels' full cross-entropy with weight ``distill``. Teachers that trained on the student's faces are nearly
    #: sure of the label there (right on 86.9 % of them, against 71.6 % of PublicTest), so the full distribution
    #: mostly repeats the label, while the ranking of the other classes still says which expressions a face is near.
    distill_mode: DistillMode = "full"
    #: The batch's random changes (:class:`~model_core.data.batch_augment.BatchAugment`).
    augment: BatchAugment = field(default_factory=BatchAugment)
    #: Mixup (Zhang et al. 2018): each batch blended with a shuffled copy of itself, the weight drawn from
    #: Beta(mixup, mixup), and the loss blended alike; 0 for none.
    mixup: float = 0.0
    #: Score every face at the end (what a teacher leaves); False scores PublicTest only (a proxy run, which keeps none).
    score_all: bool = True
    #: A K-fold teacher: trained on the Training faces outside fold ``fold`` of ``folds`` (:func:`fold_of`), it
    #: leaves probabilities only for faces it never trained on, so that K of them give every Training face an
    #: answer from a network that did not see it (what distillation needs: a teacher's answers on its own
    #: training faces mostly repeat their labels). None: one teacher on every Training face.
    fold: int | None = None
    folds: int = 5

    def __post_init__(self) -> None:
        if self.fold is not None and not 0 <= self.fold < self.folds:
            raise ValueError(f"fold must be 0 to {self.folds - 1} (of folds={self.folds}), not {self.fold}")


@dataclass
class TeacherResult:
    """What a teacher did and scored; written as summary.json."""

    name: str
    arch: str
    seed: int
    parameters: int
    device: str
    compiled: bool
    steps: int = 0
    epochs: float = 0.0
    train_s: float = 0.0
    images_per_s: float = 0.0
    best_step: int = 0
    best_epoch: float = 0.0
    accuracy: dict[str, float] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def fold_of(keys: list[str], folds: int) -> np.ndarray:
    """Each face's fold, 0 to ``folds - 1``, from a hash of its key: the same in every pack and subset, and for
    every teacher whatever its seed or architecture, so that K-fold teachers of different kinds agree on it."""
    # A cryptographic hash, not a CRC: a CRC is linear in the key's bits, and keys that differ in a few digits
    # can all land in one fold.
    return np.array([int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % folds
                     for key in keys], dtype=np.int64)


def trained_on(faces: PackedFaces, fold: int | None, folds: int) -> np.ndarray:
    """The pack's rows a teacher trains on: every Training face, or for a K-fold teacher (:attr:`TeacherPlan.fold`)
    those outside its fold."""
    rows = faces.rows("train")
    if fold is None:
        return rows
    return rows[fold_of([faces.keys[i] for i in rows], folds) != fold]


def lr_at(fraction: float, peak: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` of the run, then a cosine to zero at ``fraction`` 1."""
    if fraction < warmup:
        return peak * fraction / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, (fraction - warmup) / max(1e-9, 1 - warmup))))


def normalise(images: Tensor) -> Tensor:
    """uint8 faces to the [-1, 1] floats every model here takes (Preprocess's mean 0.5, std 0.5)."""
    return images.float().div_(127.5).sub_(1.0)


def distillation_loss(logits: Tensor, labels: Tensor, soft_log: Tensor | None, plan: TeacherPlan) -> Tensor:
    """Cross-entropy on the labels, mixed with KL divergence to the teachers' softened answer when there is one.

    ``soft_log`` holds the teachers' log-probabilities for the batch. Both sides are softened by the
    temperature and the KL term scaled by its square, so that its gradients keep their size (Hinton et al. 2015).
    With ``plan.distill_mode`` ``non_target`` the KL term compares the two sides over the classes other than
    each face's label only (:func:`non_target`), and is added to the labels' whole loss.
    """
    hard = F.cross_entropy(logits, labels, label_smoothing=plan.label_smoothing)
    if soft_log is None or plan.distill <= 0:
        return hard
    if plan.distill_mode == "non_target":
        return hard + plan.distill * softened_kl(non_target(logits, labels), non_target(soft_log, labels), plan.temperature)
    return (1 - plan.distill) * hard + plan.distill * softened_kl(logits, soft_log, plan.temperature)


def softened_kl(student: Tensor, teacher_log: Tensor, t: float) -> Tensor:
    """KL(teacher || student), both softened by ``t``, times ``t ** 2`` (Hinton et al.), averaged over the batch."""
    return F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher_log / t, 1), reduction="batchmean",
                    log_target=True) * t * t


def non_target(scores: Tensor, labels: Tensor) -> Tensor:
    """Each row of ``scores`` (N x C logits or log-probabilities) without its label's column: N x (C - 1), the
    other classes in their order. A softmax over what is left is the distribution among the non-target classes
    alone, whatever the label's own score was."""
    keep = torch.ones_like(scores, dtype=torch.bool).scatter_(1, labels[:, None], False)
    return scores[keep].view(len(scores), scores.shape[1] - 1)


def load_soft_targets(path: str | Path, faces: PackedFaces) -> np.ndarray:
    """The teachers' probabilities for every face of the pack (made for this pack: one row per face, in order)."""
    probs = np.load(path)
    if faces.source_rows is not None and len(probs) > int(faces.source_rows.max(initial=0)):
        probs = probs[faces.source_rows]  # a smoke run's subset of the pack they were made for
    if probs.shape != (len(faces.keys), len(FER2013_CLASSES)):
        raise DataError(f"{path}: {probs.shape} probabilities, but the pack holds {len(faces.keys)} faces of "
                        f"{len(FER2013_CLASSES)} classes (make them for this pack: python -m training.gpu_teachers targets)")
    return probs.astype(np.float32)


@torch.no_grad()
def teacher_logits(model: nn.Module, images: Tensor, device: torch.device, batch_size: int = 1024,
                   flip_tta: bool = True) -> Tensor:
    """Float32 logits of uint8 faces (N x 1 x H x W, on ``device``), averaged with their mirror images."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalise(images[start:start + batch_size]).contiguous(memory_format=torch.channels_last)
        with autocast_for(device):
            logits = model(x).float()
            if flip_tta:
                logits = (logits + model(x.flip(3)).float()) / 2
        out.append(logits)
    return torch.cat(out) if out else torch.zeros(0, len(FER2013_CLASSES), device=device)


def splits_of_pack(faces: PackedFaces) -> list[tuple[LabelledSplit, np.ndarray]]:
    """The scored splits, keyed as the probability files are (PublicTest, PrivateTest and, if packed, FER+ test),
    each with the FER2013 rows of the pack that hold its faces."""
    out = [(LabelledSplit(title, [faces.keys[i] for i in rows], faces.label[rows], faces.classes), rows)
           for title, rows in (("PublicTest", faces.rows("val")), ("PrivateTest", faces.rows("test")))]
    if faces.ferplus_keys is not None and faces.ferplus_split is not None and faces.ferplus_label is not None \
            and faces.ferplus_match is not None:
        rows = np.flatnonzero(faces.ferplus_split == 2)
        out.append((LabelledSplit("FER+ test", [faces.ferplus_keys[i] for i in rows], faces.ferplus_label[rows],
                                  faces.ferplus_classes), faces.ferplus_match[rows]))
    return out


class _Ema:
    """An exponential moving average of every float tensor of a model's state (weights and BN statistics)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        self._live = [t for t in model.state_dict().values() if t.is_floating_point()]
        self._avg = [t for t in self.model.state_dict().values() if t.is_floating_point()]
        self._live_ints = [t for t in model.state_dict().values() if not t.is_floating_point()]
        self._avg_ints = [t for t in self.model.state_dict().values() if not t.is_floating_point()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        # Early on the average would be mostly the random start: let it follow closely at first.
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self._avg, self._live, 1 - decay)
        for a, b in zip(self._avg_ints, self._live_ints, strict=True):
            a.copy_(b)

    def snapshot(self) -> list[Tensor]:
        return [t.detach().clone() for t in self.model.state_dict().values()]

    @torch.no_grad()
    def restore(self, tensors: list[Tensor]) -> None:
        for t, saved in zip(self.model.state_dict().values(), tensors, strict=True):
            t.copy_(saved)


def train_teacher(plan: TeacherPlan, faces: PackedFaces, device: str | torch.device = "cuda",
                  log: Callable[[str], None] = print) -> tuple[nn.Module, TeacherResult, Tensor]:
    """Train ``plan`` on the pack's Training faces; return the kept model, its result and all FER2013 logits.

    The logits are in the pack's order (every split), on the CPU, float32.
    """
    device = torch.device(device)
    torch.manual_seed(plan.seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(plan.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    images = torch.from_numpy(faces.images).unsqueeze(1).to(device)  # N x 1 x 48 x 48 uint8, resident
    labels = torch.from_numpy(faces.label).to(device)
    train_rows = torch.from_numpy(trained_on(faces, plan.fold, plan.folds)).to(device)
    val_rows = torch.from_numpy(faces.rows("val")).to(device)
    batch = min(plan.batch_size, len(train_rows))
    steps_per_epoch = max(1, len(train_rows) // batch)  # the last partial batch is dropped: fixed shapes
    eval_every = plan.eval_every or steps_per_epoch

    soft_log = None
    if plan.soft_targets and plan.distill > 0:
        soft = torch.from_numpy(load_soft_targets(plan.soft_targets, faces))
        soft_log = soft.clamp_min(1e-6).log().to(device)
    model = (student_of(plan.init) if plan.init else build_teacher(plan.arch)).to(device).to(memory_format=torch.channels_last)
    ema = _Ema(model, plan.ema)
    result = TeacherResult(plan.name, plan.arch, plan.seed, sum(p.numel() for p in model.parameters()),
                           str(torch.cuda.get_device_name(device) if device.type == "cuda" else device),
                           compiled=False, plan=asdict(plan))
    peak = plan.lr * batch / 256
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():  # no weight decay on BN scales and biases
        (decay if p.ndim > 1 else no_decay).append(p)
    optimiser = torch.optim.SGD([{"params": decay, "weight_decay": plan.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=peak, momentum=0.9, nesterov=True)
    augment = plan.augment
    mix = torch.distributions.Beta(plan.mixup, plan.mixup) if plan.mixup > 0 else None
    forward: Callable[[Tensor], Tensor] = model
    if plan.compile:
        forward = torch.compile(model)

    def fraction(step: int, start: float) -> float:
        by_time = (time.perf_counter() - start) / plan.budget_s
        return max(by_time, step / plan.max_steps) if plan.max_steps else by_time

    def loss_of(logits: Tensor, rows: Tensor) -> Tensor:
        return distillation_loss(logits, labels[rows], None if soft_log is None else soft_log[rows], plan)

    def train_step(x: Tensor, rows: Tensor) -> Tensor:
        if mix is not None:  # the loss of a blend is the same blend of the two sides' losses
            weight = float(mix.sample())
            partner = torch.randperm(len(rows), device=device, generator=generator)
            x = weight * x + (1 - weight) * x[partner]
        with autocast_for(device):
            logits = forward(x).float()
        if mix is not None:
            loss = weight * loss_of(logits, rows) + (1 - weight) * loss_of(logits, rows[partner])
        else:
            loss = loss_of(logits, rows)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return loss.detach()

    best_acc, best_state = -1.0, ema.snapshot()
    step, start, order, losses = 0, time.perf_counter(), torch.empty(0, dtype=torch.long, device=device), []
    model.train()
    while True:
        f = fraction(step, start)
        if f >= 1:
            break
        position = (step % steps_per_epoch) * batch
        if position == 0:
            order = train_rows[torch.randperm(len(train_rows), device=device, generator=generator)]
        rows = order[position:position + batch]
        x = augment(normalise(images[rows]), generator).contiguous(memory_format=torch.channels_last)
        for group in optimiser.param_groups:
            group["lr"] = lr_at(f, peak, plan.warmup)
        try:
            losses.append(train_step(x, rows))
        except Exception as e:  # noqa: BLE001 - a compiler failure of any kind: train eagerly instead
            if forward is model:
                raise
            log(f"{plan.name}: torch.compile failed ({type(e).__name__}: {str(e)[:200]}); training eagerly")
            forward = model
            losses.append(train_step(x, rows))
        result.compiled = forward is not model
        ema.update(step)
        step += 1
        if step % eval_every == 0 or fraction(step, start) >= 1:
            acc = _val_accuracy(ema.model, images[val_rows], faces.label[faces.rows("val")], device)
            elapsed = time.perf_counter() - start
            entry = {"step": step, "epoch": round(step / steps_per_epoch, 3), "elapsed_s": round(elapsed, 1),
                     "lr": optimiser.param_groups[0]["lr"], "train_loss": float(torch.stack(losses).mean()),
                     "val_accuracy": acc}
            losses.clear()
            result.history.append(entry)
            log(f"{plan.name}: step {step} epoch {entry['epoch']:.2f} {elapsed:.0f}s loss {entry['train_loss']:.4f} "
                f"PublicTest {100 * acc:.2f} %")
            if acc > best_acc:
                best_acc, best_state = acc, ema.snapshot()
                result.best_step, result.best_epoch = step, entry["epoch"]
            model.train()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result.steps, result.train_s = step, round(time.perf_counter() - start, 1)
    result.epochs = round(step / steps_per_epoch, 3)
    result.images_per_s = round(step * batch / max(result.train_s, 1e-9), 1)
    ema.restore(best_state)
    if plan.score_all:
        logits = teacher_logits(ema.model, images, device, flip_tta=plan.flip_tta).cpu()
        scored = splits_of_pack(faces)
    else:  # a proxy: PublicTest alone, the rest of the logits left at zero
        logits = torch.zeros(len(images), len(FER2013_CLASSES))
        logits[val_rows.cpu()] = teacher_logits(ema.model, images[val_rows], device, flip_tta=plan.flip_tta).cpu()
        scored = splits_of_pack(faces)[:1]
    probs = logits.softmax(1).numpy()
    for split, rows_of_split in scored:
        result.accuracy[split.name] = accuracy(probs[rows_of_split], split.labels, FER2013_CLASSES, split.classes)
    log(f"{plan.name}: {step} steps ({result.epochs:.1f} epochs) in {result.train_s:.0f} s, "
        f"{result.images_per_s:.0f} faces/s; best at epoch {result.best_epoch:.2f}: "
        + ", ".join(f"{k} {100 * v:.2f} %" for k, v in result.accuracy.items()))
    return ema.model, result, logits


def _val_accuracy(model: nn.Module, images: Tensor, labels: np.ndarray, device: torch.device) -> float:
    probs = teacher_logits(model, images, device, flip_tta=False).cpu().numpy()
    return accuracy(probs, labels, FER2013_CLASSES, FER2013_CLASSES)


def write_teacher(folder: str | Path, model: nn.Module, result: TeacherResult, logits: Tensor, faces: PackedFaces,
                  command: str) -> Path:
    """Leave the teacher's probabilities, weights, summary, log and command in ``folder`` (layout above).

    A K-fold teacher's files leave out the faces it trained on (FER+'s among them, by their FER2013 face).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probs = logits.softmax(1).numpy()
    unseen = np.ones(len(faces.keys), dtype=bool)
    if result.plan["fold"] is not None:
        unseen[trained_on(faces, result.plan["fold"], result.plan["folds"])] = False
    rows = np.flatnonzero(unseen)
    write_probabilities(folder / FER2013_FILE, [faces.keys[i] for i in rows], FER2013_CLASSES, probs[rows])
    if faces.ferplus_keys is not None and faces.ferplus_match is not None:
        kept = np.flatnonzero(unseen[faces.ferplus_match])
        write_probabilities(folder / FERPLUS_FILE, [faces.ferplus_keys[i] for i in kept], FER2013_CLASSES,
                            probs[faces.ferplus_match[kept]])
    summary = asdict(result)
    history = summary.pop("history")
    (folder / "log.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    (folder / "command.txt").write_text(command.rstrip("\n") + "\n")
    save_teacher(folder / "weights", model, result.arch, {
        "name": result.name,
        "training": {"command": command, "plan": result.plan, "steps": result.steps, "epochs": result.epochs,
                     "train_s": result.train_s, "device": result.device},
        "metrics": {k: round(100 * v, 2) for k, v in result.accuracy.items()},
    })
    return folder

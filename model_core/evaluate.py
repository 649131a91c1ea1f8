"""Measuring a model: predictions, metrics (accuracy, macro-F1, per-class recall, confusion) and figures.

The headline figures are those of the model as deployed: its answer is the
argmax over *all* its classes, since a deployed model does not know which
classes a set happens to hold. When the model knows a class the dataset never
uses (neutral on CK+48, contempt for an 8-class FER+ model on FER2013), an
answer of that class is simply wrong, and the confusion matrix gives it a
column of its own after the dataset's classes (``predicted_classes``). When the
dataset has a class the model lacks (contempt in FER+ or CK+ for a FER2013
model), those images still count, always as errors, and are reported as
``unsupported``.

Beside it, under its own name, ``accuracy_restricted`` is the older and
kinder protocol: the best of the model's classes *that the set contains*
(the logits of the model's other classes masked out). It is what
cross-dataset papers often report, and it can only flatter: a one-class folder
scores 100 % under it whatever the model thinks. Where the set contains every
class of the model (FER2013 and FER+ for a FER2013 model, a validation split
of the training set's classes) the two are the same number.

A network with an answer tail has two recognition heads (:data:`~model_core.fersnet.Head`):
everything here measures the ``served`` one, what users get, unless told ``head="expression"``,
the expression head (FER2013's seven classes, say, to compare with the literature); the model's
classes passed beside it must be that head's (``LoadedModel.classes_of(head)``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from .checkpoint import LoadedModel
from .data import FaceDataset, Records
from .data.dataset import FaceFinder
from .expressions import one_hot
from .fersnet import FERSNet, Head
from .preprocess import Preprocess
from .prior import PriorName

#: Turns a head's logits into the probabilities a user is answered (:meth:`LoadedModel.probabilities`).
Answer = Callable[[Tensor], Tensor]


@dataclass
class Metrics:
    """Scores on one split. ``accuracy``, ``macro_f1``, the recalls and the confusion matrix score the plain
    argmax over all the model's classes; ``accuracy_restricted`` the best of the classes the set contains."""

    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]
    per_class_f1: dict[str, float]
    #: Rows: the true class (``classes``); columns: the answer (``predicted_classes``).
    confusion: list[list[int]]
    #: The dataset's classes: the rows of ``confusion``, and the keys of the recalls and F1s.
    classes: list[str]
    n: int
    unsupported: int = 0
    #: Images in which face detection (``--detect``) found no face and which were classified whole; None without detection.
    faceless: int | None = None
    #: The model's classes that the dataset never uses (neutral on CK+48): answering one is always wrong.
    extra_classes: list[str] = field(default_factory=list)
    #: Accuracy when the answer is the best of the model's classes that the set contains (``extra_classes``
    #: masked out): the kinder, older protocol. Equal to ``accuracy`` when ``extra_classes`` is empty.
    accuracy_restricted: float | None = None

    def __post_init__(self) -> None:
        if self.accuracy_restricted is None and not self.extra_classes:
            self.accuracy_restricted = self.accuracy

    @property
    def predicted_classes(self) -> list[str]:
        """The columns of ``confusion``: the dataset's classes, then the model's extra classes."""
        return [*self.classes, *self.extra_classes]

    @property
    def outside(self) -> int:
        """How many answers were a class the dataset never uses (the extra columns of ``confusion``)."""
        k = len(self.classes)
        return int(sum(sum(row[k:]) for row in self.confusion))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "predicted_classes": self.predicted_classes}

    def summary(self) -> dict[str, Any]:
        """The rounded figures a model card states (accuracy, macro-F1, recalls, images); where the set lacks some
        of the model's classes, also the restricted accuracy and which classes it never lets the model answer."""
        out: dict[str, Any] = {
            "accuracy": round(self.accuracy, 5),
            "macro_f1": round(self.macro_f1, 5),
            "per_class_recall": {k: round(v, 4) for k, v in self.per_class_recall.items()},
            "images": self.n,
        }
        if self.extra_classes and self.accuracy_restricted is not None:
            out["accuracy_restricted"] = round(float(self.accuracy_restricted), 5)
            out["restricted_excludes"] = list(self.extra_classes)
        return out

    def headline(self) -> str:
        """One line for a log: accuracy and macro-F1, and the restricted accuracy where the set lacks some of the model's classes."""
        line = f"accuracy {100 * self.accuracy:.2f} %, macro-F1 {100 * self.macro_f1:.2f} %"
        if self.extra_classes and self.accuracy_restricted is not None:
            never = ", ".join(self.extra_classes)
            line += f" (restricted to the set's classes, {never} never an answer: {100 * self.accuracy_restricted:.2f} %)"
        return line

    def _detection_line(self) -> str:
        decoded = self.n - self.unsupported
        return f"face detection: a face found in {decoded - (self.faceless or 0)} of {decoded} images; the others classified whole"

    def table(self) -> str:
        """A plain-text report for the terminal."""
        columns = self.predicted_classes
        width = max(len(c) for c in columns) + 2
        lines = [
            f"images: {self.n}" + (f"  (of which {self.unsupported} with a class the model lacks)" if self.unsupported else ""),
            *([] if self.faceless is None else [self._detection_line()]),
            f"accuracy: {100 * self.accuracy:.2f} %   macro-F1: {100 * self.macro_f1:.2f} %",
        ]
        if self.extra_classes:
            extra = ", ".join(self.extra_classes)
            lines.append(f"answers of a class the set never uses ({extra}): {self.outside}, counted wrong")
            if self.accuracy_restricted is not None:
                lines.append(f"accuracy restricted to the set's classes ({extra} never an answer): "
                             f"{100 * self.accuracy_restricted:.2f} %")
        lines += ["", f"{'class':<{width}}{'recall':>8}{'F1':>8}"]
        lines += [f"{c:<{width}}{100 * self.per_class_recall[c]:>7.1f}%{100 * self.per_class_f1[c]:>7.1f}%" for c in self.classes]
        others = ", the set's classes then the model's others" if self.extra_classes else ""
        lines += ["", f"confusion (rows: true, columns: predicted{others})", " " * width + "".join(f"{c[:7]:>8}" for c in columns)]
        lines += [f"{c:<{width}}" + "".join(f"{v:>8}" for v in row) for c, row in zip(self.classes, self.confusion, strict=True)]
        return "\n".join(lines)


def compute_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str],
    unsupported: int = 0,
    extra_classes: Sequence[str] = (),
    y_pred_restricted: np.ndarray | None = None,
) -> Metrics:
    """Accuracy, macro-F1, per-class recall and the confusion matrix from integer labels.

    ``y_true`` indexes ``classes`` (the dataset's); ``y_pred`` indexes ``classes`` followed by
    ``extra_classes`` (the model's classes the dataset lacks), so an answer ``>= len(classes)`` is always
    wrong. ``unsupported`` images (of a class the model lacks) count in the denominator, always wrong.
    ``y_pred_restricted``, answers within ``classes`` only, gives ``accuracy_restricted``.
    """
    k, e = len(classes), len(extra_classes)
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    confusion = np.bincount(y_true * (k + e) + y_pred, minlength=k * (k + e)).reshape(k, k + e)
    tp = np.diag(confusion[:, :k]).astype(float)
    support, predicted = confusion.sum(1), confusion[:, :k].sum(0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    present = support > 0
    n = int(len(y_true)) + unsupported
    restricted = None
    if y_pred_restricted is not None:
        restricted = float((np.asarray(y_pred_restricted) == y_true).sum() / n) if n else 0.0
    return Metrics(
        accuracy=float(tp.sum() / n) if n else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class_recall={c: float(r) for c, r in zip(classes, recall, strict=True)},
        per_class_f1={c: float(v) for c, v in zip(classes, f1, strict=True)},
        confusion=confusion.tolist(),
        classes=list(classes),
        n=n,
        unsupported=unsupported,
        extra_classes=list(extra_classes),
        accuracy_restricted=restricted,
    )


@torch.inference_mode()
def predict(
    model: FERSNet,
    loader: Iterable[tuple[Tensor, Tensor, Tensor]],
    device: torch.device | str = "cpu",
    temperature: float = 1.0,
    head: Head = "served",
    answer: Answer | None = None,
) -> tuple[Tensor, Tensor]:
    """Class probabilities of ``head`` and labels for every item of ``loader``: ``softmax(logits / temperature)``, or
    what ``answer`` makes of the logits (:meth:`LoadedModel.probabilities`: the card's temperature and prior)."""
    model.eval()
    probs, labels = [], []
    for images, label, _ in loader:
        logits = model.classify(images.to(device), head)
        probs.append((answer(logits) if answer else (logits.float() / temperature).softmax(1)).cpu())
        labels.append(label)
    return torch.cat(probs), torch.cat(labels)


def _answers(
    model: FERSNet,
    model_classes: Sequence[str],
    dataset: FaceDataset,
    device: torch.device | str,
    batch_size: int,
    logits: tuple[Tensor, Tensor] | None = None,
    head: Head = "served",
    answer: Answer | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The true labels of ``dataset`` and the model's two answers to each image, and the model's extra classes.

    Returns ``(true, plain, restricted, extra)``: ``true`` indexes the *dataset's* classes; ``plain``,
    the argmax over all the model's classes (the headline), indexes the dataset's classes followed by
    ``extra``, the model's classes the dataset never uses; ``restricted``, the best of the model's
    classes that the dataset contains, indexes the dataset's classes (-1 if it shares none with the model).
    ``logits`` are the set's :func:`~model_core.calibration.dataset_logits` when the caller has them already;
    otherwise the model's ``head`` answers, and ``model_classes`` are that head's. ``answer`` turns logits into the
    probabilities a user gets (:meth:`LoadedModel.probabilities`); without it the logits' argmax is the answer.
    """
    dataset_classes = list(dataset.dataset_classes)
    model_classes = list(model_classes)
    extra = [c for c in model_classes if c not in dataset_classes]
    shared = [c for c in dataset_classes if c in model_classes]
    if logits is None:
        # A private generator: building a loader draws a seed, and measuring must not shift training's RNG.
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator())
        scores, labels = predict(model, loader, device, head=head, answer=answer)
        true = np.array([dataset_classes.index(c) for c in dataset.classes])[labels.numpy()]
    else:
        scores, model_labels = logits  # labels as indices into the model's classes
        scores = answer(scores) if answer else scores
        true = np.array([dataset_classes.index(model_classes[i]) for i in model_labels.tolist()], dtype=np.int64)
    columns = dataset_classes + extra
    plain = np.array([columns.index(c) for c in model_classes])[scores.argmax(1).numpy()]
    if shared:
        best_shared = scores[:, [model_classes.index(c) for c in shared]].argmax(1).numpy()
        restricted = np.array([dataset_classes.index(c) for c in shared])[best_shared]
    else:
        restricted = np.full(len(true), -1)
    return true, plain, restricted, extra


def evaluation_set(
    records: Records,
    preprocess: Preprocess,
    model_classes: Sequence[str],
    skip_bad: bool = False,
    find_face: FaceFinder | None = None,
) -> FaceDataset:
    """The faces of ``records`` that a model of ``model_classes`` is scored on, decoded once.

    Kept apart from :func:`evaluate_dataset` so that a trainer, which validates after every
    epoch, decodes its validation split once rather than every epoch. ``find_face``
    (:class:`~model_core.faces.LargestFace`) measures photos as the service sees them.
    """
    shared = [c for c in records.classes if c in model_classes]
    return FaceDataset(records, preprocess, classes=shared, skip_bad=skip_bad, drop_unknown_labels=True, find_face=find_face)


def evaluate_dataset(
    model: FERSNet,
    model_classes: Sequence[str],
    dataset: FaceDataset,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    logits: tuple[Tensor, Tensor] | None = None,
    head: Head = "served",
    answer: Answer | None = None,
) -> Metrics:
    """Evaluate ``head`` (whose classes are ``model_classes``) on an :func:`evaluation_set`: the headline scores the
    argmax over all the model's classes, ``accuracy_restricted`` the best of those the set contains (see module docstring).

    A caller that also calibrates passes the set's ``logits`` (:func:`~model_core.calibration.dataset_logits`),
    so that the model runs over the set once for both.

    Selection (the trainer's best epoch, a greedy soup) reads the headline ``accuracy``. On a validation
    split with the training set's classes (FER2013 PublicTest for a FER2013 model, a CK+ fold for a CK+
    model) the set contains every class of the model, and the headline is the restricted figure, exactly
    as before; on a split that lacks some of the model's classes, choosing by the deployed model's
    answers is the honest choice too.
    """
    unsupported = sum(1 for _, why in dataset.skipped if "not in model classes" in why)
    # Labels come back on the dataset's classes, so that unsupported classes keep their row in the report.
    true, plain, restricted, extra = _answers(model, model_classes, dataset, device, batch_size, logits, head, answer)
    metrics = compute_metrics(true, plain, dataset.dataset_classes, unsupported, extra, restricted)
    metrics.faceless = None if dataset.faceless is None else len(dataset.faceless)
    return metrics


def evaluate_records(
    model: FERSNet,
    model_classes: Sequence[str],
    preprocess: Preprocess,
    records: Records,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    skip_bad: bool = False,
    find_face: FaceFinder | None = None,
    head: Head = "served",
    answer: Answer | None = None,
) -> Metrics:
    """Evaluate ``head`` (whose classes are ``model_classes``) on a dataset split: the argmax over all the model's
    classes, and the restricted figure beside it (see module docstring). ``answer``: as a user is answered
    (:meth:`LoadedModel.probabilities`, for the served head of a checkpoint whose card names a prior)."""
    dataset = evaluation_set(records, preprocess, model_classes, skip_bad, find_face)
    return evaluate_dataset(model, model_classes, dataset, device, batch_size, head=head, answer=answer)


# --------------------------------------------------------------------------- two models on the same images


def correct_per_image(
    loaded: LoadedModel,
    records: Records,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    skip_bad: bool = False,
    find_face: FaceFinder | None = None,
    restricted: bool = False,
    prior: PriorName | None = None,
) -> np.ndarray:
    """Whether the model gets each usable image of ``records`` right, in record order.

    Scored as :func:`evaluate_records` scores its headline (the argmax over all
    the model's classes; a class the model lacks is always wrong), so ``mean()``
    is its ``accuracy``; with ``restricted``, the best of the model's classes that
    the set contains, so ``mean()`` is its ``accuracy_restricted``. Kept per image
    because two models are compared on the *same* faces, and the pairing is what
    makes a small difference measurable. The answers are the served ones, under ``prior`` (by default the card's).
    """
    dataset = FaceDataset(records, loaded.preprocess, classes=records.classes, skip_bad=skip_bad, find_face=find_face)
    answer = functools.partial(loaded.probabilities, prior=prior)
    true, plain, best_shared, _ = _answers(loaded.model, loaded.classes, dataset, device, batch_size, answer=answer)
    return true == (best_shared if restricted else plain)


@dataclass
class PairedComparison:
    """Model A against model B on the same images: the accuracy difference and how sure it is."""

    n: int
    accuracy_a: float
    accuracy_b: float
    low: float  # 95 % paired-bootstrap interval of accuracy_a - accuracy_b
    high: float
    a_only: int  # images only A gets right
    b_only: int
    mcnemar_p: float  # exact two-sided McNemar test on the a_only / b_only split

    @property
    def difference(self) -> float:
        return self.accuracy_a - self.accuracy_b

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "difference": self.difference}


def paired_comparison(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    """Compare two models' per-image correctness (from :func:`correct_per_image`) on the same images.

    The interval resamples images with replacement, keeping each image's pair
    of verdicts together. It measures the *test set's* sampling noise only:
    another training seed moves a row as well, which only more seeds show.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"the two models must be scored on the same images (got {a.shape} and {b.shape})")
    diff = a.astype(np.float64) - b.astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate([
        diff[rng.integers(0, len(diff), size=(min(1000, resamples - start), len(diff)))].mean(1)
        for start in range(0, resamples, 1000)
    ])
    low, high = np.quantile(means, [0.025, 0.975])
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    return PairedComparison(len(a), float(a.mean()), float(b.mean()), float(low), float(high), a_only, b_only,
                            _mcnemar_exact(a_only, b_only))


@dataclass
class SeededComparison:
    """Two recipes, each trained with several seeds, on the same images: the mean accuracy difference and how sure it is."""

    n: int
    accuracies_a: list[float]  # one per seed (checkpoint) of recipe A
    accuracies_b: list[float]
    low: float  # 95 % interval of mean(accuracies_a) - mean(accuracies_b), seeds and images resampled
    high: float

    @property
    def accuracy_a(self) -> float:
        return float(np.mean(self.accuracies_a))

    @property
    def accuracy_b(self) -> float:
        return float(np.mean(self.accuracies_b))

    @property
    def difference(self) -> float:
        return self.accuracy_a - self.accuracy_b

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b, "difference": self.difference}


def seeded_comparison(
    correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray], resamples: int = 10_000, seed: int = 0
) -> SeededComparison:
    """Compare two recipes from the per-image correctness of several seeds of each, on the same images.

    A single pair of checkpoints shows the test images' noise only
    (:func:`paired_comparison`); a recipe's accuracy also moves with its
    training seed. This two-level bootstrap resamples, in every round, each
    side's seeds with replacement (independently: seed *i* of A and of B share
    nothing that matters) and the images (together, since both sides see the
    same faces), and takes the difference of the mean accuracies. With three
    seeds a side the seed level is coarse (a bootstrap of k units shrinks
    their variance by (k - 1) / k): an interval that clears zero is evidence,
    not proof.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not a.shape[1]:  # an empty side has ndim 1
        raise ValueError(f"every model must be scored on the same images (got {a.shape} and {b.shape})")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, resamples, 500):
        rounds = min(500, resamples - start)
        images = rng.integers(0, n, size=(rounds, n))
        side_means = []
        for side in (a, b):
            seeds = rng.integers(0, len(side), size=(rounds, len(side)))
            per_seed = side[:, images].mean(axis=2).T  # (rounds, seeds): each seed's accuracy on the resampled images
            side_means.append(np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1))
        diffs.append(side_means[0] - side_means[1])
    low, high = np.quantile(np.concatenate(diffs), [0.025, 0.975])
    return SeededComparison(n, [float(x) for x in a.mean(1)], [float(x) for x in b.mean(1)], float(low), float(high))


def _mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference" each discordant image is a fair coin."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)


# --------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(metrics: Metrics, path: Path, title: str = "") -> Path:
    """The row-normalised confusion matrix as a PNG; answers of a class the set never uses get their own columns."""
    plt = _pyplot()
    cm = np.asarray(metrics.confusion, dtype=float)
    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k, columns = len(metrics.classes), metrics.predicted_classes
    fig, ax = plt.subplots(figsize=(6.4 + 0.7 * (len(columns) - k), 5.6))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(k), metrics.classes)
    if len(columns) > k:
        ax.axvline(k - 0.5, color="grey", lw=1)
    for i in range(k):
        for j in range(len(columns)):
            ax.text(j, i, f"{rows[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted" + (" (right of the line: classes the set never uses)" if len(columns) > k else ""))
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {100 * metrics.accuracy:.1f} %, macro-F1 {100 * metrics.macro_f1:.1f} %")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Training curves from the per-epoch log: losses on the left, validation metrics on the right."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({k for h in history for k in h.get("train", {})}):
        left.plot(epochs, [h["train"].get(key, np.nan) for h in history], label=key)
    left.set_xlabel("epoch")
    left.set_ylabel("mean training loss")
    left.set_yscale("log")
    left.legend(fontsize=7)
    validated = [h for h in history if "val" in h]
    for key in ("accuracy", "macro_f1") if validated else ():
        right.plot([h["epoch"] for h in validated], [100 * h["val"][key] for h in validated], marker="o", label=f"val {key}")
    if any("train_accuracy" in h for h in history):
        right.plot(epochs, [100 * h.get("train_accuracy", np.nan) for h in history], ls="--", label="train accuracy")
    right.set_xlabel("epoch")
    right.set_ylabel("%")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@torch.inference_mode()
def synthesis_grid(
    model: FERSNet,
    images: Tensor,
    classes: Sequence[str],
    preprocess: Preprocess,
    path: Path | None = None,
    labels: Sequence[str] | None = None,
    intensity: float = 1.0,
) -> np.ndarray:
    """Input faces down the rows, one column per target expression drawn at ``intensity``; saved as PNG if ``path``
    is given."""
    model.eval()
    device = next(model.parameters()).device
    images = images.to(device)
    n, k = images.shape[0], len(classes)
    features = model.forward_features(images)
    columns = [images]
    for c in range(k):
        columns.append(model.decode(features, one_hot([c] * n, k, device=device), intensity))
    tiles = [[preprocess.to_uint8(col[i]) for col in columns] for i in range(n)]
    grid = np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
    if path is not None:
        plt = _pyplot()
        size = preprocess.img_size
        fig, ax = plt.subplots(figsize=(1.1 * (k + 1), 1.1 * n + 0.6))
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([size * (j + 0.5) for j in range(k + 1)], ["input", *classes], rotation=30, fontsize=8)
        ax.set_yticks([size * (i + 0.5) for i in range(n)], list(labels) if labels else [""] * n, fontsize=7)
        ax.tick_params(length=0)
        ax.set_title("synthesis: input face (rows) x target expression (columns)", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return grid

"""Measuring a model: predictions and metrics (accuracy, macro-F1, per-class recall, confusion).

How sure a difference between two models is: :mod:`model_core.comparison`; the figures: :mod:`model_core.figures`.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from .checkpoint import LoadedModel
from .data import FaceDataset, Records
from .data.dataset import FaceFinder
from .fersnet import FERSNet, Head
from .preprocess import Preprocess
from .prior import PriorName

#: Turns a head's logits into the probabilities a user is answered (:meth:`LoadedModel.probabilities`).
Answer = Callable[[Tensor], Tensor]


@dataclass
class Metrics:
    """Scores on one split. ``accuracy``, ``macro_f1``, the recalls, precisions and the confusion matrix score the plain
    argmax over all the model's classes; ``accuracy_restricted`` the best of the classes the set contains."""

    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]
    #: Of the answers of each class, the share that was right: how far a user can trust that answer. Under a
    #: balanced prior a rare class is answered more often, so its recall rises and its precision falls.
    per_class_precision: dict[str, float]
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
        lines += ["", f"{'class':<{width}}{'recall':>8}{'precision':>11}{'F1':>8}"]
        lines += [f"{c:<{width}}{100 * self.per_class_recall[c]:>7.1f}%{100 * self.per_class_precision[c]:>10.1f}%"
                  f"{100 * self.per_class_f1[c]:>7.1f}%" for c in self.classes]
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
    """Accuracy, macro-F1, per-class recall and precision, and the confusion matrix from integer labels.

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
        per_class_precision={c: float(v) for c, v in zip(classes, precision, strict=True)},
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

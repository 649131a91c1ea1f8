"""Calibrated probabilities: one temperature, fitted on a validation split (Guo et al., ICML 2017).

A model's softmax is rarely a probability one can act on. Ours errs the other
way from most: trained on smoothed and distilled labels and averaged into a
soup, the bundled model says 52 % on average where it is right 66 % of the
time. Dividing the logits by one temperature ``T`` (below 1 sharpens, above 1
softens) fixes most of that without moving any prediction: the argmax, and so
the accuracy, cannot change. ``T`` is fitted by minimising the negative
log-likelihood on a validation split, and travels in the model card
(``card.calibration``), so the service, the CLI and any reader of the card
apply the same one. The trainer fits it on the validation split when it
finishes; ``fersnet calibrate`` fits it for any checkpoint (a soup, say).

The expected calibration error (ECE) is the gap between confidence and
accuracy, averaged over 15 equal-width confidence bins weighted by how many
faces fall in each: 0 when "80 % sure" is right 80 % of the time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from .card import Calibration
from .checkpoint import LoadedModel, write_card
from .data import FaceDataset
from .fersnet import FERSNet, Head

ECE_BINS = 15


def fit_temperature(logits: Tensor, labels: Tensor, max_iter: int = 200) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` under ``softmax(logits / T)``.

    Optimised over log T (so T stays positive) with L-BFGS: the objective is
    smooth and one-dimensional, and converges in a few dozen steps.
    """
    logits = logits.detach().float()
    log_t = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp())


def expected_calibration_error(probs: Tensor, labels: Tensor, bins: int = ECE_BINS) -> float:
    """Confidence minus accuracy, averaged over equal-width confidence bins weighted by their share of images."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    gap = torch.zeros(())
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            gap += in_bin.float().mean() * (correct[in_bin].mean() - confidence[in_bin].mean()).abs()
    return float(gap)


def dataset_logits(
    model: FERSNet,
    model_classes: Sequence[str],
    dataset: FaceDataset,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    head: Head = "served",
) -> tuple[Tensor, Tensor]:
    """The logits (float32, CPU) of the model's ``head`` and the labels as indices into that head's classes
    (``model_classes``), for an :func:`~model_core.evaluate.evaluation_set` (the images whose class the model has: a
    class it lacks has no probability to calibrate). Takes the set a caller already decoded to measure accuracy, so
    nothing is decoded twice. The served head is the one a card's temperature calibrates."""
    return heads_logits(model, {head: model_classes}, dataset, device, batch_size)[head]


@torch.no_grad()  # not inference_mode: its tensors could not enter fit_temperature's autograd
def heads_logits(
    model: FERSNet,
    classes_of: Mapping[Head, Sequence[str]],
    dataset: FaceDataset,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> dict[Head, tuple[Tensor, Tensor]]:
    """:func:`dataset_logits` for each head of ``classes_of`` (a head and its classes), from one pass of the model
    over ``dataset`` (:meth:`~model_core.fersnet.FERSNet.classify_heads` where there are two): on a CPU a pass of the
    default over a FER2013 split takes minutes. Every class of the set must be one of each head's."""
    for head, classes in classes_of.items():
        if missing := [c for c in dataset.classes if c not in classes]:
            raise ValueError(f"the {head} head has no class {', '.join(missing)} of the set, so it has no logit to score")
    to_model = {head: torch.tensor([list(classes).index(c) for c in dataset.classes]) for head, classes in classes_of.items()}
    model.eval()
    logits: dict[Head, list[Tensor]] = {head: [] for head in classes_of}
    labels: list[Tensor] = []
    for images, label, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator()):
        images = images.to(device)
        answers = model.classify_heads(images) if len(classes_of) > 1 else {h: model.classify(images, h) for h in classes_of}
        for head in classes_of:
            logits[head].append(answers[head].float().cpu())
        labels.append(label)
    return {head: (torch.cat(logits[head]), to_model[head][torch.cat(labels)]) for head in classes_of}


@dataclass
class CalibrationMetrics:
    """How well ``softmax(logits / temperature)`` states its own accuracy on one split."""

    temperature: float
    nll: float
    ece: float
    mean_confidence: float
    accuracy: float
    images: int

    @classmethod
    def measure(cls, logits: Tensor, labels: Tensor, temperature: float = 1.0) -> CalibrationMetrics:
        scaled = logits.float() / temperature
        probs = scaled.softmax(dim=1)
        return cls(
            temperature=round(temperature, 4),
            nll=round(float(F.cross_entropy(scaled, labels)), 4),
            ece=round(expected_calibration_error(probs, labels), 4),
            mean_confidence=round(float(probs.max(dim=1).values.mean()), 4),
            accuracy=round(float((probs.argmax(dim=1) == labels).float().mean()), 4),
            images=int(len(labels)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reliability_diagram(splits: dict[str, tuple[Tensor, Tensor]], temperature: float, path: Path, bins: int = ECE_BINS) -> None:
    """Accuracy against confidence, before and after scaling, one panel per split; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 4.2), squeeze=False)
    edges = np.linspace(0, 1, bins + 1)
    for ax, (name, (logits, labels)) in zip(axes[0], splits.items(), strict=True):
        for t, style in ((1.0, "o--"), (temperature, "s-")):
            probs = (logits.float() / t).softmax(dim=1)
            confidence, predicted = (v.numpy() for v in probs.max(dim=1))
            correct = (predicted == labels.numpy()).astype(float)
            which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
            xs = [confidence[which == b].mean() for b in range(bins) if (which == b).sum() >= 10]
            ys = [correct[which == b].mean() for b in range(bins) if (which == b).sum() >= 10]
            ece = 100 * expected_calibration_error(probs, labels, bins)
            ax.plot(xs, ys, style, label=f"T = {t:.2f}: ECE {ece:.1f} %")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (bins of at least 10 faces)", ylabel="accuracy", title=name)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def calibrate(splits: dict[str, tuple[Tensor, Tensor]], fit_on: str, fitted_from: str, command: str) -> Calibration:
    """Fit the temperature on ``splits[fit_on]`` (logits, labels), measure every split before and after,
    and return the card's ``calibration`` section. The stored temperature is rounded, and the one measured."""
    temperature = round(fit_temperature(*splits[fit_on]), 4)
    return Calibration(
        temperature=temperature,
        method="temperature scaling: softmax(logits / temperature), temperature minimising the NLL (L-BFGS)",
        fitted_on=fitted_from,
        command=command,
        measured={
            key: {"before": CalibrationMetrics.measure(z, y).to_dict(), "after": CalibrationMetrics.measure(z, y, temperature).to_dict()}
            for key, (z, y) in splits.items()
        },
    )


def calibrate_checkpoint(
    loaded: LoadedModel, splits: dict[str, tuple[Tensor, Tensor]], fitted_from: str, command: str
) -> Calibration:
    """Fit ``loaded``'s temperature on the first of ``splits`` (logits, labels), measure it on all, and write it on the
    checkpoint's card; returns the card's new ``calibration`` section.

    Only ``card.json`` is rewritten: the weights, and so their hash, stay as they are, and the
    temperature is what every reader of the card (the service, the CLI) divides the logits by.
    ``fitted_from`` says where the first split came from (dataset, split and folder), ``command``
    what wrote it, so the card can be checked later.
    """
    calibration = calibrate(splits, next(iter(splits)), fitted_from, command)
    loaded.card.calibration = calibration
    write_card(loaded.path, loaded.card)
    return calibration

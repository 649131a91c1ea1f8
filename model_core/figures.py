"""Figures of a measurement or a run: the confusion matrix, the training curves, a grid of synthesised faces.

Matplotlib is imported only when a figure is drawn (:func:`pyplot`, on the file-only Agg backend), so measuring
without figures never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .evaluate import Metrics
from .expressions import one_hot
from .fersnet import FERSNet
from .preprocess import Preprocess


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(metrics: Metrics, path: Path, title: str = "") -> Path:
    """The row-normalised confusion matrix as a PNG; answers of a class the set never uses get their own columns."""
    plt = pyplot()
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
    plt = pyplot()
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
    targets: Sequence[int] | None = None,
) -> np.ndarray:
    """Input faces down the rows, one column per target expression drawn at ``intensity`` (``targets``: indices into
    ``classes``, the model's expressions; default every one); saved as PNG if ``path`` is given."""
    model.eval()
    device = next(model.parameters()).device
    images = images.to(device)
    chosen = list(range(len(classes))) if targets is None else list(targets)
    n, k = images.shape[0], len(chosen)
    features = model.forward_features(images)
    columns = [images]
    for c in chosen:
        columns.append(model.decode(features, one_hot([c] * n, len(classes), device=device), intensity))
    tiles = [[preprocess.to_uint8(col[i]) for col in columns] for i in range(n)]
    grid = np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
    if path is not None:
        plt = pyplot()
        size = preprocess.img_size
        fig, ax = plt.subplots(figsize=(1.1 * (k + 1), 1.1 * n + 0.6))
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([size * (j + 0.5) for j in range(k + 1)], ["input", *(classes[c] for c in chosen)], rotation=30,
                      fontsize=8)
        ax.set_yticks([size * (i + 0.5) for i in range(n)], list(labels) if labels else [""] * n, fontsize=7)
        ax.tick_params(length=0)
        ax.set_title("synthesis: input face (rows) x target expression (columns)", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120, format="png")
        plt.close(fig)
    return grid

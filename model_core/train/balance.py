"""Synthesis-based enlarging and balancing, the paper's second idea.

FER datasets are badly skewed (FER2013: 436 disgust faces against 7,215
happy). A trained FERSNet redraws faces of the common expressions with a rare
one until every class reaches ``target`` images. The faces are written as a
class-per-folder tree (readable with ``--dataset folder``) with a
``manifest.csv`` that says where each came from::

    file,source,source_expression,target_expression,confidence

``confidence`` is the model's own FER verdict on the fake; ``min_confidence``
drops fakes that do not show their target convincingly. The fine-tuning
recipe ``training/configs/fer2013_balanced.yaml`` then trains FER on real plus
synthetic faces.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import LoadedModel
from ..data import FaceDataset, Records
from ..expressions import one_hot


@dataclass
class BalanceReport:
    out_dir: Path
    before: dict[str, int]
    written: dict[str, int]
    rejected: dict[str, int]

    def table(self) -> str:
        lines = [f"{'class':<10}{'real':>8}{'synthetic':>11}{'rejected':>10}{'total':>8}"]
        for c, n in self.before.items():
            w = self.written.get(c, 0)
            lines.append(f"{c:<10}{n:>8}{w:>11}{self.rejected.get(c, 0):>10}{n + w:>8}")
        return "\n".join(lines)


@torch.inference_mode()
def balance(
    loaded: LoadedModel,
    records: Records,
    out_dir: str | Path,
    target: int | None = None,
    min_confidence: float = 0.0,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> BalanceReport:
    """Synthesise faces of under-represented classes until each has ``target`` (default: the largest class)."""
    model, pre, classes = loaded.model, loaded.preprocess, loaded.expressions  # what the generator draws
    if not model.has_synthesis:
        raise ValueError(f"{loaded.path}: this model has no synthesis branch (sharing='none')")
    dataset = FaceDataset(records, pre, classes=classes, drop_unknown_labels=True)
    counts = np.bincount(dataset.labels, minlength=len(classes))
    target = int(target or counts.max())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written: dict[str, int] = {}
    rejected: dict[str, int] = {}
    present = np.array([name in records.classes for name in classes])
    total_needed = int(np.clip(target - counts, 0, None)[present].sum())
    bar = tqdm(total=total_needed, desc="synthesising", disable=not progress)
    with open(out_dir / "manifest.csv", "w", newline="") as f:
        manifest = csv.writer(f)
        manifest.writerow(["file", "source", "source_expression", "target_expression", "confidence"])
        for c, name in enumerate(classes):
            need = target - int(counts[c])
            if need <= 0 or name not in records.classes:  # only classes the dataset has are balanced
                continue
            (out_dir / name).mkdir(exist_ok=True)
            donors = rng.permutation(np.flatnonzero(dataset.labels != c))
            written[name] = rejected[name] = 0
            cursor = 0
            while written[name] < need and cursor < len(donors):
                chunk = donors[cursor: cursor + batch_size]
                cursor += len(chunk)
                images = torch.stack([dataset[int(i)][0] for i in chunk]).to(device)
                fakes = model.synthesize(images, one_hot([c] * len(chunk), len(classes), device=device))
                confidence = model.classify(fakes, head="expression").softmax(1)[:, c].cpu()
                for i, fake, p in zip(chunk, fakes, confidence, strict=True):
                    if written[name] >= need:
                        break
                    if float(p) < min_confidence:
                        rejected[name] += 1
                        continue
                    file = f"{name}/syn_{written[name]:06d}.png"
                    pre.to_image(fake).save(out_dir / file)
                    src = dataset.records[int(i)]
                    manifest.writerow([file, src.source, classes[int(dataset.labels[i])], name, f"{float(p):.4f}"])
                    written[name] += 1
                    bar.update(1)
    bar.close()
    before = {name: int(n) for name, n, p in zip(classes, counts, present, strict=True) if p}
    return BalanceReport(out_dir, before, written, rejected)

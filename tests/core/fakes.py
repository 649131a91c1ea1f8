"""Fake data for model_core tests: synthetic 'faces' whose class is visible in the pixels.

The images are 48x48 grey with a class-dependent pattern (a brightness level
and a bar position), so a tiny network can learn them in a few steps, and so
that a wrong label shows up as a wrong prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model_core import LoadedModel, load_checkpoint
from model_core.fersnet import FERSNet

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def face(label: int, seed: int, size: int = 48) -> np.ndarray:
    """A synthetic face whose class is visible: brightness and a bar position depend on the label."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 40 + 25 * label, dtype=np.float32)
    row = 4 + 5 * label
    image[row: row + 4, 8:40] = 250
    image += rng.normal(0, 8, image.shape)
    return image.clip(0, 255).astype(np.uint8)


def tiny_recipe(tmp_path: Path, train_root: Path, **extra: object) -> dict:
    """A fast recipe on the fake FER2013 folder, as a dict ready for TrainConfig or YAML."""
    recipe = {
        "name": "tiny",
        "out_dir": str(tmp_path / "run"),
        "seed": 0,
        "model": {"variant": "fersnet_tiny", "sharing": "selective"},
        "train": [{"dataset": "fer2013", "root": str(train_root), "split": "train"}],
        "val": {"dataset": "fer2013", "root": str(train_root), "split": "val"},
        "report": [{"dataset": "fer2013", "root": str(train_root), "split": "test"}],
        "optim": {"epochs": 2, "batch_size": 8, "lr": 0.003, "warmup_epochs": 0.1},
        "num_workers": 0,
        "progress": False,
    }
    recipe.update(extra)
    return recipe


def flat_parameters(model: FERSNet) -> torch.Tensor:
    """Every parameter of ``model`` in one vector: two models are the same network when these are equal."""
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def perturbed(base: Path, scale: float, seed: int) -> LoadedModel:
    """A copy of ``base`` with Gaussian noise on every parameter: a stand-in for one fine-tuning of it."""
    loaded = load_checkpoint(base)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return loaded

"""A checkpoint made ready to leave this package: re-saved smaller, or its classifier alone as a torch.export program.

A re-saved checkpoint is still a checkpoint (``model.safetensors`` + ``card.json``), loadable by
:func:`~model_core.checkpoint.load_checkpoint`; its card says which weights it came from. The
exported program is for runtimes without this package: it holds the recognition path only (no
synthesis branch, no discriminator) and returns probabilities already divided by the card's
temperature and under the card's default class prior (:mod:`model_core.prior`), so a reader of the
program gets the same answer as the service.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .checkpoint import LoadedModel, save_checkpoint
from .fersnet import FERSNet
from .prior import reweigh

#: The largest batch the exported program accepts (its batch dimension is dynamic from 1 to this).
MAX_EXPORT_BATCH = 1024


class CalibratedClassifier(torch.nn.Module):
    """The recognition path alone, returning calibrated probabilities: what an exported classifier needs.

    With the training frequencies of the classes (``balanced_from``) they answer as if every class were equally
    likely (:func:`model_core.prior.reweigh`), as a card whose default prior is ``balanced`` does."""

    def __init__(self, model: FERSNet, temperature: float = 1.0, balanced_from: Sequence[float] | None = None) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature
        self.balanced_from = None if balanced_from is None else list(balanced_from)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probabilities = (self.model.classify(images).float() / self.temperature).softmax(1)
        if self.balanced_from is None:
            return probabilities
        return reweigh(probabilities, self.balanced_from, "balanced")

    @classmethod
    def of(cls, loaded: LoadedModel) -> CalibratedClassifier:
        """``loaded``'s served answer, as the service gives it: its card's temperature and default prior."""
        return cls(loaded.model, loaded.temperature, loaded.frequencies if loaded.prior == "balanced" else None)


def resave_checkpoint(loaded: LoadedModel, out: str | Path, half: bool = False, name: str | None = None,
                      test_time_zooms: Sequence[float] | None = None) -> Path:
    """``loaded`` saved again under ``out`` (float16 weights with ``half``: half the size); returns ``out``.

    The card keeps everything but the weights' own section (rewritten for the new file) and the
    date, and records the original weights' hash as ``exported_from``, so the copy can be traced.
    ``name`` renames it. ``test_time_zooms`` changes how it looks at a face
    (:attr:`~model_core.fersnet.FERSNetConfig.test_time_zooms`): its answers change, so the card's
    metrics and temperature, which described the old answers, are dropped, to be measured anew
    (``fersnet calibrate``, ``fersnet evaluate --record``).
    """
    model = loaded.model
    changes: dict[str, Any] = {"exported_from": loaded.sha256}
    if name is not None:
        changes["name"] = name
    if test_time_zooms is not None and changes_looks(model, test_time_zooms):
        model = with_test_time_zooms(model, test_time_zooms)
        changes |= {"config": model.config, "metrics": {}, "calibration": None}
    return save_checkpoint(out, model, loaded.card.redraft(**changes), half=half)


def changes_looks(model: FERSNet, zooms: Sequence[float]) -> bool:
    """Whether looking at faces zoomed by ``zooms`` differs from how ``model`` looks now (and so changes its answers)."""
    return tuple(zooms) != model.config.test_time_zooms


def with_test_time_zooms(model: FERSNet, zooms: Sequence[float]) -> FERSNet:
    """The same weights in a network that also looks at each face zoomed by ``zooms``."""
    looking = FERSNet(dataclasses.replace(model.config, test_time_zooms=tuple(zooms)))
    looking.load_state_dict(model.state_dict())
    return looking.eval()


def export_classifier(loaded: LoadedModel, out: str | Path) -> Path:
    """``loaded``'s classifier as a ``torch.export`` program at ``out`` (load with ``torch.export.load``).

    Input: (N, channels, size, size) images normalised as the card's ``input`` says, N from 1 to
    :data:`MAX_EXPORT_BATCH`; output: the probabilities of the card's classes, as the service answers them.
    """
    cfg = loaded.model.config
    example = torch.zeros(2, cfg.in_chans, cfg.img_size, cfg.img_size)
    batch = torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)
    classifier = CalibratedClassifier.of(loaded).eval()
    program = torch.export.export(classifier, (example,), dynamic_shapes=({0: batch},))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(out))
    return out

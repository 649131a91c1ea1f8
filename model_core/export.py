"""A checkpoint made ready to leave this package: re-saved smaller, or its classifier alone as a torch.export program.

A re-saved checkpoint is still a checkpoint (``model.safetensors`` + ``card.json``), loadable by
:func:`~model_core.checkpoint.load_checkpoint`; its card says which weights it came from. The
exported program is for runtimes without this package: it holds the recognition path only (no
synthesis branch, no discriminator) and returns probabilities already divided by the card's
temperature, so a reader of the program gets the same calibrated answer as the service.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import LoadedModel, save_checkpoint
from .fersnet import FERSNet

#: The largest batch the exported program accepts (its batch dimension is dynamic from 1 to this).
MAX_EXPORT_BATCH = 1024


class CalibratedClassifier(torch.nn.Module):
    """The recognition path alone, returning calibrated probabilities: what an exported classifier needs."""

    def __init__(self, model: FERSNet, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.model.classify(images) / self.temperature).softmax(1)


def resave_checkpoint(loaded: LoadedModel, out: str | Path, half: bool = False) -> Path:
    """``loaded`` saved again under ``out`` (float16 weights with ``half``: half the size); returns ``out``.

    The card keeps everything but the weights' own section (rewritten for the new file) and the
    date, and records the original weights' hash as ``exported_from``, so the copy can be traced.
    """
    return save_checkpoint(out, loaded.model, loaded.card.redraft(exported_from=loaded.sha256), half=half)


def export_classifier(loaded: LoadedModel, out: str | Path) -> Path:
    """``loaded``'s classifier as a ``torch.export`` program at ``out`` (load with ``torch.export.load``).

    Input: (N, channels, size, size) images normalised as the card's ``input`` says, N from 1 to
    :data:`MAX_EXPORT_BATCH`; output: the calibrated probabilities of the card's classes.
    """
    cfg = loaded.model.config
    example = torch.zeros(2, cfg.in_chans, cfg.img_size, cfg.img_size)
    batch = torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)
    classifier = CalibratedClassifier(loaded.model, loaded.temperature).eval()
    program = torch.export.export(classifier, (example,), dynamic_shapes=({0: batch},))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(out))
    return out

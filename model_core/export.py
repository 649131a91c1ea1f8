"""A checkpoint made ready to leave this package: re-saved smaller, or its classifier alone as a program.

A re-saved checkpoint is still a checkpoint (``model.safetensors`` + ``card.json``), loadable by
:func:`~model_core.checkpoint.load_checkpoint`; its card says which weights it came from. The
exported programs are for runtimes without this package: a ``torch.export`` program (``.pt2``, for
PyTorch without this package) or an ONNX graph (``.onnx``, for ONNX Runtime in any language, with no
PyTorch at all). Each holds the recognition path only (no synthesis branch, no discriminator), the
face's looks included, and returns probabilities already divided by the card's temperature and under
the card's default class prior (:mod:`model_core.prior`), so a reader of the program gets the same
answer as the service.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from .checkpoint import LoadedModel, save_checkpoint
from .fersnet import FERSNet, FERSNetConfig
from .prior import reweigh

#: The largest batch the exported program accepts (its batch dimension is dynamic from 1 to this).
MAX_EXPORT_BATCH = 1024

#: The largest difference of any probability between an exported graph and the model that ``fersnet export``
#: accepts: float32 arithmetic in another order (fused operators) moves them by about 1e-6.
ONNX_TOLERANCE = 1e-4

#: What ``pip`` needs for :func:`export_onnx` and :func:`onnx_difference`: the package's ``onnx`` extra.
ONNX_EXTRA = "pip install 'fersnet[onnx]' (onnxscript, onnx and onnxruntime)"


class ExportError(Exception):
    """An export this installation cannot make (a package it needs is missing), or one whose program does not
    answer as the model does."""


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
    example, dynamic_shapes = _example_batch(loaded.model.config)
    program = torch.export.export(CalibratedClassifier.of(loaded).eval(), example, dynamic_shapes=dynamic_shapes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(out))
    return out


def export_onnx(loaded: LoadedModel, out: str | Path) -> Path:
    """``loaded``'s classifier as an ONNX graph at ``out``, for ONNX Runtime (no PyTorch needed to run it).

    Input ``faces``: (N, channels, size, size) float32 images normalised as the card's ``input`` says, N from
    1 to :data:`MAX_EXPORT_BATCH`; output ``probabilities``: the card's classes, as the service answers them.
    The graph's metadata (``metadata_props``) carries what a reader needs to feed and read it: the classes in
    order, the input's size and normalisation, the prior, and the checkpoint's name and weights' hash.
    """
    graph = onnx_program(CalibratedClassifier.of(loaded), loaded.model.config).model_proto  # a new copy each read
    metadata = {
        "fersnet.name": loaded.card.name,
        "fersnet.weights_sha256": loaded.sha256,
        "fersnet.classes": json.dumps(list(loaded.classes)),
        "fersnet.input": json.dumps(loaded.preprocess.to_dict()),
        "fersnet.prior": loaded.prior,
        "fersnet.temperature": repr(loaded.temperature),
    }
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(graph.SerializeToString())
    return out


def onnx_program(classifier: torch.nn.Module, config: FERSNetConfig) -> Any:
    """``classifier`` (images in, one row a face out) traced to an ONNX program with a dynamic batch.

    The exporter (``torch.onnx.export(dynamo=True)``, built on ``torch.export``) needs ``onnxscript``, an
    optional dependency; without it this raises :class:`ExportError` saying what to install.
    """
    onnx_module("onnxscript", "exporting to ONNX")  # the exporter imports it lazily and fails deep inside otherwise
    example, dynamic_shapes = _example_batch(config)
    return torch.onnx.export(classifier.eval(), example, dynamo=True, input_names=["faces"],
                             output_names=["probabilities"], dynamic_shapes=dynamic_shapes, verbose=False)


def _example_batch(config: FERSNetConfig) -> tuple[tuple[torch.Tensor], tuple[dict[int, Any]]]:
    """An example input for tracing a classifier of ``config``'s faces, and its batch dimension marked dynamic
    (from 1 to :data:`MAX_EXPORT_BATCH`; the example holds two faces, since a traced 1 would be taken as fixed)."""
    example = torch.zeros(2, config.in_chans, config.img_size, config.img_size)
    return (example,), ({0: torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)},)


def onnx_difference(loaded: LoadedModel, path: str | Path, faces: int = 16, seed: int = 0) -> float:
    """The largest difference between the probabilities ONNX Runtime computes from the graph at ``path`` and the
    service's answer (:class:`CalibratedClassifier`), over ``faces`` random images: how to know an export holds.

    Raises :class:`ExportError` where onnxruntime is not installed.
    """
    onnxruntime = onnx_module("onnxruntime", "checking an ONNX graph")
    cfg = loaded.model.config
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(faces, cfg.in_chans, cfg.img_size, cfg.img_size, generator=generator) * 2 - 1
    with torch.inference_mode():
        expected = CalibratedClassifier.of(loaded).eval()(images)
    runner = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (answered,) = runner.run(["probabilities"], {"faces": images.numpy()})
    return float((torch.from_numpy(answered) - expected).abs().max())


def onnx_module(name: str, needed_for: str) -> ModuleType:
    """The ``onnx`` extra's package ``name``, imported; :class:`ExportError` saying what to install where it is
    missing (``needed_for`` says what it was wanted for)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ExportError(f"{needed_for} needs {name}: {ONNX_EXTRA}") from None


def require_onnx_extra() -> None:
    """Raise :class:`ExportError` unless both the exporter (onnxscript) and the runtime (onnxruntime) import: a
    checked export needs both, and should learn it before tracing the model, not after."""
    onnx_module("onnxscript", "exporting to ONNX")
    onnx_module("onnxruntime", "checking an ONNX graph")

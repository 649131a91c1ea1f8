"""Checkpoints leaving the package (model_core.export): re-saved with their origin, or as a calibrated classifier."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from model_core import create_model, load_checkpoint
from model_core.card import Prior
from model_core.checkpoint import LoadedModel, write_card
from model_core.export import (
    ONNX_TOLERANCE,
    CalibratedClassifier,
    ExportError,
    export_classifier,
    export_onnx,
    onnx_difference,
    resave_checkpoint,
)
from model_core.expressions import FERPLUS_CLASSES

from ..shared_fixtures import MakeCheckpoint


def test_a_resaved_half_checkpoint_names_the_weights_it_came_from(make_checkpoint: MakeCheckpoint,
                                                                  tmp_path: Path) -> None:
    loaded = load_checkpoint(make_checkpoint())
    half = load_checkpoint(resave_checkpoint(loaded, tmp_path / "half", half=True))
    assert half.card.exported_from == loaded.sha256 != half.sha256
    assert half.card.weights.dtype == "float16" and half.classes == loaded.classes
    x = torch.rand(2, 1, 48, 48)
    assert torch.allclose(half.model.classify(x), loaded.model.classify(x), atol=1e-2)


def test_the_exported_classifier_answers_calibrated_probabilities() -> None:
    model = create_model("fersnet_tiny").eval()
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        probs = CalibratedClassifier(model, temperature=0.5)(x)
        assert torch.allclose(probs, (model.classify(x) * 2).softmax(1), atol=1e-6)


@pytest.fixture
def default_shaped(make_checkpoint: MakeCheckpoint) -> LoadedModel:
    """A tiny checkpoint of the default's shape: flip averaging, an answer tail, a balanced prior."""
    folder = make_checkpoint(answer=FERPLUS_CLASSES, flip_average=True)
    card = load_checkpoint(folder).card
    card.prior = Prior(frequencies=dict(zip(FERPLUS_CLASSES, [0.1, 0.02, 0.05, 0.25, 0.15, 0.1, 0.31, 0.02], strict=True)),
                       default="balanced")
    write_card(folder, card)
    return load_checkpoint(folder)


def test_an_exported_two_headed_mirror_averaging_classifier_keeps_its_batch_dynamic_and_its_prior(
        default_shaped: LoadedModel, tmp_path: Path) -> None:
    """The default's shape: flip averaging, an answer tail, a balanced prior. Exported once, it answers any batch size
    exactly as the service does (LoadedModel.probabilities)."""
    loaded = default_shaped
    program = torch.export.load(str(export_classifier(loaded, tmp_path / "classifier.pt2"))).module()
    for n in (1, 3):
        x = torch.rand(n, 1, 48, 48) * 2 - 1
        with torch.no_grad():
            assert torch.allclose(program(x), loaded.probabilities(loaded.model.classify(x)), atol=1e-5)


def test_an_onnx_graph_answers_as_the_service_does_and_names_its_classes(default_shaped: LoadedModel,
                                                                         tmp_path: Path) -> None:
    """The default's shape again (looks, answer tail, balanced prior), run by ONNX Runtime without PyTorch: any
    batch size, the service's probabilities, and the metadata a reader needs to feed it and name its columns."""
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    loaded = default_shaped
    path = export_onnx(loaded, tmp_path / "classifier.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        x = torch.rand(n, 1, 48, 48) * 2 - 1
        (answered,) = session.run(["probabilities"], {"faces": x.numpy()})
        with torch.no_grad():
            assert torch.allclose(torch.from_numpy(answered), loaded.probabilities(loaded.model.classify(x)), atol=1e-5)
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["fersnet.classes"]) == list(FERPLUS_CLASSES)
    assert metadata["fersnet.prior"] == "balanced" and metadata["fersnet.weights_sha256"] == loaded.sha256
    assert json.loads(metadata["fersnet.input"])["img_size"] == 48
    assert onnx_difference(loaded, path) < ONNX_TOLERANCE


def test_an_onnx_export_without_its_packages_says_what_to_install(make_checkpoint: MakeCheckpoint, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now raises ImportError
    with pytest.raises(ExportError, match=r"pip install 'fersnet\[onnx\]'"):
        export_onnx(load_checkpoint(make_checkpoint()), tmp_path / "classifier.onnx")
    assert not (tmp_path / "classifier.onnx").exists()

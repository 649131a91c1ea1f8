"""The engine: padding to fixed batch shapes, warm-up of every shape, results independent of padding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from model_core import CheckpointError
from service.engine import Engine, default_batch_sizes
from service.settings import Settings


def test_default_cuda_shapes_are_powers_of_two_up_to_the_limit() -> None:
    assert default_batch_sizes(32) == [1, 2, 4, 8, 16, 32]
    assert default_batch_sizes(24) == [1, 2, 4, 8, 16, 24]
    assert default_batch_sizes(1) == [1]


def test_padding_changes_no_result(make_settings: Callable[..., Settings]) -> None:
    plain = Engine.load(make_settings())
    padded = Engine.load(make_settings(batch_sizes=[1, 4, 8]))
    assert plain.batch_sizes is None and plain.warmup_sizes == [1, 8]
    assert padded.warmup_sizes == [1, 4, 8]
    assert padded._padded(torch.zeros(3, 1, 48, 48)).shape[0] == 4
    assert padded._padded(torch.zeros(9, 1, 48, 48)).shape[0] == 9  # past max_batch_size (the batcher's to bound): as is
    torch.manual_seed(1)
    images = torch.rand(3, 1, 48, 48) * 2 - 1
    targets = torch.eye(7)[[3, 5, 6]]
    assert torch.allclose(plain.classify(images), padded.classify(images), atol=1e-5)
    assert torch.allclose(plain.synthesize(images, targets), padded.synthesize(images, targets), atol=1e-5)
    assert padded.classify(images).shape == (3, 7)
    assert padded.warm_up() == [1, 4, 8]
    assert padded.memory_stats() == {}


def test_a_bad_checkpoint_stops_start_up(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        Engine.load(make_settings(checkpoint=str(tmp_path / "missing")))


def test_cuda_without_a_gpu_is_a_clear_error(make_settings: Callable[..., Settings]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        Engine.load(make_settings(device="cuda"))


def test_the_cards_temperature_calibrates_the_probabilities(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """A card with temperature 0.5 answers softmax(2 x logits): the same order, sharper probabilities."""
    import json
    import shutil

    plain = Engine.load(make_settings())
    calibrated_dir = tmp_path / "calibrated"
    shutil.copytree(plain.loaded.path, calibrated_dir)
    card = json.loads((calibrated_dir / "card.json").read_text())
    card["calibration"] = {"temperature": 0.5}
    (calibrated_dir / "card.json").write_text(json.dumps(card))
    calibrated = Engine.load(make_settings(checkpoint=str(calibrated_dir)))
    torch.manual_seed(2)
    images = torch.rand(4, 1, 48, 48) * 2 - 1
    p, q = plain.classify(images), calibrated.classify(images)
    assert torch.equal(p.argmax(1), q.argmax(1))
    assert torch.allclose(q, (2 * p.log()).softmax(1), atol=1e-5)


def test_bfloat16_on_the_cpu_answers_float32_close_to_float32(make_settings: Callable[..., Settings]) -> None:
    exact = Engine.load(make_settings(cpu_precision="float32", channels_last=False))
    fast = Engine.load(make_settings(cpu_precision="bfloat16"))
    assert (fast.dtype, fast.precision, fast.channels_last) == (torch.bfloat16, "bfloat16", True)
    torch.manual_seed(3)
    images = torch.rand(5, 1, 48, 48) * 2 - 1
    targets = torch.eye(7)[[0, 1, 2, 3, 4]]
    p, q = exact.classify(images), fast.classify(images)
    assert q.dtype == torch.float32 and torch.allclose(q.sum(1), torch.ones(5), atol=1e-4)
    assert (p - q).abs().max() < 0.05
    faces = fast.synthesize(images, targets)
    assert faces.dtype == torch.float32 and faces.shape == (5, 1, 48, 48)
    assert (faces - exact.synthesize(images, targets)).abs().max() < 0.1


def test_auto_cpu_precision_follows_the_processor(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    import service.engine as engine_module

    for native, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(engine_module, "cpu_has_native_bfloat16", lambda native=native: native)
        assert engine_module.resolve_dtype(torch.device("cpu"), make_settings(cpu_precision="auto")) == expected
    assert engine_module.resolve_dtype(torch.device("cuda"), make_settings(precision="float16")) == torch.float16

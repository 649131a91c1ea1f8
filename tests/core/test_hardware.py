"""One device rule for training, evaluation and serving (resolve_device), and one memory layout rule (lay_out_for)."""

from __future__ import annotations

import pytest
import torch

from model_core.hardware import DeviceError, resolve_device


def test_auto_is_cuda_where_there_is_a_gpu_else_the_cpu() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_a_gpu_names_where_it_was_asked_for() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match=r"^FERSNET_DEVICE=cuda but PyTorch sees no CUDA GPU"):
        resolve_device("cuda", setting="FERSNET_DEVICE")
    with pytest.raises(RuntimeError, match=r"^--device=cuda:1 but"):  # a DeviceError is a RuntimeError
        resolve_device("cuda:1")


def test_a_network_is_laid_out_channels_last_on_the_cpu_only_and_answers_the_same() -> None:
    """The CLI's commands and the service lay a network out by one rule; the layout changes speed, not answers."""
    from model_core import create_model
    from model_core.hardware import lay_out_for

    model = create_model("fersnet_small", num_classes=7).eval()
    faces = torch.rand(4, 1, 48, 48)
    with torch.inference_mode():
        before = model.classify(faces)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert lay_out_for(model, torch.device("cuda")) is False  # a rule, not a move: nothing changes for CUDA
    assert lay_out_for(model, torch.device("cpu"), channels_last=False) is False  # a setting overrides the rule
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert lay_out_for(model, torch.device("cpu")) is True
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(model.classify(faces), before, rtol=1e-4, atol=1e-4)

"""One device rule for training, evaluation and serving (model_core.hardware.resolve_device)."""

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

"""What the processor can do, and which device to run on, asked once for training, evaluation and serving alike."""

from __future__ import annotations

import functools
from contextlib import nullcontext
from typing import Any

import torch


@functools.cache
def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); emulated bfloat16 is slower than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:  # not Linux: no way to tell cheaply, keep float32
        return False
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and torch.backends.mkldnn.is_available()


def autocast_for(device: torch.device, cpu: bool = True) -> Any:
    """bfloat16 mixed precision where the hardware has it (CUDA, or with ``cpu`` a CPU with AVX-512 BF16), else nothing.

    bfloat16 keeps float32's range, so unlike float16 it needs no loss scaling; the losses
    themselves are computed in float32 (see :mod:`.losses`).
    """
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu and cpu_has_native_bfloat16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def prefers_channels_last(device: torch.device) -> bool:
    """Whether convolutions run faster with channels-last weights on ``device``: on the CPU, where oneDNN's
    kernels take that layout (1.17-1.29x float32, no prediction of PrivateTest changed: ``bench/precision.py``),
    and not on CUDA.

    The service (unless ``FERSNET_CHANNELS_LAST`` says otherwise) and every CLI command that runs a model lay
    their networks out so; a layout is not saved, so checkpoints are unaffected."""
    return device.type == "cpu"


def lay_out_for(model: torch.nn.Module, device: torch.device, channels_last: bool | None = None) -> bool:
    """Lay ``model`` (already on ``device``) out channels-last where that runs fastest there, or as ``channels_last``
    says where a setting decided; returns whether it is, so that a caller can lay its inputs out the same way."""
    if channels_last is None:
        channels_last = prefers_channels_last(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return channels_last


class DeviceError(RuntimeError):
    """A device that was asked for and is not there: a setting the user can fix, reported as one line."""


def resolve_device(requested: str, setting: str = "--device") -> torch.device:
    """The device ``requested`` names; 'auto' is CUDA when PyTorch sees a GPU, else the CPU.

    One rule for training, evaluation and serving, so that 'auto' means the same thing in every
    command and in the service. Asking for CUDA where there is none raises :class:`DeviceError`
    naming ``setting`` (where the user asked: ``--device``, ``FERSNET_DEVICE``, a recipe's
    ``device``) now, rather than a driver error deep in the first tensor moved there.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{setting}={requested} but PyTorch sees no CUDA GPU (use 'auto' or 'cpu')")
    return device

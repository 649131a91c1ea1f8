"""The loaded model on its device: precision, fixed batch shapes, warm-up.

:class:`Engine` is the only place that touches PyTorch at serving time. It

* loads the checkpoint through ``model_core.load_checkpoint`` (hash-checked
  safetensors, never pickle) onto CUDA when there is one, else the CPU;
* on CUDA runs in half precision and pads every batch up to one of a few
  fixed sizes, so cuDNN picks its kernels once during warm-up and no new
  shape (and no new allocation pattern) appears under load;
* on a CPU with native bfloat16 (AVX512-BF16 or AMX) runs in bfloat16, and on
  every CPU in channels-last memory layout, which oneDNN's convolutions prefer
  (``bench/precision.py`` measures both: speed, and that the predictions on
  FER2013's test split hold);
* runs the model once on a fixed test input at load, in the serving dtype,
  and refuses (``CheckpointError``) weights whose outputs are not finite: a
  model that overflows in half precision, or whose weights were poisoned
  (``load_checkpoint`` already refuses NaN parameters), never reaches ready.

Inputs arrive as float32 CPU tensors already normalised by the checkpoint's
:class:`~model_core.Preprocess`; outputs go back as float32 CPU tensors.

Its methods are plain synchronous calls: the thread they run on belongs to
the caller (in the service, :class:`service.batching.ComputeThread`), and so
does the size of a batch (the batcher's ``max_batch_size``).
"""

from __future__ import annotations

import logging
import time

import torch
from torch import Tensor

from model_core import CheckpointError, LoadedModel, load_checkpoint
from model_core.expressions import one_hot
from model_core.hardware import cpu_has_native_bfloat16, lay_out_for, resolve_device
from model_core.prior import PriorName

from .settings import Settings

log = logging.getLogger(__name__)

_DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def resolve_dtype(device: torch.device, settings: Settings) -> torch.dtype:
    """The dtype the model runs in: ``precision`` on CUDA; on the CPU ``cpu_precision`` ('auto': bfloat16 where native)."""
    if device.type == "cuda":
        return _DTYPES[settings.precision]
    if settings.cpu_precision == "auto":
        return torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32
    return _DTYPES[settings.cpu_precision]


def default_batch_sizes(max_batch_size: int) -> list[int]:
    """Powers of two below ``max_batch_size``, then ``max_batch_size`` itself: at most 2x padding waste."""
    sizes, size = [], 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch_size]


class Engine:
    """A checkpoint loaded for serving. Build it with :meth:`load`."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: torch.device,
        dtype: torch.dtype,
        batch_sizes: list[int] | None,
        max_batch_size: int,
        channels_last: bool = False,
        prior: PriorName | None = None,
    ) -> None:
        self.loaded = loaded
        #: The class prior /v1/classify answers under when a request names none: the operator's, else the card's.
        self.prior: PriorName = prior or loaded.prior
        self.model = loaded.model
        self.preprocess = loaded.preprocess
        #: What classification answers (the served head), and the expressions synthesis draws (its targets' classes):
        #: the same unless the model has an answer tail beside its expression head.
        self.classes = loaded.classes
        self.expressions = loaded.expressions
        self.device = device
        self.dtype = dtype
        #: Shapes batches are padded up to; None runs every batch at its own size (the CPU default).
        self.batch_sizes = batch_sizes
        self.max_batch_size = max_batch_size
        self.channels_last = channels_last

    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Load the configured checkpoint; raises ``model_core.CheckpointError`` for a bad one."""
        if settings.torch_threads is not None:
            torch.set_num_threads(settings.torch_threads)
        device = resolve_device(settings.device, setting="FERSNET_DEVICE")  # DeviceError: a RuntimeError
        dtype = resolve_dtype(device, settings)
        loaded = load_checkpoint(settings.checkpoint, device)
        if dtype != torch.float32:
            loaded.model.to(dtype)
        channels_last = lay_out_for(loaded.model, device, settings.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: the autotuned kernels are reused forever
            batch_sizes: list[int] | None = settings.batch_sizes or default_batch_sizes(settings.max_batch_size)
        else:
            batch_sizes = settings.batch_sizes
        if settings.prior is not None and settings.prior not in loaded.priors:
            raise CheckpointError(f"FERSNET_PRIOR={settings.prior}, but {loaded.path}'s card records no class frequencies "
                                  "to move its answers by (fersnet prior writes them)")
        engine = cls(loaded, device, dtype, batch_sizes, settings.max_batch_size, channels_last, settings.prior)
        engine.self_test()
        return engine

    def self_test(self) -> None:
        """Run both tasks on a fixed input (a blank face and seeded noise); CheckpointError unless every output is finite."""
        generator = torch.Generator().manual_seed(0)
        images = torch.cat([torch.zeros((1, *self.input_shape)), torch.rand((1, *self.input_shape), generator=generator) * 2 - 1])
        targets = one_hot([0, 1], len(self.expressions))
        problems = set()
        for i in range(2):  # one image per pass: batch 1 fits every padding and batch limit
            if not bool(torch.isfinite(self.classify(images[i : i + 1])).all()):
                problems.add("recognition")
            if self.has_synthesis and not bool(torch.isfinite(self.synthesize(images[i : i + 1], targets[i : i + 1])).all()):
                problems.add("synthesis")
        if problems:
            raise CheckpointError(
                f"{self.loaded.path}: the model's {' and '.join(sorted(problems))} outputs are NaN or infinite on a test input "
                f"({self.device}, {self.precision}); refusing to serve it"
            )

    # ------------------------------------------------------------------ facts

    @property
    def has_synthesis(self) -> bool:
        return self.model.has_synthesis

    @property
    def precision(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        cfg = self.model.config
        return cfg.in_chans, cfg.img_size, cfg.img_size

    @property
    def warmup_sizes(self) -> list[int]:
        """Every batch size that can run: the padded shapes, or (unpadded) the smallest and largest."""
        if self.batch_sizes is not None:
            return list(self.batch_sizes)
        return sorted({1, self.max_batch_size})

    # ------------------------------------------------------------------ forward passes

    def _padded(self, x: Tensor) -> Tensor:
        """``x`` padded with zeros up to the next fixed batch size (unchanged when unpadded).

        The largest fixed size is ``max_batch_size``, which the batcher never exceeds; a larger batch from
        another caller runs at its own size.
        """
        n = x.shape[0]
        if self.batch_sizes is None:
            return x
        size = next((s for s in self.batch_sizes if s >= n), n)
        if size == n:
            return x
        return torch.cat([x, x.new_zeros((size - n, *x.shape[1:]))])

    def _to_device(self, x: Tensor) -> Tensor:
        x = self._padded(x)
        if self.device.type == "cuda":
            x = x.pin_memory()
        x = x.to(self.device, self.dtype, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def classify(self, images: Tensor) -> Tensor:
        """Probabilities (B x classes, float32, CPU) for normalised images (B x C x H x W).

        Calibrated with the card's temperature (``fersnet calibrate``), so a
        confidence of 0.8 is right about 80 % of the time on the data it was
        fitted for; the most probable class is the same with or without it.
        """
        n = images.shape[0]
        logits = self.model.classify(self._to_device(images))[:n]
        return self.loaded.calibrated(logits).cpu()

    @torch.inference_mode()
    def synthesize(self, images: Tensor, targets: Tensor, sources: Tensor | None = None,
                   intensity: Tensor | float | None = None) -> Tensor:
        """Faces redrawn with ``targets`` (N x expressions distributions): N x C x H x W float32 in [-1, 1], CPU.

        ``sources[i]`` names the image that target i redraws (default: image i), so a face asked for
        several expressions is encoded once and decoded once per expression. ``intensity`` is one number,
        or one per target (:meth:`FERSNet.decode_parts`); by default the card's.
        """
        if intensity is None:
            intensity = self.loaded.intensity
        if isinstance(intensity, Tensor):
            intensity = intensity.to(self.device)
        n = targets.shape[0]
        if sources is None:
            sources = torch.arange(n)
        out = self.model.redraw(self._to_device(images), targets.to(self.device, self.dtype), sources.to(self.device), intensity)
        return out[:n].float().cpu()

    def warm_up(self) -> list[int]:
        """Run every batch shape once for each task, so no request pays for a first call; returns the sizes."""
        started = time.perf_counter()
        shape = self.input_shape
        for size in self.warmup_sizes:
            images = torch.zeros((size, *shape))
            self.classify(images)
            if self.has_synthesis:
                self.synthesize(images, one_hot([0] * size, len(self.expressions)))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        log.info("warmed up batch sizes %s on %s in %.2fs", self.warmup_sizes, self.device, time.perf_counter() - started)
        return self.warmup_sizes

    def memory_stats(self) -> dict[str, int]:
        """CUDA memory held by this process (empty on the CPU)."""
        if self.device.type != "cuda":
            return {}
        return {
            "allocated": torch.cuda.memory_allocated(self.device),
            "reserved": torch.cuda.memory_reserved(self.device),
            "max_allocated": torch.cuda.max_memory_allocated(self.device),
        }

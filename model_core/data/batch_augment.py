"""Training augmentation for a whole batch at once, on the device that holds the batch.

:mod:`.augment` changes one PIL-sized image at a time in DataLoader workers,
which is right for a CPU. On a GPU with the dataset resident in its memory,
those per-image calls would leave it idle: here every change is one batched
tensor operation (a random affine warp through ``affine_grid``/``grid_sample``,
light and contrast, an erased patch), drawn from a seeded generator on the
same device. The changes are those of :mod:`.augment`, somewhat stronger
(shift and zoom as well as crop, up to 15 degrees of tilt) because the GPU
teachers see each face many more times.

Two more are off by default, so that every recipe measured so far draws the
same random numbers: a change of gamma (dim or bright mid-tones) and a blur.
``python -m bench.robustness`` found the default recogniser losing 12 points
on dim photos and 8 on blurred ones, which its training never showed it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class BatchAugment:
    """Random face-preserving changes of a batch of normalised images (B x C x H x W, values in [-1, 1])."""

    scale: tuple[float, float] = (0.85, 1.15)  # zoom: above 1 crops into the face, below 1 shows more around it
    shift: float = 0.1  # up to this fraction of the side, each axis
    degrees: float = 15.0
    flip: float = 0.5
    brightness: float = 0.2  # added, in units of the [-1, 1] range's half-width
    contrast: float = 0.3  # multiplied around each image's mean: 1 +- this
    erase: float = 0.5  # probability of one erased (mid-grey) rectangle
    erase_area: tuple[float, float] = (0.02, 0.2)
    gamma: float = 1.0  # mid-tones raised to a power drawn log-uniformly in [1 / gamma, gamma]; 1: none
    blur: float = 0.0  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.3, 1.2)  # its standard deviation in pixels of the input, drawn per image

    def __post_init__(self) -> None:
        if self.gamma < 1:
            raise ValueError(f"gamma is the largest power, at least 1 (1: none), not {self.gamma}")
        if not 0 <= self.blur <= 1 or not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur is a probability and blur_sigma a range of positive widths, not {self.blur}, "
                             f"{self.blur_sigma}")

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, _, h, w = images.shape
        dev, dtype = images.device, images.dtype

        def uniform(low: float, high: float, *shape: int) -> Tensor:
            return torch.rand(shape or (b,), device=dev, generator=generator, dtype=torch.float32) * (high - low) + low

        angle = uniform(-self.degrees, self.degrees) * (math.pi / 180)
        zoom = uniform(*self.scale)
        mirror = torch.where(uniform(0, 1) < self.flip, -1.0, 1.0)
        # affine_grid maps each output pixel to where it samples the input: zooming in samples a smaller area.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([
            torch.stack([cos * mirror, -sin, uniform(-2 * self.shift, 2 * self.shift)], 1),
            torch.stack([sin * mirror, cos, uniform(-2 * self.shift, 2 * self.shift)], 1),
        ], 1)
        grid = F.affine_grid(theta.to(dtype), list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        gain = uniform(1 - self.contrast, 1 + self.contrast).view(b, 1, 1, 1).to(dtype)
        offset = uniform(-self.brightness, self.brightness).view(b, 1, 1, 1).to(dtype)
        out = ((out - mean) * gain + mean + offset).clamp(-1, 1)
        if self.gamma != 1:
            power = torch.exp(uniform(-math.log(self.gamma), math.log(self.gamma))).view(b, 1, 1, 1).to(dtype)
            out = ((out + 1) / 2).pow(power) * 2 - 1
        if self.blur > 0:
            blurred = gaussian_blur(out, uniform(*self.blur_sigma))
            out = torch.where((uniform(0, 1) < self.blur).view(b, 1, 1, 1), blurred, out)

        if self.erase > 0:
            area = uniform(*self.erase_area) * h * w
            aspect = torch.exp(uniform(math.log(0.3), math.log(1 / 0.3)))
            eh = (area * aspect).sqrt().clamp(max=h)
            ew = (area / aspect).sqrt().clamp(max=w)
            top = uniform(0, 1) * (h - eh)
            left = uniform(0, 1) * (w - ew)
            rows = torch.arange(h, device=dev).view(1, h, 1)
            cols = torch.arange(w, device=dev).view(1, 1, w)
            box = ((rows >= top.view(b, 1, 1)) & (rows < (top + eh).view(b, 1, 1))
                   & (cols >= left.view(b, 1, 1)) & (cols < (left + ew).view(b, 1, 1)))
            box &= (uniform(0, 1) < self.erase).view(b, 1, 1)
            out = out.masked_fill(box.unsqueeze(1), 0.0)  # 0 is mid-grey in [-1, 1]
        return out


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Each image (B x C x H x W) blurred by a Gaussian of its own width ``sigma`` (B, in pixels): one separable
    convolution for the batch, each image's kernel in its own group, the border mirrored."""
    b, c, h, w = images.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    kernel = torch.exp(-(x.view(1, -1) ** 2) / (2 * sigma.float().view(-1, 1) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0).to(images.dtype)  # (B * C, K)
    flat = F.pad(images.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel.view(b * c, 1, 1, -1), groups=b * c)
    flat = F.conv2d(flat, kernel.view(b * c, 1, -1, 1), groups=b * c)
    return flat.view(b, c, h, w)

"""The one path from an image to the network's input, shared by training and serving.

Training reads dataset crops, the service reads face crops cut out of photos;
both go through :class:`Preprocess`, whose settings travel inside the model
card, so an image is never prepared two different ways::

    photo --crop_face(box)--> face crop --prepare--> PIL image at model size
          --[training augmentation]--> to_tensor --> normalised tensor in [-1, 1]

Synthesised faces come back through :meth:`Preprocess.to_image`, the inverse
of :meth:`Preprocess.to_tensor`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def viewable(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit grey (``L``) or ``RGB``, as an image viewer shows it.

    Every decoder path (datasets, the CLI, the service) passes through here before a face is
    looked for or prepared, because PIL's own ``convert`` gets two common cases wrong: it clips
    16-bit grey pixels at 255 instead of scaling them, so a 16-bit PNG or TIFF (as some face
    databases and scientific cameras write) turns white; and it drops an alpha channel, so
    transparent pixels turn black. Here high-bit-depth grey is scaled by its range (float
    pixels in [0, 1] by 255), and transparency is composited onto white.
    """
    if image.mode in ("L", "RGB"):
        return image
    if image.mode.startswith("I") or image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        peak = float(pixels.max()) if pixels.size else 0.0
        if image.mode == "F":
            top = 1.0 if peak <= 1.0 else 255.0  # float pictures hold [0, 1] or [0, 255]
        elif image.mode == "I" and peak <= 255:
            top = 255.0  # an 8-bit picture widened to 32 bits
        else:
            top = 65535.0  # 16-bit grey: PNG and TIFF open as I;16 (I in older Pillow)
        return Image.fromarray(np.clip(np.rint(pixels * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("L" if image.mode == "1" else "RGB")  # CMYK, YCbCr, palettes ...


#: A face turned upright (:meth:`Preprocess.crop_face` with an angle) is cut at most this many times the model's
#: input across: enough for the resize to the input to average over, and turning a large face costs no more.
TURN_MAX_FACTOR = 4


def turn_margin(side: int) -> int:
    """Pixels a square of ``side`` turned about its centre can reach past its sides, whatever the angle (and one
    more for rounding): the region :meth:`Preprocess.crop_face` turns, and the one a turned redraw lands in."""
    return math.ceil(side * (math.sqrt(2) - 1) / 2) + 1


@dataclass(frozen=True)
class Preprocess:
    """Image size, colour mode and normalisation of a model, plus how to frame a detected face.

    ``face_scale`` and ``face_shift`` turn a detector's face box into a crop
    framed like the training images: the crop is a square ``face_scale`` times
    the box's longer side, its centre moved down by ``face_shift`` box heights.
    The defaults were measured by running the service's detector (YuNet) on
    400 FER2013 validation faces pasted into larger photos: the training crop
    is 0.98 box sides wide (median; IQR 0.17) and centred on the box (shift
    -0.006, IQR 0.06). Reproduce with ``python -m bench.face_framing``.
    """

    img_size: int = 48
    in_chans: int = 1
    mean: float = 0.5
    std: float = 0.5
    face_scale: float = 0.98
    face_shift: float = 0.0

    @property
    def mode(self) -> str:
        return "L" if self.in_chans == 1 else "RGB"

    # ------------------------------------------------------------------ image -> tensor

    def prepare(self, image: Image.Image) -> Image.Image:
        """Convert to the model's colour mode and resize to its input size."""
        image = viewable(image)
        if image.mode != self.mode:
            image = image.convert(self.mode)
        if image.size != (self.img_size, self.img_size):
            image = image.resize((self.img_size, self.img_size), Image.Resampling.BILINEAR)
        return image

    def to_tensor(self, image: Image.Image | np.ndarray | Tensor) -> Tensor:
        """A prepared image (PIL, HxW[xC] uint8 array, or CxHxW uint8 tensor) to a normalised float tensor."""
        if isinstance(image, Image.Image):
            image = np.array(image)  # a writable copy: torch refuses to wrap PIL's read-only buffer
        if isinstance(image, np.ndarray):
            array = image if image.ndim == 3 else image[:, :, None]
            # Copied only when needed: torch wraps contiguous, writable buffers (a decoded cache may be read-only).
            image = torch.from_numpy(np.require(array, requirements=["C", "W"])).permute(2, 0, 1)
        return (image.float() / 255.0 - self.mean) / self.std

    def __call__(self, image: Image.Image) -> Tensor:
        return self.to_tensor(self.prepare(image))

    def batch(self, images: Sequence[Image.Image]) -> Tensor:
        return torch.stack([self(image) for image in images])

    # ------------------------------------------------------------------ tensor -> image

    def to_uint8(self, tensor: Tensor) -> np.ndarray:
        """Undo the normalisation of one CxHxW tensor: an HxW (grey) or HxWx3 uint8 array."""
        pixels = (tensor.detach().float().cpu() * self.std + self.mean).clamp(0, 1)
        array = (pixels * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return array[:, :, 0] if array.shape[2] == 1 else array

    def to_image(self, tensor: Tensor) -> Image.Image:
        return Image.fromarray(self.to_uint8(tensor), mode=self.mode)

    # ------------------------------------------------------------------ faces in photos

    def face_box(self, box: Sequence[float], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The square crop (left, top, right, bottom) that frames a detected face like training data.

        ``box`` is the detector's (x, y, width, height). The square may reach
        past the photo's edge; :meth:`crop_face` fills that part with grey.
        """
        x, y, w, h = (float(v) for v in box)
        side = max(w, h) * self.face_scale
        cx, cy = x + w / 2, y + h / 2 + self.face_shift * h
        left, top = round(cx - side / 2), round(cy - side / 2)
        size = max(1, round(side))
        return left, top, left + size, top + size

    def crop_face(self, image: Image.Image, box: Sequence[float], angle: float = 0.0) -> Image.Image:
        """Cut the face at ``box`` out of a photo, framed as the model was trained.

        ``angle`` (degrees, counter-clockwise as PIL turns pictures) first turns the photo about the box's centre:
        a face whose eyes slope by ``angle`` comes out upright, as the training faces mostly are. A turned crop is
        at most :data:`TURN_MAX_FACTOR` times the model's input across: turning costs as its pixels do, and the
        model reads ``img_size`` of them.
        """
        left, top, right, bottom = self.face_box(box, image.size)
        grey = 128 if self.in_chans == 1 else (128,) * 3
        if angle:
            # Turn only a region around the square, wide enough that its corners stay inside whatever the angle.
            side = right - left
            margin = turn_margin(side)
            region = Image.new(self.mode, (side + 2 * margin,) * 2, color=grey)
            x0, y0 = max(0, left - margin), max(0, top - margin)
            x1, y1 = min(image.width, right + margin), min(image.height, bottom + margin)
            if x1 > x0 and y1 > y0:  # the part of the photo inside the region (the rest stays grey)
                region.paste(image.crop((x0, y0, x1, y1)).convert(self.mode), (x0 - left + margin, y0 - top + margin))
            x, y, w, h = (float(v) for v in box)
            cx, cy = x + w / 2 - left + margin, y + h / 2 - top + margin
            factor = min(1.0, TURN_MAX_FACTOR * self.img_size / side)
            if factor < 1.0:
                region = region.resize((max(1, round(region.width * factor)),) * 2, Image.Resampling.BILINEAR)
            turned = region.rotate(angle, resample=Image.Resampling.BICUBIC, center=(cx * factor, cy * factor), fillcolor=grey)
            start, size = round(margin * factor), max(1, round(side * factor))
            return turned.crop((start, start, start + size, start + size))
        canvas = Image.new(self.mode, (right - left, bottom - top), color=grey)
        photo = image.convert(self.mode)
        canvas.paste(photo, (-left, -top))
        return canvas

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        return cls(**data)

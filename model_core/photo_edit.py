"""Putting a redrawn face back into its photo: the network's change, at the face's size, on the photo's colours.

The network sees a small grey crop of the face and redraws it. Handing that
crop back would give a user a 48-pixel grey thumbnail of their colour photo.
Instead the *change* the network made (redrawn minus input, in grey levels)
is enlarged to the size the face has in the photo, faded out towards the
crop's border so that no seam shows, and added equally to the red, green and
blue of every pixel under it. Adding the same amount to R, G and B changes a
pixel's brightness (its luma, which is what the grey network sees) and leaves
its chroma exactly as it was, so skin keeps its colour. A face the network
saw turned upright (:class:`Turn`) gets its change turned back onto the face
as it lies. Pixels outside the crop (the turned crop, for such a face), and
pixels the change leaves below half a grey level, are returned byte for byte
as they came.

The CLI (``fersnet synthesize``) and the service (``/v1/synthesize``) both call
:func:`redraw_in_photo`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps
from torch import Tensor

from .data.records import DataError
from .faces import Face
from .image_formats import DECODE_ERRORS, READ_FORMATS, is_lossy, oversized, unreadable_file
from .preprocess import Preprocess, turn_margin, viewable

#: Share of the crop's side over which the change fades to nothing at each border.
FEATHER = 0.12


class PhotoFile(NamedTuple):
    """A photo read from a file, and what :func:`encode_like` needs to save a redrawn copy in the same family."""

    image: Image.Image
    #: Pillow's name of the file's format (PNG where Pillow names none).
    format: str
    #: Whether its pixels were compressed with loss (:func:`~model_core.image_formats.is_lossy`).
    lossy: bool


def read_photo(path: str | Path) -> PhotoFile:
    """A photo file as the service decodes an upload: upright as a viewer shows it (EXIF orientation), grey or RGB.

    Only the formats the project reads are opened (:data:`~model_core.image_formats.READ_FORMATS`), and a file
    larger than any picture is refused before it is read. Raises :class:`~model_core.data.DataError` naming the
    file where it cannot be read.
    """
    file = Path(path)
    if not file.exists():
        raise DataError(f"{path}: no such file")
    if file.is_dir():
        raise DataError(f"{path}: a folder, not an image file")
    if too_large := oversized(path, file.stat().st_size):
        raise DataError(too_large)
    data = file.read_bytes()
    try:
        with Image.open(io.BytesIO(data), formats=READ_FORMATS) as f:
            image, fmt = viewable(ImageOps.exif_transpose(f)), f.format or "PNG"
    except DECODE_ERRORS as e:
        raise DataError(unreadable_file(path, e, data)) from None
    return PhotoFile(image if image.mode in ("L", "RGB") else image.convert("RGB"), fmt, is_lossy(fmt, data))


def crop_box(face: Face, image_size: tuple[int, int], preprocess: Preprocess) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) pixels the model's input was cut from, as :func:`~model_core.faces.crop_faces` cuts it.

    A skipped detection (the whole image is the face) is the whole image; a detected face is the
    square that :meth:`Preprocess.face_box` frames, which may reach past the photo's edge.
    """
    if face.score is None and face.box == (0, 0, *image_size):
        return 0, 0, *image_size
    return preprocess.face_box(face.box, image_size)


class Turn(NamedTuple):
    """How a face's crop was turned upright: by ``angle`` degrees about ``centre`` (x, y) of the photo."""

    angle: float
    centre: tuple[float, float]


def face_turn(face: Face, factor: float = 1.0) -> Turn | None:
    """The turn :func:`~model_core.faces.crop_faces` gave ``face`` (None for none), in the pixels of the picture
    decoded at ``1 / factor`` of the one the face was found in (``factor``: that picture's scale, as for
    :func:`scale_box`)."""
    if not face.angle:
        return None
    x, y, w, h = face.box
    return Turn(face.angle, ((x + w / 2) / factor, (y + h / 2) / factor))


def scale_box(box: tuple[int, int, int, int], factor: float) -> tuple[int, int, int, int]:
    """A box in pixels of a picture decoded at ``factor`` of its size, in the full picture's pixels."""
    if factor == 1.0:
        return box
    x, y, width, height = box
    return round(x / factor), round(y / factor), round(width / factor), round(height / factor)


def feather(width: int, height: int, margin: float = FEATHER) -> np.ndarray:
    """Weights 1 inside, falling smoothly (raised cosine) to 0 over ``margin`` of each side at the border."""

    def ramp(n: int) -> np.ndarray:
        edge = max(1.0, margin * n)
        distance = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5)
        return 0.5 - 0.5 * np.cos(np.pi * np.clip(distance / edge, 0.0, 1.0))

    return np.outer(ramp(height), ramp(width)).astype(np.float32)


def grey_levels(tensor: Tensor, preprocess: Preprocess) -> np.ndarray:
    """A 1 x H x W normalised tensor (the model's input or output) as H x W float grey levels 0-255, unrounded."""
    array = tensor.detach().float().cpu().numpy()
    return (array.reshape(array.shape[-2:]) * preprocess.std + preprocess.mean) * 255.0


def redraw_in_photo(
    photo: Image.Image, box: tuple[int, int, int, int], before: np.ndarray, after: np.ndarray, turn: Turn | None = None
) -> Image.Image:
    """``photo`` with the change ``after - before`` (model-sized grey levels) applied to the crop ``box``.

    ``box`` is (left, top, right, bottom) in ``photo``'s pixels and may reach past its edges; only the
    part inside the photo is changed. A crop that was turned upright (``turn``) has its change turned
    back the other way about the same centre, so it lands on the face as it lies. Returns a new picture
    in ``photo``'s mode (RGB or L).
    """
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    delta = Image.fromarray((after - before).astype(np.float32), mode="F").resize((width, height), Image.Resampling.BICUBIC)
    change = np.asarray(delta, dtype=np.float32) * feather(width, height)
    if turn is not None:
        margin = turn_margin(max(width, height))
        canvas = np.zeros((height + 2 * margin, width + 2 * margin), dtype=np.float32)
        canvas[margin : margin + height, margin : margin + width] = change
        centre = (turn.centre[0] - left + margin, turn.centre[1] - top + margin)
        turned = Image.fromarray(canvas, mode="F").rotate(-turn.angle, resample=Image.Resampling.BILINEAR, center=centre)
        change = np.asarray(turned, dtype=np.float32)
        left, top, right, bottom = left - margin, top - margin, right + margin, bottom + margin
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(photo.width, right), min(photo.height, bottom)
    result = photo.copy()
    if x1 <= x0 or y1 <= y0:
        return result
    region = np.asarray(photo.crop((x0, y0, x1, y1)), dtype=np.float32)
    local = change[y0 - top : y1 - top, x0 - left : x1 - left]
    edited = region + (local[..., None] if region.ndim == 3 else local)
    result.paste(Image.fromarray(np.clip(np.rint(edited), 0, 255).astype(np.uint8), mode=photo.mode), (x0, y0))
    return result


def redrawn_photos(
    photo: Image.Image,
    box: tuple[int, int, int, int],
    model_input: Tensor,
    outputs: Iterable[Tensor],
    preprocess: Preprocess,
    turn: Turn | None = None,
) -> Iterator[Image.Image]:
    """``photo`` redrawn once per network output (each a face drawn from ``model_input``), made as they are taken,
    so that a caller encoding them one by one holds one copy at a time."""
    before = grey_levels(model_input, preprocess)
    return (redraw_in_photo(photo, box, before, grey_levels(output, preprocess), turn) for output in outputs)


def face_tile(photo: Image.Image, box: tuple[int, int, int, int], side: int = 128) -> Image.Image:
    """The crop ``box`` of a (redrawn) photo as a ``side``-pixel square tile, grey where it leaves the photo."""
    left, top, right, bottom = box
    canvas = Image.new(photo.mode, (right - left, bottom - top), color=128 if photo.mode == "L" else (128, 128, 128))
    canvas.paste(photo, (-left, -top))
    return canvas.resize((side, side), Image.Resampling.LANCZOS)


class Encoding(NamedTuple):
    """How a redrawn photo is saved: Pillow's format, the answer's media type, and the encoder's options."""

    format: str
    media_type: str
    options: dict[str, object]


def answer_encoding(upload_format: str, lossy: bool) -> Encoding:
    """The encoding of the upload's family, at the upload's kind of fidelity.

    A lossless upload is answered losslessly: WebP as lossless WebP, PNG, BMP, GIF and TIFF as PNG. A lossy one
    is answered in its own format where one can be written here: JPEG at quality 95 without chroma subsampling,
    WebP at quality 95, AVIF at quality 90 (libavif's fastest speed). A phone's HEIC is answered as JPEG: nothing
    here encodes HEIC. The speeds were chosen for a phone's 12-megapixel photo, which the answer carries at full
    size: lossy WebP at ``method=2`` and AVIF at ``speed=10`` encode it in half a second on two cores, against
    1.3 s and 4.7 s at their defaults, for 4 % and 22 % more bytes (``python -m bench.encoding``).
    """
    match upload_format.upper(), lossy:
        case "WEBP", False:
            return Encoding("WEBP", "image/webp", {"lossless": True})
        case "WEBP", True:
            return Encoding("WEBP", "image/webp", {"quality": 95, "method": 2})
        case "AVIF", True:
            return Encoding("AVIF", "image/avif", {"quality": 90, "speed": 10})
        case _, True:
            return Encoding("JPEG", "image/jpeg", {"quality": 95, "subsampling": 0})
        case _:
            return Encoding("PNG", "image/png", {})


#: The colour space an ICC profile must describe (its header's bytes 16-20) to be embedded in an image of each mode.
_PROFILE_SPACES = {"RGB": b"RGB ", "L": b"GRAY"}


def colour_profile(image: Image.Image) -> bytes | None:
    """The ICC profile the photo came with, where it describes the colours ``image`` holds, else None.

    A phone's photo is often Display P3, a camera's Adobe RGB: without its profile a colour-managed viewer reads
    the same numbers as sRGB, and the redrawn photo comes back duller or shifted. A CMYK upload's profile is
    dropped: its pixels were converted to RGB, and a CMYK profile on RGB pixels would be wrong.
    """
    profile = image.info.get("icc_profile")
    if isinstance(profile, bytes) and len(profile) >= 20 and profile[16:20] == _PROFILE_SPACES.get(image.mode):
        return profile
    return None


def encode_like(image: Image.Image, upload_format: str, lossy: bool) -> tuple[bytes, str]:
    """``image`` encoded as :func:`answer_encoding` says for an upload of ``upload_format``, with the upload's
    colour profile (:func:`colour_profile`). Returns (bytes, media type)."""
    encoding = answer_encoding(upload_format, lossy)
    buffer = io.BytesIO()
    image.save(buffer, format=encoding.format, icc_profile=colour_profile(image), **encoding.options)
    return buffer.getvalue(), encoding.media_type


def changed_outside(before: Image.Image, after: Image.Image, box: tuple[int, int, int, int]) -> float:
    """Mean absolute change (0-255) of the pixels outside ``box``: 0 for an edit that kept them."""
    a = np.asarray(before, dtype=np.int16)
    b = np.asarray(after, dtype=np.int16)
    outside = np.ones(a.shape[:2], dtype=bool)
    left, top, right, bottom = box
    outside[max(0, top) : max(0, bottom), max(0, left) : max(0, right)] = False
    return float(np.abs(a - b)[outside].mean()) if outside.any() else 0.0

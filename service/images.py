"""Turning untrusted upload bytes into upright RGB pictures, without ever decoding too much.

Every image a client sends passes three gates before a pixel is decoded:

1. the body-size limit (:class:`service.middleware.BodySizeLimit`) has already bounded its bytes;
2. its first bytes must be one of :data:`SUPPORTED_FORMATS` (JPEG, PNG, WebP,
   and BMP, GIF and TIFF, which face databases ship: JAFFE is TIFF); 415 for
   another format, 400 for bytes that are no image at all;
3. its header's width x height must be within ``max_image_pixels`` (413). PIL's
   ``Image.open`` reads only the header, so a decompression bomb (a few KB
   that would inflate to gigabytes) is refused here, before ``load()``.

Large JPEGs are then decoded at a reduced scale (libjpeg's DCT scaling, which
is both faster and smaller) because neither the face detector nor the model
needs more than :data:`DECODE_MAX_SIDE` pixels; :class:`Photo` remembers the
scale so that face boxes are reported in the coordinates of the original.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from model_core.preprocess import viewable

from .errors import BadImage, EmptyImage, TooManyPixels, UnsupportedMediaType

#: Longest side a JPEG is decoded at; bigger ones are decoded at 1/2, 1/4 or 1/8 scale (never below this).
DECODE_MAX_SIDE = 2048

#: The image formats the service decodes, by PIL format name, with their media types. A GIF or a
#: multi-page TIFF is read at its first frame. The command line reads the same formats (and PGM/PPM).
SUPPORTED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}
#: How error messages and the API docs list :data:`SUPPORTED_FORMATS`.
ACCEPTED = "JPEG, PNG, WebP, BMP, GIF or TIFF"

#: Declared part content types that do not contradict a supported image (curl and browsers send these).
_NEUTRAL_CONTENT_TYPES = frozenset(
    {"", "application/octet-stream", "image/jpg", "image/pjpeg", "image/x-ms-bmp", "image/x-bmp", *SUPPORTED_FORMATS.values()}
)

#: The first bytes of each supported format: (offset, signature, PIL format name).
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
)

#: Signatures of image formats we recognise but do not serve (answered 415, not 400).
_OTHER_IMAGE_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"8BPS", "PSD"),
    (0, b"%PDF", "PDF"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"qoif", "QOI"),
)


@dataclass(frozen=True)
class Upload:
    """One uploaded file, already in memory (the body limit bounds its size)."""

    data: bytes
    filename: str | None = None
    content_type: str | None = None
    index: int = 0

    @property
    def label(self) -> str:
        """How error messages name this upload: its position, and its file name when it has one."""
        return f"image {self.index}" + (f" ({self.filename})" if self.filename else "")


@dataclass(frozen=True)
class Photo:
    """A decoded upload: upright RGB pixels, maybe at reduced scale, and the original's size."""

    image: Image.Image
    original_size: tuple[int, int]
    format: str

    @property
    def scale(self) -> float:
        """Decoded pixels per original pixel (1.0 unless a large JPEG was decoded reduced)."""
        return self.image.width / self.original_size[0]

    def to_original(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box (x, y, width, height) in decoded pixels, in the original's pixels, clipped to the picture."""
        s = self.scale
        width, height = self.original_size
        x0 = min(max(0, round(box[0] / s)), width)
        y0 = min(max(0, round(box[1] / s)), height)
        x1 = min(max(0, round((box[0] + box[2]) / s)), width)
        y1 = min(max(0, round((box[1] + box[3]) / s)), height)
        return x0, y0, x1 - x0, y1 - y0


def sniff_format(data: bytes) -> str | None:
    """The supported format the bytes start with (PIL's name), or None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return _match(data, _SIGNATURES)


def _other_image_format(data: bytes) -> str | None:
    return _match(data, _OTHER_IMAGE_SIGNATURES)


def _match(data: bytes, signatures: tuple[tuple[int, bytes, str], ...]) -> str | None:
    for offset, signature, name in signatures:
        if data[offset : offset + len(signature)] == signature:
            return name
    return None


def _check_type(upload: Upload) -> str:
    """The format to decode ``upload`` as; raise 400/415 for anything else."""
    if not upload.data:
        raise EmptyImage(f"{upload.label} is empty")
    fmt = sniff_format(upload.data)
    if fmt is not None:
        return fmt  # the bytes decide, not a client's guess of the content type
    other = _other_image_format(upload.data)
    if other is not None:
        raise UnsupportedMediaType(f"{upload.label} is {other}; send {ACCEPTED}")
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared not in _NEUTRAL_CONTENT_TYPES:
        raise UnsupportedMediaType(f"{upload.label} was sent as {declared!r}; send {ACCEPTED}")
    raise BadImage(f"{upload.label} is not a decodable {ACCEPTED} image")


def decode_image(upload: Upload, *, max_pixels: int, max_side: int | None = DECODE_MAX_SIDE) -> Photo:
    """Decode one upload into an upright RGB :class:`Photo`, or raise the matching 400/413/415 error.

    The pixel limit is checked on the header alone, before any pixel data is
    decompressed. ``max_side`` lets a large JPEG decode at a reduced scale.
    """
    fmt = _check_type(upload)
    try:
        with Image.open(io.BytesIO(upload.data), formats=[fmt]) as image:
            width, height = image.size
            if width < 1 or height < 1:
                raise BadImage(f"{upload.label} has no pixels ({width}x{height})")
            if width * height > max_pixels:
                raise TooManyPixels(f"{upload.label} is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}")
            if fmt == "JPEG" and max_side is not None and max(width, height) > max_side:
                ratio = max_side / max(width, height)
                image.draft("RGB", (math.ceil(width * ratio), math.ceil(height * ratio)))
            image.load()
            decoded_width = image.width
            upright = ImageOps.exif_transpose(image)
            if upright is None:  # pragma: no cover - only with in_place=True
                upright = image
            swapped = upright.size != image.size
            rgb = viewable(upright).convert("RGB")  # 16-bit grey scaled, transparency on white
    except Image.DecompressionBombError as e:  # PIL's own guard, for headers far beyond any sane limit
        raise TooManyPixels(f"{upload.label} is too large ({e}); the limit is {max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImage(f"{upload.label} could not be decoded as {fmt} ({e})") from None
    scale = decoded_width / width
    original = (height, width) if swapped else (width, height)
    # Keep the exact decoded size when nothing was scaled, so to_original() is the identity.
    if scale == 1.0:
        original = rgb.size
    return Photo(image=rgb, original_size=original, format=fmt)

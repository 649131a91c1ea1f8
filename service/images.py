"""Turning untrusted upload bytes into upright RGB pictures, without ever decoding too much.

Every image a client sends passes three gates before a pixel is decoded:

1. the body-size limit (:class:`service.middleware.BodyLimits`) has already bounded its bytes;
2. its first bytes must be one of :data:`SUPPORTED_FORMATS` (JPEG, PNG, WebP;
   HEIC and AVIF, which phones save; BMP, GIF and TIFF, which face databases
   ship: JAFFE is TIFF); 415 for another format, 400 for bytes that are no
   image at all;
3. its header's width x height must be within ``max_image_pixels`` (413). PIL's
   ``Image.open`` reads only the header, so a decompression bomb (a few KB
   that would inflate to gigabytes) is refused here, before ``load()``.

:func:`probe` does exactly that much (no pixel decoded) and says how many
pixels decoding will produce, so a request can be charged against the
pixel budget (:mod:`service.budget`) before any of its images is decoded.

Neither the face detector nor the model needs more than :data:`DECODE_MAX_SIDE`
pixels, so a large picture is *reduced* by an integer factor (1/2, 1/3, ...,
never below that side): a JPEG while it is decoded (libjpeg's DCT scaling, both
faster and smaller), every other format (PNG has no reduced decoding) right
after it, before the colour conversions that would copy the full-size pixels
again. The full-size pixels are freed before :func:`decode_image` returns.
:class:`Photo` remembers the scale, so face boxes are reported in the
coordinates of the original.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from PIL import Image

from model_core.image_formats import (
    DECODE_ERRORS,
    OPTIONAL_FORMATS_READ,
    decode_reason,
    iso_image_format,
    other_image_format,
    spoken_name,
)
from model_core.preprocess import viewable

from .errors import BadImage, EmptyImage, TooManyPixels, UnsupportedMediaType

T = TypeVar("T")

#: Longest side a picture is kept at; bigger ones are reduced by an integer factor (never below this side).
DECODE_MAX_SIDE = 2048

#: Pillow modes ``Image.reduce`` works on; others are converted (at full size) first.
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"})

#: EXIF orientation -> the transposition that shows the picture upright (as ``ImageOps.exif_transpose``).
_ORIENTATIONS: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

#: The image formats the service decodes, by PIL format name, with their media types. A GIF or a
#: multi-page TIFF is read at its first frame; a HEIC or AVIF at its primary picture. HEIC and AVIF are here where
#: this installation decodes them (:data:`~model_core.image_formats.OPTIONAL_FORMATS_READ`; both, from the wheels
#: pyproject.toml names). The command line reads the same formats (and PGM/PPM).
SUPPORTED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    **{name: media for name, media in (("HEIF", "image/heic"), ("AVIF", "image/avif")) if name in OPTIONAL_FORMATS_READ},
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}
#: :data:`SUPPORTED_FORMATS` as people call them, for ``GET /v1/models`` (``runtime.image_formats``).
FORMAT_NAMES = [spoken_name(name) for name in SUPPORTED_FORMATS]
#: How error messages and the API docs list them: "JPEG, PNG, WebP, HEIC, AVIF, BMP, GIF or TIFF".
ACCEPTED = ", ".join(FORMAT_NAMES[:-1]) + " or " + FORMAT_NAMES[-1]

#: Declared part content types that do not contradict a supported image (curl and browsers send these).
_NEUTRAL_CONTENT_TYPES = frozenset(
    {"", "application/octet-stream", "image/jpg", "image/pjpeg", "image/x-ms-bmp", "image/x-bmp", "image/heif", *SUPPORTED_FORMATS.values()}
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


@dataclass(frozen=True)
class Upload:
    """One uploaded file, already in memory (the body limit bounds its size)."""

    data: bytes
    filename: str | None = None
    content_type: str | None = None
    index: int = 0
    #: :func:`probe`'s answers by (max_pixels, max_side): admission and the inline-decoding choice both ask.
    probes: dict[tuple[int, int | None], Probe] = field(default_factory=dict, compare=False, repr=False)

    @property
    def label(self) -> str:
        """How error messages name this upload: its position, and its file name when it has one."""
        return f"image {self.index}" + (f" ({self.filename})" if self.filename else "")


@dataclass(frozen=True)
class Frame:
    """How a decoded picture maps onto the uploaded one: sizes only, no pixels.

    What a response needs of a photo once its faces are cut out; keeping this
    instead of the :class:`Photo` lets the pixels go as soon as they are used.
    """

    original_size: tuple[int, int]
    decoded_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """Decoded pixels per original pixel (1.0 unless a large picture was reduced), measured along the longer side:
        a reduction rounds each side up, so a side of a few pixels (a 1x20000 strip keeps its 1) would say 1.0."""
        longer = 0 if self.original_size[0] >= self.original_size[1] else 1
        return self.decoded_size[longer] / self.original_size[longer]

    def to_original(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box (x, y, width, height) in decoded pixels, in the original's pixels, clipped to the picture."""
        s = self.scale
        width, height = self.original_size
        x0 = min(max(0, round(box[0] / s)), width)
        y0 = min(max(0, round(box[1] / s)), height)
        x1 = min(max(0, round((box[0] + box[2]) / s)), width)
        y1 = min(max(0, round((box[1] + box[3]) / s)), height)
        return x0, y0, x1 - x0, y1 - y0


@dataclass(frozen=True)
class Photo:
    """A decoded upload: upright RGB pixels, maybe at reduced scale, and the original's size."""

    image: Image.Image
    original_size: tuple[int, int]
    format: str

    @property
    def frame(self) -> Frame:
        return Frame(self.original_size, self.image.size)

    @property
    def scale(self) -> float:
        """Decoded pixels per original pixel (1.0 unless a large picture was reduced)."""
        return self.frame.scale

    def to_original(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box (x, y, width, height) in decoded pixels, in the original's pixels, clipped to the picture."""
        return self.frame.to_original(box)


@dataclass(frozen=True)
class Probe:
    """What decoding an upload will cost, read from its header alone."""

    format: str
    size: tuple[int, int]
    #: Pixels the decoder will produce (fewer than width x height for a JPEG decoded at reduced scale).
    decoded_pixels: int
    #: Pixels of the picture kept after reduction (what a :class:`Photo` holds).
    kept_pixels: int


def sniff_format(data: bytes) -> str | None:
    """The supported format the bytes start with (PIL's name), or None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    iso = iso_image_format(data)
    if iso is not None:
        return iso if iso in SUPPORTED_FORMATS else None
    return _match(data, _SIGNATURES)


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
    other = other_image_format(upload.data, read=SUPPORTED_FORMATS)
    if other is not None:
        raise UnsupportedMediaType(f"{upload.label} is {other}; send {ACCEPTED}")
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared not in _NEUTRAL_CONTENT_TYPES:
        raise UnsupportedMediaType(f"{upload.label} was sent as {declared!r}; send {ACCEPTED}")
    raise BadImage(f"{upload.label} is not a decodable {ACCEPTED} image")


def _reduction(longest: int, max_side: int | None) -> int:
    """The integer factor that brings ``longest`` down towards ``max_side`` without going below it."""
    if max_side is None or longest <= max_side:
        return 1
    return max(1, longest // max_side)


def _open(upload: Upload, fmt: str, max_pixels: int, max_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """The upload opened (header read, nothing decoded) and its stored size, checked against the pixel limit.

    A large JPEG is set to decode reduced (``draft``), after which ``image.size`` is the reduced size.
    """
    image = Image.open(io.BytesIO(upload.data), formats=[fmt])
    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise BadImage(f"{upload.label} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        image.close()
        raise TooManyPixels(f"{upload.label} is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}")
    if fmt == "JPEG" and max_side is not None and max(width, height) > max_side:
        ratio = max_side / max(width, height)
        image.draft(image.mode if image.mode in ("RGB", "L") else "RGB", (math.ceil(width * ratio), math.ceil(height * ratio)))
    return image, (width, height)


#: What decoding a bad upload raises: a damaged file, or (past every limit) one the machine cannot hold.
_UNDECODABLE: tuple[type[Exception], ...] = (*DECODE_ERRORS, MemoryError)

#: How PIL's decompression-bomb guard states the image's size: "Image size (400000000 pixels) exceeds limit of ...".
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def _guarded(upload: Upload, fmt: str, max_pixels: int, work: Callable[[], T]) -> T:
    """Run a decoding step, turning the decoders' many exception types into 400 and 413 answers."""
    try:
        return work()
    except Image.DecompressionBombError as e:  # PIL's own guard, for headers far beyond any sane limit
        counted = _BOMB_PIXELS.search(str(e))
        size = f"{int(counted[1]):,} pixels" if counted else "far too large"
        raise TooManyPixels(f"{upload.label} is {size}; the limit is {max_pixels:,}") from None
    except _UNDECODABLE as e:
        raise BadImage(f"{upload.label} could not be decoded as {spoken_name(fmt)} ({decode_reason(e)})") from None


def probe(upload: Upload, *, max_pixels: int, max_side: int | None = DECODE_MAX_SIDE) -> Probe:
    """Check an upload's type and header (400/413/415) and say what decoding it will hold, decoding nothing."""
    known = upload.probes.get((max_pixels, max_side))
    if known is not None:
        return known
    fmt = _check_type(upload)

    def read() -> Probe:
        image, stored = _open(upload, fmt, max_pixels, max_side)
        with image:
            width, height = image.size  # after draft(): the reduced size a JPEG will decode at
            factor = _reduction(max(width, height), max_side)
            kept = math.ceil(width / factor) * math.ceil(height / factor)
            return Probe(fmt, stored, width * height, kept)

    answer = _guarded(upload, fmt, max_pixels, read)
    upload.probes[(max_pixels, max_side)] = answer
    return answer


#: Transpositions that swap width and height.
_SWAPPING = frozenset({Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270})


def decode_image(upload: Upload, *, max_pixels: int, max_side: int | None = DECODE_MAX_SIDE) -> Photo:
    """Decode one upload into an upright RGB :class:`Photo`, or raise the matching 400/413/415 error.

    The pixel limit is checked on the header alone, before any pixel data is
    decompressed. A picture whose longest side exceeds ``max_side`` is kept
    reduced by an integer factor (a JPEG is decoded reduced); the full-size
    pixels are released before this returns.
    """
    fmt = _check_type(upload)

    def decode() -> Photo:
        image, (width, height) = _open(upload, fmt, max_pixels, max_side)
        image.load()
        orientation = image.getexif().get(0x0112)
        transpose = _ORIENTATIONS.get(orientation) if isinstance(orientation, int) else None
        small = _reduce(image, _reduction(max(image.size), max_side))
        del image  # the full-size pixels go here (unless nothing was reduced); the rest works on the kept picture
        if transpose is not None:
            small = small.transpose(transpose)
        shown = viewable(small)  # 16-bit grey scaled, transparency on white
        del small
        rgb = shown if shown.mode == "RGB" else shown.convert("RGB")
        original = (height, width) if transpose in _SWAPPING else (width, height)
        return Photo(image=rgb, original_size=original, format=fmt)

    return _guarded(upload, fmt, max_pixels, decode)


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """``image`` reduced by ``factor`` (box filter), converted first only where ``Image.reduce`` needs it.

    16-bit grey goes back to 16 bits afterwards, so :func:`viewable` scales it by its depth as it would unreduced.
    """
    if factor <= 1:
        return image
    mode = image.mode
    if mode not in _REDUCIBLE_MODES:
        image = image.convert(_working_mode(image))
    reduced = image.reduce(factor)
    return reduced.convert("I;16") if mode.startswith("I;16") else reduced


def _working_mode(image: Image.Image) -> str:
    """The reducible mode a picture converts to without losing what :func:`viewable` needs (depth, transparency)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return "I"
    if image.mode == "1":
        return "L"
    if image.mode in ("PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        return "RGBA"
    return "RGB"  # palettes, YCbCr, LAB, HSV ...

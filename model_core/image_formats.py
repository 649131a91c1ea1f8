"""The picture formats the project reads: which this installation decodes, how a file's format and fidelity are
told from its bytes, and what a damaged file raises.

Phones save photos as HEIC (every iPhone since 2017, many Android phones) or
AVIF, and people send what their phone saved. Pillow reads AVIF itself (its
wheels bundle libavif since 11.3). HEIC comes from `pi-heif`, the
decode-only build of libheif: it brings the HEVC decoder (libde265, LGPL) and
no encoder, so nothing GPL or patent-encumbered ships for a format the project
only ever reads. Importing this module registers it with Pillow, once, so
every reader (the service's uploads, the CLI's photos, dataset folders) opens
HEIC files through the same ``Image.open``. Where a platform has no pi-heif
wheel, or a Pillow build lacks libavif, the format is simply not offered:
:data:`OPTIONAL_FORMATS_READ` says which are.

Both formats are ISO base-media files: their first box, ``ftyp``, lists
brands, and :func:`iso_image_format` tells them apart by those brands rather
than by a file name or a client's content type. :func:`is_lossy` says whether
a file was compressed with loss, so that a redrawn copy is saved in kind.
Every reader catches :data:`DECODE_ERRORS` and names the file with
:func:`decode_reason`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from PIL import Image, UnidentifiedImageError, features

#: Brands of an ``ftyp`` box that mean AV1 pictures (AVIF), and HEVC pictures (HEIC).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
#: Brands of the bare HEIF container, which holds either (Samsung's HEIF photos say only ``mif1``).
_CONTAINER_BRANDS = frozenset({b"mif1", b"msf1"})


def _register_heif() -> bool:
    """Register pi-heif's HEIF opener with Pillow; False where pi-heif is not installed."""
    try:
        import pi_heif
    except ImportError:
        return False
    # Only the primary picture is read: thumbnails, depth maps and auxiliary images would be decoded for nothing.
    pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True


def _avif_read() -> bool:
    """Whether Pillow reads AVIF here: its plugin and libavif (in its wheels since 11.3; a Pillow before 11.2 has
    no AVIF plugin at all)."""
    try:
        return bool(features.check_module("avif"))
    except ValueError:
        return False


_HEIF_READ = _register_heif()
_AVIF_READ = _avif_read()
#: The optional formats this installation decodes, by Pillow's format name ("HEIF" is pi-heif's name for HEIC).
OPTIONAL_FORMATS_READ = frozenset(name for name, read in (("HEIF", _HEIF_READ), ("AVIF", _AVIF_READ)) if read)
#: The formats every reader of a user's files opens, by Pillow's name: the service's uploads (JPEG, a phone's
#: multi-picture JPEG among them, PNG, WebP, HEIC and AVIF where decoded here, BMP, GIF, TIFF) and the PGM/PPM of older
#: face databases. Pillow itself would try some thirty more, EPS through Ghostscript among them: a file is opened as
#: one of these or not at all, on the command line and in dataset folders as in the service.
READ_FORMATS: tuple[str, ...] = (
    "JPEG", "PNG", "WEBP", *sorted(OPTIONAL_FORMATS_READ, reverse=True), "BMP", "GIF", "TIFF", "PPM",
)
#: Largest picture file read from disk: a 100-megapixel camera's JPEG is about 60 MB, and a file of gigabytes (a
#: video, a disk image, a sparse file) would be read into memory whole before any check of its contents.
MAX_FILE_BYTES = 256 * 1024 * 1024

#: What reading each optional format needs.
_NEEDS = {"HEIF": "pip install pi-heif", "AVIF": "a Pillow built with libavif: pip install 'pillow>=11.3'"}
#: How people call the formats whose Pillow name they would not use ("HEIF" is pi-heif's name for the phone's HEIC).
_SPOKEN = {"WEBP": "WebP", "HEIF": "HEIC"}


def spoken_name(fmt: str) -> str:
    """A Pillow format name as messages and lists give it to people: ``"HEIF"`` -> ``"HEIC"``, ``"WEBP"`` -> ``"WebP"``."""
    return _SPOKEN.get(fmt, fmt)


#: :data:`READ_FORMATS` as people call them, for messages: "JPEG, PNG, WebP, HEIC, AVIF, BMP, GIF, TIFF or PGM/PPM".
READ_FORMAT_NAMES = ", ".join(spoken_name(f) for f in READ_FORMATS if f != "PPM") + " or PGM/PPM"


def oversized(path: str | Path, size: int) -> str | None:
    """Why a file of ``size`` bytes is not read, in one wording for every reader, or None where it may be read."""
    if size <= MAX_FILE_BYTES:
        return None
    return f"{path}: {size / 2**20:,.0f} MB, more than any picture this reads ({MAX_FILE_BYTES // 2**20} MB at most)"


#: Signatures of picture formats recognised but not read here: named in the answer (the service's 415) rather than
#: called damaged.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),  # DOS EPS, a binary header before the PostScript
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"qoif", "QOI"),
)


def other_image_format(data: bytes, read: Collection[str] = OPTIONAL_FORMATS_READ) -> str | None:
    """A picture format recognised but not read here, by its first bytes: a HEIC or AVIF whose decoder is not among
    ``read`` (Pillow's names of the formats the reader decodes), an ICO, a PDF, an EPS, ...; None for anything else."""
    iso = iso_image_format(data)
    if iso is not None and iso not in read:
        return spoken_name(iso)
    return next((name for signature, name in _OTHER_SIGNATURES if data.startswith(signature)), None)


def unreadable_file(path: str | Path, error: BaseException, data: bytes | None = None) -> str:
    """Why a user's picture file could not be read, naming it: a format not read here (an EPS, an ICO, a HEIC
    without its decoder), or what its decoder said of the damage."""
    head = data if data is not None else _head(path)
    if head == b"":
        return f"{path}: an empty file"
    missing = missing_decoder(head) if head is not None else None
    if missing:
        return f"{path}: cannot read image ({missing})"
    if isinstance(error, UnidentifiedImageError):
        other = other_image_format(head) if head is not None else None
        if other is not None:
            article = "an" if other[0] in "AEIO" else "a"  # an ICO, an EPS, an AVIF; a PDF, a HEIC
            return f"{path}: {article} {other} file, which is not read here; use {READ_FORMAT_NAMES}"
        return f"{path}: not a {READ_FORMAT_NAMES} picture, or a damaged one"
    return f"{path}: cannot read image ({decode_reason(error)})"


def _head(path: str | Path, size: int = 64) -> bytes | None:
    """A file's first bytes, enough to tell its format (an ISO file's brands included); None where it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return None


def missing_decoder(data: bytes) -> str | None:
    """Where ``data`` is a HEIC or AVIF that this installation cannot decode, what it is and what it needs."""
    fmt = iso_image_format(data)
    if fmt is None or fmt in OPTIONAL_FORMATS_READ:
        return None
    return f"a {spoken_name(fmt)}, which this installation cannot decode ({_NEEDS[fmt]})"


#: File name suffixes of the optional formats, for reading folders of faces (a file that fails to decode is named).
SUFFIXES = frozenset({".heic", ".heif", ".hif", ".avif"})

#: Formats whose files are compressed with loss (a HEIC or AVIF may be lossless, but a phone's never is). MPO is
#: Pillow's name for a JPEG holding several pictures, as phones write depth photos and HDR gain maps.
_LOSSY_FORMATS = frozenset({"JPEG", "MPO", "HEIF", "AVIF"})


def is_lossy(fmt: str, data: bytes) -> bool:
    """Whether a file of Pillow's format ``fmt`` holds pixels already compressed with loss: a JPEG, HEIC or AVIF,
    or a WebP whose picture is VP8 rather than VP8L. A redrawn copy of it may then be saved with loss too."""
    if fmt == "WEBP":
        return _webp_picture_chunk(data) == b"VP8 "
    return fmt in _LOSSY_FORMATS


def _webp_picture_chunk(data: bytes, offset: int = 12, end: int | None = None) -> bytes | None:
    """The kind of a WebP file's first picture chunk: ``VP8 `` (lossy) or ``VP8L`` (lossless); None if not found.

    A WebP is a RIFF file of chunks (kind, little-endian size, data padded to an even length), from byte 12 (after
    "RIFF", the file's size, "WEBP"). A simple file starts with its picture; an extended one (``VP8X``) first says
    which features follow (ICC profile, alpha); an animation holds each frame's picture inside an ``ANMF`` chunk,
    after the frame's 16-byte header.
    """
    end = len(data) if end is None else min(end, len(data))
    while offset + 8 <= end:
        kind = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        if kind in (b"VP8 ", b"VP8L"):
            return kind
        if kind == b"ANMF":
            return _webp_picture_chunk(data, offset + 8 + 16, offset + 8 + size)
        offset += 8 + size + (size & 1)
    return None


def iso_brands(data: bytes) -> list[bytes]:
    """The brands of the ``ftyp`` box an ISO base-media file starts with (major brand first), or [] for other bytes."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return []
    size = min(int.from_bytes(data[:4], "big"), len(data))
    # major brand, then the 4-byte minor version (skipped), then compatible brands to the end of the box
    return [data[8:12]] + [data[i : i + 4] for i in range(16, size - 3, 4)]


def iso_image_format(data: bytes) -> str | None:
    """``"AVIF"`` or ``"HEIF"`` (Pillow's names) for an AVIF or HEIC/HEIF file, by its brands; None for anything else.

    The major brand decides, as it decides for the decoders (Pillow's and pi-heif's openers read no other): an AV1
    brand is AVIF, an HEVC brand HEIF. A bare ``mif1``/``msf1`` container is AVIF where an AV1 brand is among its
    compatible ones (libavif writes ``mif1`` beside ``avif``), else HEIF (Samsung's HEIC says only ``mif1``).
    """
    brands = iso_brands(data)
    if not brands:
        return None
    major = brands[0]
    if major in _AVIF_BRANDS or (major in _CONTAINER_BRANDS and _AVIF_BRANDS.intersection(brands)):
        return "AVIF"
    if major in _HEVC_BRANDS or major in _CONTAINER_BRANDS:
        return "HEIF"
    return None  # an MP4 video, a QuickTime movie, a container neither decoder opens


#: What Pillow and its plugins raise for a file that is damaged or not what it claims: each decoder has its own
#: (PNG's SyntaxError, a truncated file's OSError or EOFError, the AVIF decoder's RuntimeError for a damaged AV1
#: stream), and Pillow refuses a header that declares more pixels than it will ever decode (a damaged size field,
#: or a decompression bomb). Every reader of untrusted or user-given files catches exactly these and names the file.
DECODE_ERRORS: tuple[type[Exception], ...] = (
    UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, RuntimeError, Image.DecompressionBombError,
)

_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")

#: Decoders' own words for the two ways a file goes bad, in plain words. Each library words them its own way
#: (libwebp's "could not create decoder object" is a WebP cut short or overwritten), and a person sending a photo
#: needs to know which happened, not which function failed. Found by ``python -m bench.fuzz_images``' damaged files.
_PLAIN_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"truncated|unexpected end of file|end of data|premature end", re.IGNORECASE), "the file is cut short"),
    (re.compile(r"could not create decoder object|broken data stream|unrecognized data stream|decoder error|"
                r"cannot load this image|codec configuration error|failed to read next frame", re.IGNORECASE),
     "damaged data"),
)


def decode_reason(error: BaseException) -> str:
    """A decoder's complaint fit for a person: a damaged or cut-short file said so in plain words, otherwise the
    decoder's own message without object reprs (``<_io.BytesIO object at 0x...>``); never empty."""
    if isinstance(error, UnidentifiedImageError):
        return "unrecognised or damaged data"
    if isinstance(error, Image.DecompressionBombError):
        return "its header declares more pixels than any photo has; damaged, or a decompression bomb"
    text = " ".join(_REPR.sub("", str(error)).split()).strip(" :")
    for pattern, plain in _PLAIN_REASONS:
        if pattern.search(text):
            return plain
    return text or type(error).__name__

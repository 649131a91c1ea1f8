"""Upload bytes to pictures: formats, limits checked before decoding, orientation, reduced JPEG decoding."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_core.image_formats import iso_image_format
from service.errors import BadImage, EmptyImage, TooManyPixels, UnsupportedMediaType
from service.images import SUPPORTED_FORMATS, Photo, Upload, decode_image, sniff_format

from .helpers import encode, noise_image, png_header_only

LIMIT = 10_000_000
#: HEIC pictures made by make_pictures.py there (the project reads HEIC but cannot write it).
PICTURES = Path(__file__).parent / "pictures"


def decode(data: bytes, content_type: str | None = None, **kw: int) -> Photo:
    return decode_image(Upload(data, "upload", content_type), max_pixels=kw.pop("max_pixels", LIMIT), **kw)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF", "BMP", "GIF", "TIFF"])
def test_supported_formats_decode_to_rgb(fmt: str) -> None:
    data = encode(noise_image(1, (64, 40), "RGB"), fmt)
    assert sniff_format(data) == fmt
    photo = decode(data)
    assert photo.image.mode == "RGB"
    assert photo.image.size == photo.original_size == (64, 40)
    assert photo.format == fmt


def test_the_bytes_decide_the_format_not_the_declared_type() -> None:
    photo = decode(encode(noise_image(2), "PNG"), content_type="text/plain")
    assert photo.format == "PNG"


@pytest.mark.parametrize(
    ("data", "content_type", "error"),
    [
        (b"", "image/jpeg", EmptyImage),
        (b"\x00" * 200, "image/jpeg", BadImage),
        (b"this is not an image", "application/octet-stream", BadImage),
        (b"this is not an image", "text/plain", UnsupportedMediaType),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "image/jpeg", BadImage),  # a JPEG signature and nothing else
    ],
)
def test_bad_bytes_are_refused(data: bytes, content_type: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode(data, content_type)


def damaged_avif() -> bytes:
    """An AVIF whose AV1 stream is overwritten: its decoder raises RuntimeError, which no other decoder does."""
    data = encode(noise_image(4, (64, 64), "RGB"), "AVIF", quality=60)
    payload = data.index(b"mdat") + 4
    return data[:payload] + b"\xff" * (len(data) - payload)


def test_a_damaged_avif_is_a_bad_image_not_a_server_error() -> None:
    with pytest.raises(BadImage) as refused:
        decode(damaged_avif(), "image/avif")
    assert refused.value.message.startswith("image 0 (upload) could not be decoded as AVIF (")


def test_a_truncated_jpeg_is_a_bad_image() -> None:
    data = encode(noise_image(3, (200, 200), "RGB"), "JPEG")
    with pytest.raises(BadImage) as refused:
        decode(data[: len(data) // 2], "image/jpeg")
    assert refused.value.status_code == 400


@pytest.mark.parametrize(
    ("fmt", "options", "cut", "reason"),
    [
        # libwebp says "could not create decoder object" of both; libjpeg "Truncated File Read" or "broken data stream".
        ("WEBP", {"quality": 80}, 0.5, "damaged data"),
        ("WEBP", {"lossless": True}, 0.5, "damaged data"),
        ("BMP", {}, 0.5, "the file is cut short"),
        ("PNG", {}, 0.7, "the file is cut short"),
    ],
)
def test_a_damaged_file_is_described_in_plain_words(fmt: str, options: dict[str, object], cut: float, reason: str) -> None:
    data = encode(noise_image(4, (64, 64), "RGB"), fmt, **options)
    with pytest.raises(BadImage) as refused:
        decode(data[: int(len(data) * cut)], "application/octet-stream")
    assert refused.value.message.endswith(f"({reason})"), refused.value.message


def test_face_database_formats_decode_as_a_viewer_shows_them() -> None:
    """JAFFE ships 8-bit grey TIFF, older sets BMP; a GIF is read at its first frame, a multi-page TIFF at its first page."""
    grey = noise_image(5, (40, 30), "L")
    photo = decode(encode(grey, "TIFF"), "image/tiff")
    assert photo.format == "TIFF" and np.array_equal(np.asarray(photo.image)[:, :, 0], np.asarray(grey))
    first, second = Image.new("RGB", (20, 20), (250, 250, 250)), Image.new("RGB", (20, 20), (5, 5, 5))
    for fmt in ("GIF", "TIFF"):
        buffer = io.BytesIO()
        first.save(buffer, fmt, save_all=True, append_images=[second])
        assert decode(buffer.getvalue()).image.getpixel((10, 10)) == (250, 250, 250), fmt


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    """The first box of an ISO base-media file (HEIC, AVIF, MP4), and a few bytes of what would follow."""
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (len(body) + 4).to_bytes(4, "big") + body + b"\x00" * 32


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (ftyp(b"heic", b"mif1", b"heic", b"miaf", b"MiHB"), "HEIF"),  # an iPhone's
        (ftyp(b"mif1", b"mif1", b"heic"), "HEIF"),  # a Samsung's
        (ftyp(b"avif", b"avif", b"mif1", b"miaf"), "AVIF"),
        (ftyp(b"mif1", b"mif1", b"avif", b"miaf"), "AVIF"),  # a bare container: an AV1 brand among the compatible ones
        (ftyp(b"miaf", b"avif", b"mif1"), None),  # no decoder opens a file by its compatible brands alone
        (ftyp(b"isom", b"isom", b"mp41"), None),  # a video
        (b"\x00\x00\x00\x18ftyp", None),  # cut short
    ],
)
def test_heic_and_avif_are_told_apart_by_their_brands(data: bytes, name: str | None) -> None:
    assert iso_image_format(data) == name


def test_a_phone_s_heic_is_shown_upright_once() -> None:
    """An iPhone stores a portrait as a landscape picture and a rotation; libheif applies it and clears the EXIF
    orientation, so the service must not turn the picture a second time."""
    photo = decode((PICTURES / "turned.heic").read_bytes(), "image/heic")
    assert photo.format == "HEIF"
    assert photo.image.size == photo.original_size == (32, 64)
    top, bottom = np.asarray(photo.image)[4, 16], np.asarray(photo.image)[60, 16]
    assert top[1] > 150 > top[0] and bottom[0] > 150 > bottom[1]  # green on top, red below


def test_an_avif_decodes_upright_by_its_exif_orientation() -> None:
    band = Image.new("RGB", (64, 32), (200, 10, 10))
    band.paste((10, 200, 10), (0, 0, 16, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(band, "AVIF", exif=exif.tobytes(), quality=90)
    assert sniff_format(data) == "AVIF"
    photo = decode(data, "image/avif")
    assert photo.image.size == photo.original_size == (32, 64)
    top, bottom = np.asarray(photo.image)[4, 16], np.asarray(photo.image)[60, 16]
    assert top[1] > 150 > top[0] and bottom[0] > 150 > bottom[1]


def test_a_heic_over_the_pixel_limit_is_refused_from_its_header() -> None:
    with pytest.raises(TooManyPixels) as refused:
        decode((PICTURES / "astronaut.heic").read_bytes(), max_pixels=256 * 256 - 1)
    assert "256x256 = 65,536 pixels" in refused.value.message


def test_a_missing_decoder_is_named_with_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    from model_core import image_formats

    heic = (PICTURES / "turned.heic").read_bytes()
    assert image_formats.missing_decoder(heic) is None
    monkeypatch.setattr(image_formats, "OPTIONAL_FORMATS_READ", frozenset({"AVIF"}))
    assert image_formats.missing_decoder(heic) == "a HEIC, which this installation cannot decode (pip install pi-heif)"
    assert image_formats.missing_decoder(encode(noise_image(1), "PNG")) is None


def test_a_pillow_without_an_avif_plugin_offers_no_avif(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before 11.2 Pillow has no AVIF module at all (the GPU hosts' own Pillow may be older): no warning, no AVIF."""
    from PIL import features

    from model_core import image_formats

    def unknown(name: str) -> bool:
        raise ValueError(f"Unknown module {name}")

    monkeypatch.setattr(features, "check_module", unknown)
    assert image_formats._avif_read() is False


def test_a_heic_where_its_decoder_is_missing_is_415(monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform without a pi-heif wheel: HEIC is named and refused as unsupported, not called a broken file."""
    monkeypatch.delitem(SUPPORTED_FORMATS, "HEIF")
    with pytest.raises(UnsupportedMediaType) as refused:
        decode((PICTURES / "turned.heic").read_bytes(), "image/heic")
    assert "is HEIC; send" in refused.value.message


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"%PDF-1.7\n" + b"\x00" * 64, "PDF"),
        (b"\x00\x00\x01\x00" + b"\x00" * 64, "ICO"),
        (b"qoif" + b"\x00" * 64, "QOI"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n" + b"\x00" * 64, "EPS"),
    ],
)
def test_other_image_formats_are_415(data: bytes, name: str) -> None:
    with pytest.raises(UnsupportedMediaType) as refused:
        decode(data, "image/png")
    assert refused.value.status_code == 415
    assert f"is {name}; send JPEG, PNG, WebP, HEIC, AVIF, BMP, GIF or TIFF" in refused.value.message


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    # 30000 x 30000 declared, a few bytes of data: decoding would fail (400), so 413 proves the header check came first.
    bomb = png_header_only(30_000, 30_000)
    assert len(bomb) < 200
    with pytest.raises(TooManyPixels) as refused:
        decode(bomb, "image/png")
    assert refused.value.status_code == 413
    assert "900,000,000 pixels; the limit is 10,000,000" in refused.value.message


def test_a_header_over_the_limit_is_refused_before_decoding() -> None:
    bomb = png_header_only(5_000, 4_000)  # 20 MP declared: under PIL's own guard, over ours
    with pytest.raises(TooManyPixels) as refused:
        decode(bomb, "image/png")
    assert "5000x4000 = 20,000,000 pixels" in refused.value.message


def test_the_pixel_limit_is_configurable() -> None:
    data = encode(noise_image(5, (120, 100)), "PNG")
    assert decode(data, max_pixels=12_000).image.size == (120, 100)
    with pytest.raises(TooManyPixels):
        decode(data, max_pixels=11_999)


def test_transparency_is_flattened_onto_white() -> None:
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    photo = decode(encode(rgba, "PNG"))
    assert photo.image.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_grey_is_scaled_to_eight_bits_not_clipped() -> None:
    # PIL's own convert("RGB") clips a 16-bit pixel at 255: a mid-grey 16-bit PNG would arrive white.
    grey = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    photo = decode(encode(grey, "PNG"))
    assert photo.image.mode == "RGB"
    assert photo.image.getpixel((0, 0)) == (128, 128, 128)


def test_exif_orientation_is_applied() -> None:
    # Stored 60 wide x 30 high, tagged 'rotate 90 clockwise to display' (orientation 6): upright it is 30 x 60.
    stored = Image.new("RGB", (60, 30), (0, 0, 0))
    stored.paste((255, 255, 255), (0, 0, 10, 30))  # a white band on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = decode(encode(stored, "JPEG", exif=exif, quality=95))
    assert photo.image.size == photo.original_size == (30, 60)
    assert photo.image.getpixel((15, 3))[0] > 200  # the band is now along the top


def test_large_jpegs_decode_reduced_and_boxes_map_back() -> None:
    data = encode(Image.new("RGB", (6000, 3000), (10, 20, 30)), "JPEG", quality=50)
    photo = decode(data, max_side=2048, max_pixels=20_000_000)
    assert photo.original_size == (6000, 3000)
    assert 2048 <= photo.image.width < 6000  # decoded at 1/2 scale (3000 px wide)
    assert photo.to_original((100, 50, 200, 100)) == (200, 100, 400, 200)
    assert photo.to_original((-10, -10, 50, 50)) == (0, 0, 80, 80)  # clipped to the picture


def test_a_large_rotated_jpeg_is_reduced_upright_and_boxes_map_back() -> None:
    stored = Image.new("RGB", (4500, 2200), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display: upright it is 2200 wide, 4500 high
    photo = decode(encode(stored, "JPEG", exif=exif, quality=50), max_side=2048, max_pixels=20_000_000)
    assert photo.original_size == (2200, 4500)
    assert photo.image.size == (1100, 2250)  # decoded at 1/2 by libjpeg, then turned upright
    assert photo.to_original((10, 20, 100, 200)) == (20, 40, 200, 400)


def test_a_large_png_is_kept_reduced_by_an_integer_factor() -> None:
    photo = decode(encode(Image.new("L", (6200, 900), 77), "PNG"), max_side=2048, max_pixels=20_000_000)
    assert photo.original_size == (6200, 900)
    assert photo.image.size == (2067, 300)  # 1/3: the largest factor that keeps 2048 pixels a side
    assert photo.image.mode == "RGB" and photo.image.getpixel((5, 5)) == (77, 77, 77)


@pytest.mark.parametrize("size", [(1, 20_000), (20_000, 1), (3, 9_000)])
def test_a_reduced_strip_maps_its_boxes_back_to_its_full_size(size: tuple[int, int]) -> None:
    """Reduction rounds each side up, so the short side of a strip barely shrinks: the scale is the long side's."""
    photo = decode(encode(Image.new("L", size, 77), "PNG"), max_side=2048, max_pixels=40_000_000)
    assert max(photo.image.size) < max(size)  # reduced
    assert photo.to_original((0, 0, *photo.image.size)) == (0, 0, *size)


def test_reduced_sixteen_bit_grey_keeps_its_depth() -> None:
    # A dark 16-bit picture (values under 256): scaled by 65535 as 16 bits, whether or not it is reduced.
    grey = Image.fromarray(np.full((100, 5000), 200, dtype=np.uint16))
    small, large = (decode(encode(grey.crop((0, 0, 50, 50)), "PNG")), decode(encode(grey, "PNG"), max_side=2048))
    assert large.image.size == (2500, 50)
    assert small.image.getpixel((1, 1)) == large.image.getpixel((1, 1)) == (1, 1, 1)

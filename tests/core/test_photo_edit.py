"""Putting a redrawn face back into its photo (model_core.photo_edit): only the face's square changes, only in brightness."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_core.data import DataError
from model_core.data.dataset import decode
from model_core.data.records import Record
from model_core.faces import Face, whole_image
from model_core.image_formats import is_lossy
from model_core.photo_edit import (
    Turn,
    changed_outside,
    crop_box,
    encode_like,
    face_tile,
    face_turn,
    feather,
    read_photo,
    redraw_in_photo,
    scale_box,
)
from model_core.preprocess import Preprocess

from ..service.helpers import png_header_only


def colour_photo(size: tuple[int, int] = (200, 150), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(40, 200, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def test_feather_is_one_inside_and_fades_to_nothing_at_the_border() -> None:
    weights = feather(100, 80)
    assert weights.shape == (80, 100)
    assert weights[40, 50] == pytest.approx(1.0) and weights[0, 0] < 0.01 and weights[40, 0] < 0.05
    assert np.all(np.diff(weights[40, :50]) >= 0)  # rising towards the centre


def test_the_change_lands_in_the_box_and_keeps_every_other_pixel() -> None:
    photo = colour_photo()
    box = (60, 30, 124, 94)  # 64 x 64
    before = np.full((48, 48), 100.0, dtype=np.float32)
    after = before + 30.0  # the network brightened the whole crop
    edited = redraw_in_photo(photo, box, before, after)
    assert edited.size == photo.size and edited.mode == "RGB"
    assert changed_outside(photo, edited, box) == 0.0
    a, b = np.asarray(photo, dtype=int), np.asarray(edited, dtype=int)
    assert (b[62, 92] - a[62, 92] >= 28).all()  # the centre of the box: about +30 on every channel
    unclipped = b < 255
    assert np.array_equal((b[..., 0] - b[..., 2])[unclipped.all(-1)], (a[..., 0] - a[..., 2])[unclipped.all(-1)])  # chroma kept


def test_a_turned_face_gets_its_change_turned_back_and_nothing_beyond_the_turned_square() -> None:
    photo = Image.new("L", (200, 200), 100)
    box, turn = (60, 60, 140, 140), Turn(30.0, (100.0, 100.0))  # the crop was turned by 30 degrees about its centre
    before = np.zeros((48, 48), dtype=np.float32)
    after = before.copy()
    after[22:26, 8:40] = 60.0  # the network drew a level bar across the upright face
    edited = np.asarray(redraw_in_photo(photo, box, before, after, turn), dtype=int) - 100
    ys, xs = np.nonzero(edited > 20)
    slope = np.degrees(np.arctan2(-(ys - ys.mean()) @ (xs - xs.mean()), (xs - xs.mean()) @ (xs - xs.mean())))
    assert slope == pytest.approx(-30.0, abs=4)  # back as the face lies: turned the other way
    assert np.hypot(ys - 100, xs - 100).max() < 40 * np.sqrt(2)  # within the turned square
    far = np.ones_like(edited, dtype=bool)
    far[60 - 18 : 140 + 18, 60 - 18 : 140 + 18] = False
    assert (edited[far] == 0).all()
    level = np.asarray(redraw_in_photo(photo, box, before, after), dtype=int) - 100
    assert np.array_equal(np.asarray(redraw_in_photo(photo, box, before, after, None), dtype=int) - 100, level)


def test_face_turn_is_the_face_tilt_about_its_centre_in_the_answer_pixels() -> None:
    assert face_turn(Face(box=(10, 20, 40, 60), score=0.9)) is None
    assert face_turn(Face(box=(10, 20, 40, 60), score=0.9, angle=-12.0), 0.5) == Turn(-12.0, (60.0, 100.0))


def test_a_box_past_the_photo_edge_changes_only_the_part_inside() -> None:
    photo = colour_photo()
    before = np.zeros((48, 48), dtype=np.float32)
    edited = redraw_in_photo(photo, (-30, -30, 50, 50), before, before + 20)
    a, b = np.asarray(photo, dtype=int), np.asarray(edited, dtype=int)
    assert (a[60:, :] == b[60:, :]).all() and (a[:, 60:] == b[:, 60:]).all()
    assert (b[10, 10] > a[10, 10]).all()


def test_no_change_gives_the_photo_back_byte_for_byte() -> None:
    photo = colour_photo()
    same = np.random.default_rng(1).uniform(0, 255, (48, 48)).astype(np.float32)
    assert redraw_in_photo(photo, (10, 10, 110, 110), same, same).tobytes() == photo.tobytes()


def test_grey_photos_stay_grey() -> None:
    photo = colour_photo().convert("L")
    edited = redraw_in_photo(photo, (0, 0, 100, 100), np.zeros((48, 48), np.float32), np.full((48, 48), 10, np.float32))
    assert edited.mode == "L" and np.asarray(edited, int)[50, 50] - np.asarray(photo, int)[50, 50] == 10


def test_crop_box_matches_how_faces_are_cut() -> None:
    preprocess = Preprocess()
    photo = colour_photo()
    assert crop_box(whole_image(photo), photo.size, preprocess) == (0, 0, 200, 150)
    face = Face(box=(50, 40, 60, 70), score=0.9)
    assert crop_box(face, photo.size, preprocess) == preprocess.face_box(face.box, photo.size)
    assert scale_box((10, 20, 30, 40), 0.5) == (20, 40, 60, 80)


def test_encode_like_keeps_the_upload_family_and_its_fidelity() -> None:
    photo = colour_photo()
    families = (("JPEG", True, "JPEG"), ("WEBP", True, "WEBP"), ("WEBP", False, "WEBP"), ("PNG", False, "PNG"), ("TIFF", False, "PNG"),
                ("HEIF", True, "JPEG"), ("AVIF", True, "AVIF"))
    for upload, lossy, answered in families:
        data, media_type = encode_like(photo, upload, lossy)
        assert media_type == f"image/{answered.lower()}"
        assert Image.open(io.BytesIO(data)).format == answered and Image.open(io.BytesIO(data)).size == photo.size
        # A lossless upload keeps every pixel; a lossy one is answered with loss (a WebP's picture chunk says which).
        assert is_lossy(answered, data) == lossy, (upload, lossy)
        if not lossy:
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), np.asarray(photo))


def test_an_animated_webp_is_lossy_by_its_first_frame_and_an_mpo_is_a_jpeg() -> None:
    frames = [colour_photo((40, 30)), colour_photo((40, 30)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    for options, lossy in (({"quality": 80}, True), ({"lossless": True}, False)):
        animation = io.BytesIO()
        frames[0].save(animation, "WEBP", save_all=True, append_images=frames[1:], **options)
        assert b"ANMF" in animation.getvalue()
        assert is_lossy("WEBP", animation.getvalue()) == lossy
    # A phone's depth photo or HDR gain map is a JPEG holding several pictures; Pillow calls it MPO
    mpo = io.BytesIO()
    frames[0].save(mpo, "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(mpo.getvalue())).format == "MPO" and is_lossy("MPO", mpo.getvalue())
    assert encode_like(frames[0], "MPO", lossy=True)[1] == "image/jpeg"


def test_a_webp_is_lossy_by_its_picture_chunk() -> None:
    photo = colour_photo((40, 30))
    for options, lossy in (({"quality": 80}, True), ({"lossless": True}, False)):
        simple, with_extras = io.BytesIO(), io.BytesIO()
        photo.save(simple, "WEBP", **options)
        photo.convert("RGBA").save(with_extras, "WEBP", icc_profile=b"\x00" * 301, **options)  # VP8X, ICCP (odd size), ALPH
        plain, extended = simple.getvalue(), with_extras.getvalue()
        assert plain[12:16] in (b"VP8 ", b"VP8L") and extended[12:16] == b"VP8X"
        assert is_lossy("WEBP", plain) == is_lossy("WEBP", extended) == lossy
    assert not is_lossy("WEBP", b"RIFF\x00\x00\x00\x00WEBP")  # no picture: kept lossless


def test_a_colour_profile_travels_only_where_it_describes_the_pixels() -> None:
    from PIL import ImageCms

    rgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cmyk = rgb[:16] + b"CMYK" + rgb[20:]  # the header of a CMYK upload's profile, left on its pixels converted to RGB
    for profile, kept in ((rgb, True), (cmyk, False)):
        photo = colour_photo()
        photo.info["icc_profile"] = profile
        for upload in ("JPEG", "WEBP", "PNG"):
            data, _ = encode_like(photo, upload, upload == "JPEG")
            assert Image.open(io.BytesIO(data)).info.get("icc_profile") == (profile if kept else None), upload


def test_face_tile_is_a_square_of_the_box() -> None:
    tile = face_tile(colour_photo(), (150, 100, 250, 200), side=64)
    assert tile.size == (64, 64) and tile.mode == "RGB"


def test_read_photo_gives_an_upright_grey_or_rgb_image_and_its_format(tmp_path: Path) -> None:
    Image.new("RGBA", (30, 20), (10, 20, 30, 128)).save(tmp_path / "a.png")
    image, fmt, lossy = read_photo(tmp_path / "a.png")
    assert (image.mode, image.size, fmt, lossy) == ("RGB", (30, 20), "PNG", False)
    turned = colour_photo((30, 20))
    exif = turned.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    turned.save(tmp_path / "b.jpg", exif=exif)
    image, fmt, lossy = read_photo(tmp_path / "b.jpg")
    assert (image.size, fmt, lossy) == ((20, 30), "JPEG", True)
    (tmp_path / "c.png").write_bytes(b"not an image")
    damaged = io.BytesIO()
    colour_photo((64, 64)).save(damaged, "AVIF", quality=60)
    payload = damaged.getvalue().index(b"mdat") + 4
    (tmp_path / "d.avif").write_bytes(damaged.getvalue()[:payload] + b"\xff" * (len(damaged.getvalue()) - payload))  # AV1 decoder: RuntimeError
    for name, message in (("c.png", "not a JPEG, PNG, WebP"), ("d.avif", "cannot read image")):
        with pytest.raises(DataError, match=f"{name}: {message}") as refused:
            read_photo(tmp_path / name)
        assert " at 0x" not in str(refused.value)  # no object reprs
    with pytest.raises(DataError, match="missing.png: no such file"):
        read_photo(tmp_path / "missing.png")
    with pytest.raises(DataError, match="a folder, not an image file"):
        read_photo(tmp_path)
    (tmp_path / "e.png").write_bytes(png_header_only(20_000, 20_000))  # past Pillow's own limit: its bomb error
    with pytest.raises(DataError, match="e.png: cannot read image .its header declares more pixels"):
        read_photo(tmp_path / "e.png")


@pytest.mark.parametrize(("name", "fmt", "said"), [
    ("f.ico", "ICO", "an ICO file, which is not read here; use JPEG, PNG, WebP"),
    ("f.eps", "EPS", "an EPS file, which is not read here; use JPEG, PNG, WebP"),
    ("f.tga", "TGA", "not a JPEG, PNG, WebP, .* or PGM/PPM picture, or a damaged one"),  # no signature to tell it by
    ("f.pcx", "PCX", "not a JPEG, PNG, WebP, .* or PGM/PPM picture, or a damaged one"),
    ("f.sgi", "SGI", "not a JPEG, PNG, WebP, .* or PGM/PPM picture, or a damaged one"),
])
def test_a_user_s_file_is_opened_only_as_a_format_the_project_reads(tmp_path: Path, name: str, fmt: str, said: str) -> None:
    """Pillow would open these (an EPS by running Ghostscript where it is installed); the service answers them 415,
    and the command line and dataset folders now read no more than it does, naming the format where it is known."""
    picture = colour_photo((32, 32))
    picture.save(tmp_path / name, fmt)
    for read in (read_photo, lambda path: decode(Record(str(path), 0), Preprocess())):
        with pytest.raises(DataError, match=f"{name}: {said}"):
            read(tmp_path / name)
    picture.convert("L").save(tmp_path / "face.pgm")  # older face databases' PGM still is one
    assert read_photo(tmp_path / "face.pgm").image.size == (32, 32)


def test_a_file_larger_than_any_picture_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A 10 GB sparse file named .jpg: read whole, it ended the command with a MemoryError traceback."""
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as f:
        f.truncate(10 * 2**30)  # sparse: no disk used
    message = r"huge.jpg: 10,240 MB, more than any picture this reads \(256 MB at most\)"
    with pytest.raises(DataError, match=message):
        read_photo(huge)
    with pytest.raises(DataError, match=message):  # a dataset folder's file: the same check, the same words
        decode(Record(str(huge), 0), Preprocess())

"""The shared preprocessing path and its inverse, and face framing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model_core import Preprocess


def test_to_tensor_and_back_is_lossless_for_grey() -> None:
    pre = Preprocess(img_size=48)
    pixels = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    tensor = pre(Image.fromarray(pixels))
    assert tensor.shape == (1, 48, 48) and tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(pre.to_uint8(tensor), pixels)


def test_colour_photos_become_grey_at_model_size() -> None:
    pre = Preprocess(img_size=96, in_chans=1)
    tensor = pre(Image.new("RGB", (300, 200), (200, 10, 10)))
    assert tensor.shape == (1, 96, 96)
    colour = Preprocess(img_size=48, in_chans=3)(Image.new("L", (20, 20), 128))
    assert colour.shape == (3, 48, 48)


def test_array_pil_and_uint8_tensor_inputs_agree() -> None:
    pre = Preprocess(img_size=8)
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    a = pre.to_tensor(pixels)
    b = pre.to_tensor(Image.fromarray(pixels))
    c = pre.to_tensor(torch.from_numpy(pixels)[None])
    assert torch.equal(a, b) and torch.equal(a, c)


def test_face_crop_is_square_scaled_and_padded_with_grey() -> None:
    pre = Preprocess(face_scale=1.5, face_shift=0.0)
    photo = Image.new("L", (100, 100), 255)
    crop = pre.crop_face(photo, (0, 0, 40, 40))  # a face at the corner: the crop reaches past the edge
    assert crop.size == (60, 60)
    array = np.asarray(crop)
    assert array[0, 0] == 128 and array[-1, -1] == 255
    left, top, right, bottom = pre.face_box((10, 20, 30, 40), (100, 100))
    assert right - left == bottom - top == 60
    assert (left + right) / 2 == 25 and (top + bottom) / 2 == 40


def test_a_turned_crop_is_upright_about_the_face_and_small_when_the_face_is_large() -> None:
    pre = Preprocess(face_scale=1.0)
    photo = Image.new("L", (200, 200), 0)
    photo.paste(255, (60, 98, 140, 102))  # a level bar through (100, 100): the "eyes"
    tilted = photo.rotate(30, resample=Image.Resampling.BICUBIC, center=(100, 100))
    upright = np.asarray(pre.crop_face(tilted, (60, 60, 80, 80), -30.0), dtype=int)  # turned back about the box's centre
    level = np.asarray(pre.crop_face(photo, (60, 60, 80, 80)), dtype=int)
    assert upright.shape == level.shape == (80, 80)
    assert np.abs(upright - level).mean() < 4 and np.abs(np.asarray(pre.crop_face(tilted, (60, 60, 80, 80)), dtype=int) - level).mean() > 20
    # Past the photo's edge the turned crop is grey, as an unturned one is; a large face is cut at 4 inputs across.
    corner = np.asarray(pre.crop_face(Image.new("L", (100, 100), 255), (0, 0, 40, 40), 20.0))
    assert corner[0, 0] == 128 and corner[-1, -1] == 255
    assert pre.crop_face(Image.new("L", (1200, 1200), 255), (100, 100, 900, 900), 10.0).size == (4 * pre.img_size,) * 2


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)), 128),  # 16-bit grey: scaled, not clipped to 255
        (Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)), 128),  # float grey in [0, 1]
        (Image.new("LA", (4, 4), (0, 0)), 255),  # transparent: white, not black
        (Image.new("RGBA", (4, 4), (0, 0, 0, 0)), 255),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 255)), 0),  # full black ink
        (Image.new("1", (4, 4), 1), 255),
    ],
    ids=["I;16", "F", "LA", "RGBA", "CMYK", "1"],
)
def test_every_pixel_format_is_prepared_as_a_viewer_shows_it(image: Image.Image, expected: int) -> None:
    prepared = Preprocess(img_size=4).prepare(image)
    assert prepared.mode == "L"
    assert abs(int(np.asarray(prepared)[0, 0]) - expected) <= 1

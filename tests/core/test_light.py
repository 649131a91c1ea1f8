"""level_light: a face's mean brightness moved by a power curve, so dim and bright photos read as if well lit."""

from __future__ import annotations

import pytest
import torch

from model_core.light import level_light

MEAN = 0.5


BRIGHTNESS = (0.2, 0.3, 0.35, 0.4, 0.6, 0.65, 0.7, 0.8)


def _faces(n: int = len(BRIGHTNESS)) -> torch.Tensor:
    """Smooth random faces in [-1, 1], each of its own brightness (about BRIGHTNESS)."""
    torch.manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(n, 1, 6, 6), size=48, mode="bilinear", align_corners=False)
    return (base * 0.3 - 0.15 + torch.tensor(BRIGHTNESS[:n]).view(n, 1, 1, 1)) * 2 - 1


def _gamma(images: torch.Tensor, power: float) -> torch.Tensor:
    return ((images + 1) / 2).pow(power) * 2 - 1


def test_a_face_at_the_target_brightness_is_left_as_it_is() -> None:
    face = torch.full((1, 1, 48, 48), MEAN) * 2 - 1
    face[..., :24] += 0.2
    face[..., 24:] -= 0.2  # mean still MEAN: the power is 1
    assert torch.allclose(level_light(face, MEAN), face, atol=1e-6)


def test_each_face_is_taken_near_the_target_brightness_keeping_black_and_white() -> None:
    faces = _faces()
    faces[:, :, 0, 0], faces[:, :, -1, -1] = -1.0, 1.0
    levelled = level_light(faces, MEAN)
    before = ((faces + 1) / 2).mean((1, 2, 3))
    after = ((levelled + 1) / 2).mean((1, 2, 3))
    assert (before - MEAN).abs().min() > 0.05  # every face starts away from the target ...
    assert (after - MEAN).abs().max() < 0.05  # ... and ends near it
    assert torch.equal(levelled[:, :, 0, 0], faces[:, :, 0, 0]) and torch.equal(levelled[:, :, -1, -1], faces[:, :, -1, -1])


@pytest.mark.parametrize("power", [2.2, 1 / 2.2])
def test_a_face_dimmed_or_brightened_by_a_gamma_reads_nearly_as_before(power: float) -> None:
    faces = _faces()
    changed = _gamma(faces, power)
    gap_before = (changed - faces).abs().mean()
    gap_after = (level_light(changed, MEAN) - level_light(faces, MEAN)).abs().mean()
    assert gap_after < gap_before / 4


def test_dark_and_blank_faces_stay_finite_and_the_dtype_is_kept() -> None:
    faces = torch.stack([torch.full((1, 48, 48), -1.0), torch.full((1, 48, 48), 1.0), torch.full((1, 48, 48), -0.999)])
    levelled = level_light(faces.bfloat16(), MEAN)
    assert levelled.dtype == torch.bfloat16
    assert torch.isfinite(levelled.float()).all() and levelled.float().abs().max() <= 1


@pytest.mark.parametrize("mean", [0.0, 1.0, -0.2, 1.5])
def test_a_target_outside_zero_and_one_is_refused(mean: float) -> None:
    with pytest.raises(ValueError, match="mean brightness"):
        level_light(_faces(1), mean)

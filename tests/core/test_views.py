"""The looks at a face that recognition averages (model_core.views): zooms as fixed pixel maps, and classify over them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model_core import FERSNetConfig, create_model, load_checkpoint
from model_core.card import Calibration
from model_core.checkpoint import write_card
from model_core.export import export_classifier, resave_checkpoint
from model_core.expressions import FERPLUS_CLASSES
from model_core.views import Views, zoom_matrix

from ..shared_fixtures import MakeCheckpoint


def _grid_zoom(images: torch.Tensor, zoom: float) -> torch.Tensor:
    """The same zoom through grid_sample: what the matrices must reproduce."""
    theta = torch.tensor([[1 / zoom, 0.0, 0.0], [0.0, 1 / zoom, 0.0]]).expand(len(images), 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False)


@pytest.mark.parametrize("zoom", [1.05, 1.3, 0.9, 0.6])
def test_a_zoom_matrix_resamples_as_grid_sample_does(zoom: float) -> None:
    images = torch.rand(2, 1, 48, 48)
    matrix = zoom_matrix(48, zoom)
    assert torch.allclose(matrix @ images @ matrix.T, _grid_zoom(images, zoom), atol=1e-4)
    assert torch.allclose(matrix.sum(1), torch.ones(48))  # every output pixel a weighted mean: brightness kept


def test_a_zoom_keeps_the_centre_and_enlarges_about_it() -> None:
    row = torch.zeros(48)
    row[23:25] = 1.0  # a bar two pixels wide in the middle
    zoomed = zoom_matrix(48, 2.0) @ row
    assert torch.equal(zoomed, zoomed.flip(0))  # symmetric about the centre, as the bar was
    assert int((zoomed > 0.5).sum()) == 4  # twice as wide
    assert torch.equal(zoom_matrix(48, 1.0), torch.eye(48))
    with pytest.raises(ValueError, match="positive"):
        zoom_matrix(48, 0.0)


def test_no_zooms_and_no_mirror_leave_the_batch_alone() -> None:
    views = Views(48)
    images = torch.rand(3, 1, 48, 48)
    assert len(views) == 1 and views.expand(images) is images and views.average(images) is images
    assert len(Views(48, (1.05,), mirror=True)) == 4


def test_classify_averages_the_face_its_zoomed_copy_and_both_mirror_images() -> None:
    torch.manual_seed(0)
    plain = create_model("fersnet_tiny").eval()
    looking = create_model("fersnet_tiny", flip_average=True, test_time_zooms=(1.1,)).eval()
    looking.load_state_dict(plain.state_dict())  # the looks add no weights
    x = torch.rand(3, 1, 48, 48) * 2 - 1
    zoomed = _grid_zoom(x, 1.1)
    with torch.inference_mode():
        expected = sum(plain.recognise(v) for v in (x, x.flip(3), zoomed, zoomed.flip(3))) / 4
        assert torch.allclose(looking.classify(x, head="expression"), expected, atol=1e-4)
        assert not torch.allclose(plain.classify(x), expected, atol=1e-3)


def test_the_zooms_travel_with_the_config_and_are_checked() -> None:
    config = FERSNetConfig.from_dict(FERSNetConfig(test_time_zooms=[1.05, 0.95]).to_dict())  # type: ignore[arg-type]
    assert config.test_time_zooms == (1.05, 0.95)  # a card's JSON list becomes the config's tuple
    for bad in ((1.0,), (0.2,), (3.0,)):
        with pytest.raises(ValueError, match="test_time_zooms"):
            FERSNetConfig(test_time_zooms=bad)


def test_resaving_with_zooms_keeps_the_weights_and_drops_what_described_the_old_answers(
        make_checkpoint: MakeCheckpoint, tmp_path: Path) -> None:
    folder = make_checkpoint(answer=FERPLUS_CLASSES, flip_average=True)
    card = load_checkpoint(folder).card
    card.metrics = {"ferplus/val": {"accuracy": 0.5}}
    card.calibration = Calibration(temperature=0.7, method="test", fitted_on="test", command="test", measured={})
    write_card(folder, card)
    loaded = load_checkpoint(folder)
    zoomed = load_checkpoint(resave_checkpoint(loaded, tmp_path / "zoomed", name="zoomed", test_time_zooms=[1.05]))
    assert zoomed.card.name == "zoomed" and zoomed.model.config.test_time_zooms == (1.05,)
    assert zoomed.card.metrics == {} and zoomed.card.calibration is None
    assert zoomed.sha256 == loaded.sha256  # the same bytes: only how the face is looked at changed
    renamed = load_checkpoint(resave_checkpoint(loaded, tmp_path / "renamed", name="renamed"))
    assert renamed.card.metrics == card.metrics and renamed.temperature == 0.7  # nothing changed, so nothing dropped

    program = torch.export.load(str(export_classifier(zoomed, tmp_path / "classifier.pt2"))).module()
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(program(x), zoomed.probabilities(zoomed.model.classify(x)), atol=1e-5)
        assert not torch.allclose(zoomed.model.classify(x), loaded.model.classify(x), atol=1e-4)


@pytest.mark.parametrize("answer_classes", [8, 0])
def test_both_heads_from_one_pass_are_what_each_head_answers_alone(answer_classes: int) -> None:
    """classify_heads shares the trunk between the expression head and the answer tail, over the same looks; a network
    without a tail serves its expression head, so both of its entries are that head's."""
    torch.manual_seed(0)
    model = create_model("fersnet_tiny", answer_classes=answer_classes, flip_average=True, test_time_zooms=(1.1,)).eval()
    x = torch.rand(3, 1, 48, 48) * 2 - 1
    with torch.inference_mode():
        both = model.classify_heads(x)
        for head in ("served", "expression"):
            assert torch.allclose(both[head], model.classify(x, head), atol=1e-5), head
    assert both["served"].shape == (3, answer_classes or 7) and both["expression"].shape == (3, 7)

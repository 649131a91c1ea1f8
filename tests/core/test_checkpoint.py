"""Checkpoints round-trip exactly and refuse anything altered or mismatched, without unpickling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model_core import CheckpointError, Preprocess, create_model, load_checkpoint, save_checkpoint
from model_core.checkpoint import build_card, load_state, save_state
from model_core.expressions import FER2013_CLASSES

from ..shared_fixtures import MakeCheckpoint


@pytest.fixture
def checkpoint(make_checkpoint: MakeCheckpoint) -> Path:
    return make_checkpoint()


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("fersnet_tiny").eval()
    folder = save_checkpoint(tmp_path / "c", model, build_card(model, FER2013_CLASSES, Preprocess()))
    loaded = load_checkpoint(folder)
    x = torch.randn(2, 1, 48, 48)
    assert torch.equal(loaded.model.classify(x), model.classify(x))
    assert loaded.classes == FER2013_CLASSES and loaded.preprocess == Preprocess()
    card = json.loads((folder / "card.json").read_text())
    assert card["weights"]["sha256"] == loaded.sha256 and card["variant"] == "fersnet_tiny"


def test_also_accepts_the_card_or_weights_path(checkpoint: Path) -> None:
    assert load_checkpoint(checkpoint / "card.json").path == checkpoint
    assert load_checkpoint(checkpoint / "model.safetensors").path == checkpoint


def test_tampered_weights_are_refused(checkpoint: Path) -> None:
    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(checkpoint)


def test_card_describing_another_network_is_refused(checkpoint: Path) -> None:
    card = json.loads((checkpoint / "card.json").read_text())
    card["config"]["stem_width"] = 16
    (checkpoint / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_checkpoint(checkpoint)


def test_weights_of_another_network_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    other = create_model("fersnet_tiny", sharing="none")
    save_checkpoint(tmp_path / "other", other, build_card(other, FER2013_CLASSES, Preprocess()))
    card = json.loads((checkpoint / "card.json").read_text())
    card["weights"]["sha256"] = json.loads((tmp_path / "other" / "card.json").read_text())["weights"]["sha256"]
    (checkpoint / "card.json").write_text(json.dumps(card))
    (checkpoint / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="missing .* tensors"):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize("damage", ["no_card", "bad_json", "not_a_card", "no_weights"])
def test_broken_checkpoints_have_clear_errors(checkpoint: Path, damage: str) -> None:
    card = checkpoint / "card.json"
    if damage == "no_card":
        card.unlink()
        match = "card missing"
    elif damage == "bad_json":
        card.write_text("{")
        match = "not valid JSON"
    elif damage == "not_a_card":
        card.write_text('{"format": "pickle"}')
        match = "not a FERSNet model card"
    else:
        (checkpoint / "model.safetensors").unlink()
        match = "weights file missing"
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(checkpoint)


def test_weights_cut_into_shards_load_and_are_hash_checked(checkpoint: Path) -> None:
    weights = checkpoint / "model.safetensors"
    whole = load_checkpoint(checkpoint)
    data = weights.read_bytes()
    cut = len(data) // 3
    for i, start in enumerate(range(0, len(data), cut)):  # what `split -b ... -d` makes
        (checkpoint / f"model.safetensors.part-{i:02d}").write_bytes(data[start : start + cut])
    weights.unlink()
    sharded = load_checkpoint(checkpoint)
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, sharded.model.state_dict()[name]), name
    (checkpoint / "model.safetensors.part-01").unlink()  # a shard lost in transit
    with pytest.raises(CheckpointError, match=r"part-\{00\.\.0\d\}: sha256"):
        load_checkpoint(checkpoint)


def test_bundled_checkpoints_are_found_by_name() -> None:
    from model_core.registry import BUNDLED

    assert {"default", "fer2013_paper_gpu", "fer2013_paper_none_gpu"} <= set(BUNDLED)
    card = json.loads((BUNDLED["fer2013_paper_gpu"].folder / "card.json").read_text())
    assert card["variant"] == "fersnet_paper" and card["sharing"] == "selective"
    with pytest.raises(CheckpointError, match="bundled checkpoint: default, fer2013_small_masked, fer2013_paper_gpu"):
        load_checkpoint("no_such_model")


@pytest.mark.slow
def test_the_sharded_full_size_model_loads_by_name() -> None:
    loaded = load_checkpoint("fer2013_paper_gpu")
    assert loaded.model.config.img_size == 96 and loaded.model.has_synthesis
    assert sum(p.numel() for p in loaded.model.parameters()) == loaded.card.parameters


@pytest.mark.slow
def test_the_recognition_only_full_size_model_loads_by_name_and_cannot_synthesise() -> None:
    """The single-task row trained on the GPU: the full-size recognition branch alone, no decoder to serve."""
    loaded = load_checkpoint("fer2013_paper_none_gpu")
    assert loaded.model.config.img_size == 96 and loaded.card.sharing == "none"
    assert not loaded.model.has_synthesis
    assert sum(p.numel() for p in loaded.model.parameters()) == loaded.card.parameters


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")


def test_a_file_named_as_a_checkpoint_is_said_to_be_a_file(tmp_path: Path) -> None:
    """``--checkpoint photo.jpg``: the file is there, so "not found" would send its user looking for it."""
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(CheckpointError, match=r"photo.jpg is a file, not a checkpoint folder"):
        load_checkpoint(tmp_path / "photo.jpg")


def test_half_precision_export_loads_as_float32(tmp_path: Path) -> None:
    model = create_model("fersnet_tiny").eval()
    folder = save_checkpoint(tmp_path / "h", model, build_card(model, FER2013_CLASSES, Preprocess()), half=True)
    loaded = load_checkpoint(folder)
    assert next(loaded.model.parameters()).dtype == torch.float32
    x = torch.randn(1, 1, 48, 48)
    assert torch.allclose(loaded.model.classify(x), model.classify(x), atol=5e-2)


def test_training_state_round_trips_without_pickle(tmp_path: Path) -> None:
    model = create_model("fersnet_tiny")
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 1, 48, 48), torch.eye(7)[:2]).synthesis.mean().backward()
    optimizer.step()
    state = {"optimizer": optimizer.state_dict(), "epoch": 3, "pair": (1, "a"), "none": None}
    save_state(tmp_path / "s", state)
    assert not list((tmp_path / "s").glob("*.pt"))
    back = load_state(tmp_path / "s")
    assert back["epoch"] == 3 and back["pair"] == (1, "a") and back["none"] is None
    fresh = torch.optim.AdamW(model.parameters())
    fresh.load_state_dict(back["optimizer"])
    k = next(iter(optimizer.state))
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state[k]["exp_avg"])


def _poison(folder: Path, key_part: str, value: float) -> None:
    """Set every value of the first tensor whose name contains ``key_part``, and update the card's hash (as an attacker would)."""
    from safetensors.torch import load_file, save_file

    from model_core.checkpoint import sha256_file

    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    key = next(k for k in sorted(tensors) if key_part in k and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], value)
    save_file(tensors, str(weights))
    card = json.loads((folder / "card.json").read_text())
    card["weights"]["sha256"] = sha256_file(weights)
    (folder / "card.json").write_text(json.dumps(card))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_holding_nan_or_infinity_are_refused_even_with_a_matching_hash(checkpoint: Path, value: float) -> None:
    _poison(checkpoint, "weight", value)
    with pytest.raises(CheckpointError, match="NaN or infinite values"):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside.safetensors", "sub/../../outside.safetensors"])
def test_a_card_cannot_point_outside_its_folder(checkpoint: Path, target: str) -> None:
    (checkpoint.parent / "outside.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes())
    card = json.loads((checkpoint / "card.json").read_text())
    card["weights"]["file"] = target
    (checkpoint / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        load_checkpoint(checkpoint)


def test_a_symlink_out_of_the_folder_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.safetensors"
    (checkpoint / "model.safetensors").rename(elsewhere)
    (checkpoint / "model.safetensors").symlink_to(elsewhere)
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        load_checkpoint(checkpoint)

"""The model card is typed: a good card round-trips, a broken one is refused naming its file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model_core import CheckpointError, ModelCard, Preprocess, create_model, load_checkpoint, save_checkpoint
from model_core.card import CardDraft
from model_core.checkpoint import build_card, read_card, write_card
from model_core.expressions import FER2013_CLASSES, FERPLUS_CLASSES
from model_core.registry import BUNDLED

from ..shared_fixtures import MakeCheckpoint


@pytest.fixture
def checkpoint(make_checkpoint: MakeCheckpoint) -> Path:
    return make_checkpoint()


def _rewrite(folder: Path, change: Any) -> Path:
    """Apply ``change`` (a function of the parsed card) to ``folder``'s card.json; returns the card's path."""
    path = folder / "card.json"
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card))
    return path


def test_a_built_card_round_trips(checkpoint: Path) -> None:
    """What build_card and save_checkpoint write reads back as the same typed card and dumps to the same JSON."""
    on_disk = json.loads((checkpoint / "card.json").read_text())
    card = read_card(checkpoint)
    assert isinstance(card, ModelCard) and card.to_json() == on_disk
    assert ModelCard.from_json(card.to_json()) == card
    assert list(on_disk) == ["format", "name", "variant", "sharing", "classes", "input", "config", "parameters",
                             "training", "metrics", "weights", "created"]  # the shape build_card always wrote
    assert card.input == Preprocess() and card.config.widths == create_model("fersnet_tiny").config.widths
    assert card.calibration is None and load_checkpoint(checkpoint).temperature == 1.0
    assert card.intensity is None and load_checkpoint(checkpoint).intensity == 1.0  # no default chosen: as trained


@pytest.mark.parametrize("name", list(BUNDLED))
def test_every_bundled_card_validates_and_keeps_what_it_says(name: str) -> None:
    """Read without rewriting: every section comes back as written; an older config gains only its defaults."""
    folder = BUNDLED[name].folder
    on_disk = json.loads((folder / "card.json").read_text())
    dumped = read_card(folder).to_json()
    assert set(dumped) == set(on_disk)  # the same sections (in the card's order: a rewrite may move figures up)
    for section, value in on_disk.items():
        if section == "config":
            assert {k: dumped["config"][k] for k in value} == value
        else:
            assert dumped[section] == value, section


def test_an_unknown_section_is_kept_through_a_rewrite(checkpoint: Path) -> None:
    _rewrite(checkpoint, lambda card: card.update(licence={"weights": "research only"}))
    card = read_card(checkpoint)
    assert card.other == {"licence": {"weights": "research only"}}
    write_card(checkpoint, card)  # what `fersnet calibrate` does
    assert json.loads((checkpoint / "card.json").read_text())["licence"] == {"weights": "research only"}


@pytest.mark.parametrize(("field", "remove"), [
    ("name", lambda c: c.pop("name")),
    ("classes", lambda c: c.pop("classes")),
    ("weights", lambda c: c.pop("weights")),
    ("weights.sha256", lambda c: c["weights"].pop("sha256")),
    ("calibration.temperature", lambda c: c.update(calibration={"method": "by hand"})),
])
def test_a_card_missing_a_field_is_refused_naming_the_file_and_the_field(
    checkpoint: Path, field: str, remove: Any
) -> None:
    path = _rewrite(checkpoint, remove)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(checkpoint)
    assert str(path) in str(refused.value) and f"{field}: missing" in str(refused.value)


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("name", 3, "name: must be a string, not an integer 3"),
    ("classes", "happy", "classes: must be a list"),
    ("classes[2]", None, "classes[2]: must be a string, not null"),
    ("parameters", "5M", "parameters: must be an integer"),
    ("sharing", "partial", "sharing: must be one of 'none', 'hard', 'selective', not 'partial'"),
    ("input.mean", None, "input.mean: must be a number"),
    ("config.img_size", "48", "config.img_size: must be an integer, not a string '48'"),
    ("config.widths[0]", 1.5, "config.widths[0]: must be an integer"),
    ("config.decoder_skips", "yes", "config.decoder_skips: must be true or false"),
    ("weights.bytes", "big", "weights.bytes: must be an integer"),
    ("weights.sha256", "abc", "weights: sha256 must be 64 lower-case hex digits, not 'abc'"),
    ("calibration", {"temperature": -1.0}, "calibration: temperature must be a positive number"),
    ("intensity", {"default": 7.0}, "intensity: default must be between 0 and 3.0, not 7.0"),
    ("created", "yesterday", "created must be an ISO 8601 time"),
])
def test_a_card_with_a_wrong_value_is_refused_naming_the_file_and_the_field(
    checkpoint: Path, field: str, value: Any, problem: str
) -> None:
    def change(card: dict[str, Any]) -> None:
        *parents, last = field.replace("[", ".[").split(".")
        for key in parents:
            card = card[key]
        if last.startswith("["):
            card[int(last[1:-1])] = value  # type: ignore[index]
        else:
            card[last] = value

    path = _rewrite(checkpoint, change)
    with pytest.raises(CheckpointError) as refused:
        read_card(checkpoint)
    assert str(refused.value).startswith(f"{path}: invalid model card: {problem}"), str(refused.value)


def test_unknown_keys_inside_a_typed_section_are_refused(checkpoint: Path) -> None:
    """A config key this version does not know would build a different network: refused, not ignored."""
    _rewrite(checkpoint, lambda card: card["config"].update(colour=True))
    with pytest.raises(CheckpointError, match=r"config: unknown keys \['colour'\]"):
        read_card(checkpoint)


@pytest.mark.parametrize(("change", "problem"), [
    (lambda c: c["classes"].pop(), "6 classes but num_classes=7"),
    (lambda c: c["classes"].__setitem__(1, "angry"), "repeat a name"),
    (lambda c: c.update(variant="fersnet_paper"), "variant/sharing"),
    (lambda c: c["input"].update(img_size=96), "input is 96 px"),
])
def test_a_card_that_contradicts_itself_is_refused(checkpoint: Path, change: Any, problem: str) -> None:
    _rewrite(checkpoint, change)
    with pytest.raises(CheckpointError, match=problem):
        read_card(checkpoint)


def test_a_card_stating_the_wrong_parameter_count_is_refused(checkpoint: Path) -> None:
    _rewrite(checkpoint, lambda card: card.update(parameters=card["parameters"] + 1))
    with pytest.raises(CheckpointError, match="the network it describes has"):
        load_checkpoint(checkpoint)


def test_build_card_reads_the_network_and_refuses_a_wrong_class_count() -> None:
    model = create_model("fersnet_tiny", sharing="none")
    draft = build_card(model, FER2013_CLASSES, Preprocess(), name="x")
    assert isinstance(draft, CardDraft) and draft.weights is None and draft.created is None
    assert (draft.variant, draft.sharing) == ("fersnet_tiny", "none") and not draft.config.has_synthesis
    assert draft.parameters == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="6 classes but num_classes=7"):
        build_card(model, FER2013_CLASSES[:6], Preprocess())


def test_a_redraft_is_saved_with_new_weights_and_keeps_the_rest(checkpoint: Path, tmp_path: Path) -> None:
    loaded = load_checkpoint(checkpoint)
    draft = loaded.card.redraft(exported_from=loaded.sha256)
    assert draft.weights is None and draft.created is None and draft.name == loaded.card.name
    half = load_checkpoint(save_checkpoint(tmp_path / "half", loaded.model, draft, half=True))
    assert half.card.weights.dtype == "float16" and half.card.exported_from == loaded.sha256
    assert half.card.classes == loaded.card.classes and half.card.config == loaded.card.config


# --------------------------------------------------------------------------- two recognition heads


@pytest.fixture
def two_heads(make_checkpoint: MakeCheckpoint) -> Path:
    """FER2013's seven expressions in the expression head, FER+'s eight (with contempt) in the answer tail."""
    return make_checkpoint("two-heads", answer=FERPLUS_CLASSES)


def test_a_two_head_card_round_trips_and_names_both_heads(two_heads: Path, checkpoint: Path) -> None:
    on_disk = json.loads((two_heads / "card.json").read_text())
    card = read_card(two_heads)
    assert card.to_json() == on_disk and ModelCard.from_json(on_disk) == card
    assert list(on_disk)[4:6] == ["classes", "expressions"] and on_disk["config"]["answer_classes"] == 8
    loaded = load_checkpoint(two_heads)
    assert loaded.classes == loaded.classes_of("served") == FERPLUS_CLASSES
    assert loaded.expressions == loaded.classes_of("expression") == FER2013_CLASSES
    assert card.expression_classes == list(FER2013_CLASSES)
    plain = load_checkpoint(checkpoint)  # one head: its classes are its expressions, and its card says nothing more
    assert plain.expressions == plain.classes == FER2013_CLASSES and plain.card.expressions is None
    assert "expressions" not in json.loads((checkpoint / "card.json").read_text())


def test_a_card_written_before_the_answer_tail_still_loads(checkpoint: Path) -> None:
    _rewrite(checkpoint, lambda card: card["config"].pop("answer_classes"))
    loaded = load_checkpoint(checkpoint)
    assert loaded.model.config.answer_classes == 0 and loaded.expressions == loaded.classes == FER2013_CLASSES


@pytest.mark.parametrize(("change", "problem"), [
    (lambda c: c.pop("expressions"), r"answer tail \(answer_classes=8\), so the card must name the expression head's 7 "
                                     r"classes in expressions"),
    (lambda c: c["classes"].pop(), r"7 classes but answer_classes=8 \(the answer tail's\)"),
    (lambda c: c["expressions"].pop(), "6 expressions but num_classes=7"),
    (lambda c: c["expressions"].__setitem__(1, "angry"), "expressions repeat a name"),
    (lambda c: c["config"].update(answer_classes=-1), "answer_classes must be 0"),
])
def test_a_two_head_card_that_contradicts_itself_is_refused(two_heads: Path, change: Any, problem: str) -> None:
    _rewrite(two_heads, change)
    with pytest.raises(CheckpointError, match=problem):
        read_card(two_heads)


def test_expressions_on_a_one_head_card_are_refused(checkpoint: Path) -> None:
    """Where classes are the expressions, a second list could only disagree with them."""
    _rewrite(checkpoint, lambda card: card.update(expressions=list(FER2013_CLASSES)))
    with pytest.raises(CheckpointError, match=r"expressions given, but the config has no answer tail"):
        read_card(checkpoint)
    with pytest.raises(ValueError, match="expressions given"):
        build_card(create_model("fersnet_tiny"), FER2013_CLASSES, Preprocess(), expressions=FER2013_CLASSES)

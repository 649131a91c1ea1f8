"""One registry of bundled checkpoints: every entry is there and readable, and nothing bundled is missing from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_core import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint, registry
from model_core.checkpoint import read_card, resolve_checkpoint
from model_core.registry import BUNDLED, DEFAULT, bundled_name


@pytest.mark.parametrize("name", list(BUNDLED))
def test_every_entry_is_in_the_checkout_and_its_card_loads(name: str) -> None:
    entry = BUNDLED[name]
    assert entry.installed and entry.description
    card = read_card(entry.folder)
    assert card.weights.file == "model.safetensors"
    assert resolve_checkpoint(name) == entry.folder


def test_every_bundled_folder_is_registered_and_the_default_is_one() -> None:
    folders = sorted(p.parent.name for p in registry.WEIGHTS_DIR.glob("*/card.json"))
    assert folders == sorted(BUNDLED)
    assert DEFAULT in BUNDLED and DEFAULT_CHECKPOINT == BUNDLED[DEFAULT].folder
    assert load_checkpoint(None).path == load_checkpoint(DEFAULT).path == DEFAULT_CHECKPOINT


def test_a_name_is_one_path_component_and_an_existing_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bundled_name("fer2013_paper_gpu") is BUNDLED["fer2013_paper_gpu"]
    assert bundled_name("runs/fer2013_paper_gpu") is None  # a path, even if it is not there (yet)
    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT).mkdir()
    assert bundled_name(DEFAULT) is None  # ./default exists: the folder, not the bundled model
    with pytest.raises(ValueError, match=r"bundled checkpoint \(default, fer2013_small_masked, fer2013_paper_gpu, fer2013_paper_none_gpu\)"):
        bundled_name("defualt")


def test_the_help_text_names_every_entry() -> None:
    text = registry.describe()
    assert all(f"'{name}' ({entry.description})" in text for name, entry in BUNDLED.items())


def test_an_entry_absent_from_this_installation_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel or the image carries the default alone: naming another bundled model says so, not "not found"."""
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    assert not BUNDLED["fer2013_paper_gpu"].installed
    with pytest.raises(CheckpointError, match="'fer2013_paper_gpu' is not in this installation"):
        load_checkpoint("fer2013_paper_gpu")

"""Fixtures of the service tests: tiny random checkpoints and settings that keep every test fast."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from model_core import Preprocess, create_model, load_checkpoint, save_checkpoint
from model_core.card import Prior
from model_core.checkpoint import build_card, write_card
from model_core.expressions import FERPLUS_CLASSES
from model_core.transfer import with_answer_tail
from service.settings import Settings

from .helpers import FER_CLASSES, FREQUENCIES


@pytest.fixture(autouse=True)
def _no_fersnet_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests build their settings explicitly; FERSNET_* variables of the shell must not leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("FERSNET_"):
            monkeypatch.delenv(name)
    yield


def _tiny_checkpoint(folder: Path, answer: tuple[str, ...] | None = None, **overrides: Any) -> Path:
    """A seeded fersnet_tiny whose expressions are FER2013's seven; with ``answer``, an answer tail in those classes."""
    torch.manual_seed(0)
    model = create_model("fersnet_tiny", **overrides).eval()
    if answer is not None:
        model = with_answer_tail(model, FER_CLASSES, answer)
    classes, expressions = (FER_CLASSES, None) if answer is None else (answer, FER_CLASSES)
    card = build_card(model, classes, Preprocess(), expressions=expressions, name=f"test-{folder.name}")
    return save_checkpoint(folder, model, card)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random fersnet_tiny checkpoint (48x48 grey, seven classes, with synthesis)."""
    return _tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="session")
def classify_only_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random fersnet_tiny trained-without-synthesis checkpoint (sharing='none')."""
    return _tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "classify-only", sharing="none")


@pytest.fixture(scope="session")
def two_head_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random fersnet_tiny that answers FER+'s eight classes (contempt last) and draws FER2013's seven."""
    return _tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "two-heads", answer=FERPLUS_CLASSES)


@pytest.fixture
def make_settings(tiny_checkpoint: Path) -> Callable[..., Settings]:
    """Settings for a fast CPU test app; keyword arguments override any field."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "checkpoint": str(tiny_checkpoint),
            "device": "cpu",
            "torch_threads": 1,  # the test machine's cores are shared; oversubscribed threads are slower, not faster
            "cpu_precision": "float32",  # exact comparisons; the bfloat16 path has tests of its own
            "max_batch_size": 8,
            "max_wait_ms": 2,
            "decode_workers": 2,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="session")
def balanced_checkpoint(two_head_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-headed tiny model, its card recording its training class FREQUENCIES and answering under a balanced prior."""
    folder = shutil.copytree(two_head_checkpoint, tmp_path_factory.mktemp("ckpt") / "balanced")
    card = load_checkpoint(folder).card
    card.prior = Prior(frequencies=FREQUENCIES, default="balanced", measured_on="made up for the tests")
    write_card(folder, card)
    return folder

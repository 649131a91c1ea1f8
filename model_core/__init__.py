"""model_core: the FERSNet network and everything to train, measure and load it.

This is the public API that ``service`` and ``training`` use; it imports
neither of them (nor FastAPI). The one preprocessing path lives in
:class:`Preprocess`, which every checkpoint carries in its card.

The names below are imported on first use (PEP 562), not with the package: a
light module such as :mod:`model_core.registry` then costs no PyTorch import,
so the service can check its settings (and refuse a busy port) in a fraction of
a second, before it loads anything.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .card import ModelCard
    from .checkpoint import DEFAULT_CHECKPOINT, CheckpointError, LoadedModel, load_checkpoint, save_checkpoint
    from .expressions import CANONICAL, canonical
    from .fersnet import FERSNet, FERSNetConfig, create_model, list_variants
    from .preprocess import Preprocess

#: Each public name and the submodule that defines it.
_HOMES: dict[str, str] = {
    "CANONICAL": "expressions",
    "DEFAULT_CHECKPOINT": "checkpoint",
    "CheckpointError": "checkpoint",
    "FERSNet": "fersnet",
    "FERSNetConfig": "fersnet",
    "LoadedModel": "checkpoint",
    "ModelCard": "card",
    "Preprocess": "preprocess",
    "canonical": "expressions",
    "create_model": "fersnet",
    "list_variants": "fersnet",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
}

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # once: later lookups skip this function
    return value

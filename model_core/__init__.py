"""model_core: the FERSNet network and everything to train, measure and load it.

This is the public API that ``service`` and ``training`` use; it imports
neither of them (nor FastAPI). The one preprocessing path lives in
:class:`Preprocess`, which every checkpoint carries in its card.
"""

from .card import ModelCard
from .checkpoint import DEFAULT_CHECKPOINT, CheckpointError, LoadedModel, load_checkpoint, save_checkpoint
from .expressions import CANONICAL, canonical
from .fersnet import FERSNet, FERSNetConfig, create_model, list_variants
from .preprocess import Preprocess

__all__ = [
    "CANONICAL",
    "DEFAULT_CHECKPOINT",
    "CheckpointError",
    "FERSNet",
    "FERSNetConfig",
    "LoadedModel",
    "ModelCard",
    "Preprocess",
    "canonical",
    "create_model",
    "list_variants",
    "load_checkpoint",
    "save_checkpoint",
]

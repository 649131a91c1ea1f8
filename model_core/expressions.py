"""Canonical expression names, and how each dataset's own labels map onto them.

Every dataset spells its classes differently (FER2013 says ``angry``, CK+ says
``anger``, FER+ says ``happiness``). The network only ever sees indices into a
model's own ``classes`` tuple, so this module is the one place where a
dataset's vocabulary is translated. A model trained on FER2013 has seven
classes; one trained on FER+ or CK+ may add ``contempt``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Every expression any supported dataset knows, in a fixed canonical order.
CANONICAL: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
    "contempt",
)

#: The seven basic expressions of FER2013, in Kaggle's label order (0..6).
FER2013_CLASSES: tuple[str, ...] = CANONICAL[:7]

#: FER+'s eight emotions (its ``unknown`` and ``NF`` columns are not classes).
FERPLUS_CLASSES: tuple[str, ...] = CANONICAL

#: CK+48's seven classes: contempt instead of neutral.
CKPLUS_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")

#: Spellings seen in the wild, mapped onto the canonical names.
ALIASES: dict[str, str] = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "calm": "neutral",
    "contemptuous": "contempt",
    # The two-letter codes of JAFFE (AN DI FE HA NE SA SU) and KDEF (AF for afraid), which
    # folders sorted from those sets' file names are often named by.
    "an": "angry",
    "di": "disgust",
    "fe": "fear",
    "af": "fear",
    "ha": "happy",
    "sa": "sad",
    "su": "surprise",
    "ne": "neutral",
}


def canonical(name: str) -> str:
    """Return the canonical spelling of an expression name, or raise ``KeyError``."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in CANONICAL:
        raise KeyError(f"unknown expression {name!r}; known: {', '.join(CANONICAL)}")
    return key


def canonical_classes(names: Iterable[str]) -> tuple[str, ...]:
    """Canonicalise a list of class names (for example a dataset's folder names)."""
    return tuple(canonical(n) for n in names)


def index_map(source: Sequence[str], target: Sequence[str]) -> dict[int, int]:
    """Map indices of ``source`` classes onto indices of ``target`` classes.

    Classes of ``source`` that ``target`` lacks are left out, so a caller can
    tell which labels a model cannot predict (for example ``contempt`` when a
    FER2013 model is evaluated on FER+).
    """
    position = {name: i for i, name in enumerate(target)}
    return {i: position[name] for i, name in enumerate(source) if name in position}


def one_hot(indices: Sequence[int] | torch.Tensor, k: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Target rows for synthesis: row ``i`` is 1.0 at class ``indices[i]`` of ``k`` and 0 elsewhere (float32).

    What :meth:`model_core.FERSNet.synthesize` and ``decode`` take as ``target``, built from class indices
    into the model's expressions. PyTorch is imported here, on first use, so this module stays light.
    """
    import torch

    return torch.nn.functional.one_hot(torch.as_tensor(indices, dtype=torch.long, device=device), k).float()

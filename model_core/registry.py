"""The checkpoints bundled in ``model_core/weights``: the one list of their names, folders and descriptions.

The loader (a name given as ``--checkpoint`` or ``FERSNET_CHECKPOINT``), the CLI's and the
service's help, the service's settings check and ``GET /v1/models`` all read this list, so a
checkpoint added here is known everywhere at once. Only ``default`` is package data (in the
wheel and the image); the others are in a source checkout, which is why an entry may be
absent from an installation (:attr:`Bundled.installed`) while its name stays known.

This module imports nothing heavy (no PyTorch), so the service can check a configured
name while it parses its settings, before it decides to load anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT = "default"


@dataclass(frozen=True)
class Bundled:
    """One bundled checkpoint: its name (what ``--checkpoint`` takes), its folder, and what it is for."""

    name: str
    description: str

    @property
    def folder(self) -> Path:
        return WEIGHTS_DIR / self.name

    @property
    def installed(self) -> bool:
        """Whether this installation has it (a wheel or the image carries ``default`` alone)."""
        return self.folder.is_dir()


BUNDLED: dict[str, Bundled] = {
    b.name: b
    for b in (
        Bundled(DEFAULT, "the served default, in the wheel and the image"),
        Bundled("fer2013_small_masked", "an earlier default: the same network with one head (FER2013's seven "
                "classes), a weaker recogniser and a masked generator; source checkout only"),
        Bundled("fer2013_paper_gpu", "the paper's full-size network, recognition and synthesis; source checkout only"),
        Bundled("fer2013_paper_none_gpu", "the full-size network's recognition branch alone (sharing 'none'): "
                "classification only, no /v1/synthesize; source checkout only"),
    )
}


def names() -> str:
    """The bundled names, comma-separated, for messages."""
    return ", ".join(BUNDLED)


def describe() -> str:
    """Each bundled name with what it is, for help texts."""
    return "; ".join(f"'{b.name}' ({b.description})" for b in BUNDLED.values())


def bundled_name(value: str | Path) -> Bundled | None:
    """The bundled checkpoint ``value`` names, or None where it is a path.

    A name is one path component that is not an existing file or folder: a path that exists
    wins over a bundled name. A name that is not bundled raises ``ValueError`` (with the list).
    """
    path = Path(value)
    if len(path.parts) != 1 or path.exists():
        return None
    if path.name not in BUNDLED:
        raise ValueError(f"{str(value)!r} is neither a checkpoint folder here nor a bundled checkpoint ({names()})")
    return BUNDLED[path.name]

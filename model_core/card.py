"""The model card: what a checkpoint's weights are, as typed data checked when it is read.

``card.json`` beside the weights says which network they fill (``config``), how to feed it
(``input``), what its outputs mean (``classes``: what ``classify`` answers; ``expressions``: the
expression head's classes, which are the synthesis targets, where a network has an answer tail
beside that head), which bytes they are (``weights``), how the probabilities are calibrated
(``calibration``), which class prior its answers assume (``prior``), how strongly its edits are applied by
default (``intensity``), and how the model was trained and measured (``training`` and ``metrics``:
free-form records, kept as the trainer wrote them). Readers get
a :class:`ModelCard` instead of a dict, so nothing downstream guesses with ``.get`` fallbacks:
a card that lacks a field, or holds one of the wrong type, is refused when read, with the
field named (:class:`CardError`). Sections this version does not know are kept as they came
(``ModelCard.other``) and written back, so rewriting a card (``fersnet calibrate``) loses nothing.

:class:`CardDraft` is a card before its weights are written (what ``build_card`` returns);
``save_checkpoint`` completes it into a :class:`ModelCard`. The classes are standard-library
dataclasses, not pydantic models, for the reason in :mod:`model_core.typed_json`.

The format stays ``fersnet-card/1`` as fields are added: each new field is optional, with the
meaning an older card had (no ``expressions``: the classes are the expressions), so every card
written before still reads. A card of a network with an answer tail is refused by an older
reader all the same, by its config's unknown ``answer_classes`` key, rather than misread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .fersnet import FERSNetConfig, SharingMode
from .preprocess import Preprocess
from .prior import PRIORS, PriorName
from .typed_json import KEEP_UNKNOWN, JSONFieldError, from_json, to_json

CardFormat = Literal["fersnet-card/1"]
CARD_FORMAT: CardFormat = get_args(CardFormat)[0]
CARD_FILE = "card.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")

#: A card that cannot be read as a :class:`ModelCard`; its message names the field.
CardError = JSONFieldError


@dataclass
class Weights:
    """The bytes a card vouches for: ``file`` in the checkpoint's folder (or its ``.part-NN`` shards), hashed."""

    file: str
    sha256: str
    bytes: int
    dtype: str

    def __post_init__(self) -> None:
        if not self.file:
            raise ValueError("file must name a file")
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, not {self.sha256!r}")


@dataclass
class Calibration:
    """The temperature that calibrates the softmax (``softmax(logits / temperature)``), and how it was found.

    ``measured`` holds, per split, the calibration metrics ``before`` and ``after`` scaling
    (``model_core.calibration.CalibrationMetrics``: nll, ece, accuracy, ...).
    """

    temperature: float
    method: str | None = None
    fitted_on: str | None = None
    command: str | None = None
    measured: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, not {self.temperature!r}")


@dataclass
class Prior:
    """How often each served class occurred in the targets the served head was fitted on, and which class prior its
    answers assume when a request names none (:mod:`model_core.prior`: ``natural``, those frequencies; ``balanced``,
    every class equally likely)."""

    frequencies: dict[str, float]
    default: PriorName = "natural"
    measured_on: str | None = None
    command: str | None = None

    def __post_init__(self) -> None:
        bad = {c: f for c, f in self.frequencies.items() if not (math.isfinite(f) and f > 0)}
        if bad or not self.frequencies:
            raise ValueError(f"frequencies must be positive numbers, one per class, not {bad or self.frequencies}")
        if self.default not in PRIORS:
            raise ValueError(f"default must be one of {PRIORS}, not {self.default!r}")


#: The strongest intensity a request may ask for: past about 2 a masked decoder's mask is open wherever it moved at all.
MAX_INTENSITY = 3.0


@dataclass
class Intensity:
    """How strongly a redrawn face shows its target when the request does not say (``FERSNet.decode_parts``'s
    ``intensity``), and how that default was chosen: ``measured`` holds, per intensity tried, what the choice read."""

    default: float
    chosen_on: str | None = None
    command: str | None = None
    measured: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.default) and 0 <= self.default <= MAX_INTENSITY):
            raise ValueError(f"default must be between 0 and {MAX_INTENSITY}, not {self.default!r}")


@dataclass(kw_only=True)
class CardDraft:
    """Everything a card says but its weights: what :func:`~model_core.checkpoint.build_card` makes."""

    format: CardFormat = CARD_FORMAT
    name: str
    variant: str
    sharing: SharingMode
    classes: list[str]
    """What ``classify`` answers (the served head): the answer tail's classes where the network has one."""
    expressions: list[str] | None = None
    """The expression head's classes, which are also the synthesis targets: only where the network has an
    answer tail (then required), since otherwise they are ``classes``. Read them as :attr:`expression_classes`."""
    input: Preprocess
    config: FERSNetConfig
    parameters: int
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    figures: list[str] | None = None
    exported_from: str | None = None
    teacher: dict[str, Any] | None = None
    weights: Weights | None = None
    created: str | None = None
    calibration: Calibration | None = None
    intensity: Intensity | None = None
    """The synthesis intensity used when a request names none; 1 (the decoder as trained) where absent."""
    prior: Prior | None = None
    """The served head's training class frequencies and default prior; absent: answers assume the natural prior only."""
    other: dict[str, Any] = field(default_factory=dict, metadata=KEEP_UNKNOWN)

    def __post_init__(self) -> None:
        """Refuse a card that contradicts itself: each of these would make the network or its answers wrong."""
        cfg = self.config
        served = f"answer_classes={cfg.answer_classes} (the answer tail's)" if cfg.has_answer_tail else f"num_classes={cfg.num_classes}"
        if len(self.classes) != cfg.served_classes:
            raise ValueError(f"{len(self.classes)} classes but {served} in config")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes repeat a name: {self.classes}")
        if cfg.has_answer_tail and self.expressions is None:
            raise ValueError(f"the config has an answer tail (answer_classes={cfg.answer_classes}), so the card must name "
                             f"the expression head's {cfg.num_classes} classes in expressions")
        if not cfg.has_answer_tail and self.expressions is not None:
            raise ValueError("expressions given, but the config has no answer tail (answer_classes=0): "
                             "its classes are its expressions")
        if self.expressions is not None and len(self.expressions) != cfg.num_classes:
            raise ValueError(f"{len(self.expressions)} expressions but num_classes={cfg.num_classes} in config")
        if self.expressions is not None and len(set(self.expressions)) != len(self.expressions):
            raise ValueError(f"expressions repeat a name: {self.expressions}")
        if self.prior is not None and sorted(self.prior.frequencies) != sorted(self.classes):
            raise ValueError(f"prior.frequencies has classes {sorted(self.prior.frequencies)}, not classes {sorted(self.classes)}")
        if (self.variant, self.sharing) != (cfg.variant, cfg.sharing):
            raise ValueError(f"variant/sharing {self.variant}/{self.sharing} but {cfg.variant}/{cfg.sharing} in config")
        if (self.input.img_size, self.input.in_chans) != (cfg.img_size, cfg.in_chans):
            raise ValueError(f"input is {self.input.img_size} px x {self.input.in_chans} channels but config says "
                             f"{cfg.img_size} px x {cfg.in_chans}")
        if self.created is not None:
            try:
                dt.datetime.fromisoformat(self.created)
            except ValueError:
                raise ValueError(f"created must be an ISO 8601 time, not {self.created!r}") from None

    @property
    def expression_classes(self) -> list[str]:
        """The expression head's classes, which are the synthesis targets: ``expressions``, or ``classes`` without a tail."""
        return self.expressions if self.expressions is not None else self.classes

    def to_json(self) -> dict[str, Any]:
        """The card as ``card.json`` holds it."""
        return to_json(self)

    def complete(self, weights: Weights, created: str) -> ModelCard:
        """This card vouching for ``weights`` (written ``created``): a card ready to save beside them."""
        described = {f.name: getattr(self, f.name) for f in dataclasses.fields(CardDraft)}
        return ModelCard(**described | {"weights": weights, "created": created})


@dataclass(kw_only=True)
class ModelCard(CardDraft):
    """A whole card, as read from or written to ``card.json``: the draft plus the weights it vouches for."""

    weights: Weights = field()  # field(): required here, not the draft's inherited None
    created: str = field()

    @classmethod
    def from_json(cls, data: Any) -> ModelCard:
        """Parsed ``card.json``, checked field by field; raises :class:`CardError` naming the first bad one."""
        return from_json(cls, data)

    def redraft(self, **changes: Any) -> CardDraft:
        """This card for other weights of the same model (an export, say): weights and time gone, ``changes`` made."""
        described = {f.name: getattr(self, f.name) for f in dataclasses.fields(CardDraft)}
        return CardDraft(**described | {"weights": None, "created": None} | changes)

    @property
    def synthesis(self) -> bool:
        """Whether the network has a synthesis branch (``/v1/synthesize``): every sharing mode but ``none``."""
        return self.config.has_synthesis

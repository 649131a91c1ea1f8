"""Checkpoints: safetensors weights beside a JSON model card, loaded without unpickling.

A served checkpoint is a folder::

    my-model/
      model.safetensors   the FERSNet weights (no discriminator, no optimiser)
      card.json           what the weights are: variant, config, classes,
                          preprocessing, how they were trained and measured,
                          and the weights' sha256

Weights too large for one file in a git host may instead be cut into
``model.safetensors.part-00``, ``-01``, ... (``split -b 15M -d``); they are
joined in name order and checked against the same sha256. Checkpoints bundled
with the package live in ``model_core/weights/<name>/``, are listed in
:mod:`model_core.registry`, and can be named by ``<name>`` alone (``default``
is the served default).

Loading reads the card as a typed :class:`~model_core.card.ModelCard` (every
field checked; a bad one is named), checks the weights' hash and every tensor's
name and shape against the network the card describes, checks that every value is
finite (a hash proves the bytes are the ones the card names, not that they are
weights: a NaN classifier hashes as well as a trained one), and refuses
anything that does not match with a :class:`CheckpointError` that says what is
wrong. The card's ``weights.file`` must name a file inside the checkpoint's
folder. safetensors stores raw tensors only, so loading a checkpoint can never
run code.

Training state for ``--resume`` (optimisers, schedulers, RNG) uses the same two
formats through :func:`save_state` / :func:`load_state`: the tensors go to
safetensors, everything else to JSON, never pickle.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import load_file, save_file
from torch import Tensor

from . import registry
from .card import CARD_FILE, CARD_FORMAT, CardDraft, CardError, ModelCard, Weights
from .fersnet import FERSNet, FERSNetConfig, Head
from .preprocess import Preprocess
from .prior import PRIORS, PriorName, reweigh

WEIGHTS_FILE = "model.safetensors"
DEFAULT_CHECKPOINT = registry.BUNDLED[registry.DEFAULT].folder


class CheckpointError(Exception):
    """A checkpoint that is missing, altered, or does not match the network its card describes."""


@dataclass
class LoadedModel:
    """A model ready to use, carrying everything needed to feed it (torchvision-style weights)."""

    model: FERSNet
    card: ModelCard
    path: Path

    @property
    def preprocess(self) -> Preprocess:
        return self.card.input

    @property
    def classes(self) -> tuple[str, ...]:
        """What ``model.classify`` answers (the served head)."""
        return tuple(self.card.classes)

    @property
    def expressions(self) -> tuple[str, ...]:
        """The expression head's classes (``model.recognise``), which are the synthesis targets; ``classes`` without an answer tail."""
        return tuple(self.card.expression_classes)

    def classes_of(self, head: Head) -> tuple[str, ...]:
        """The classes ``model.classify(images, head)`` answers."""
        return self.classes if head == "served" else self.expressions

    @property
    def sha256(self) -> str:
        return self.card.weights.sha256

    @property
    def temperature(self) -> float:
        """The logits' divisor that makes the softmax calibrated (``fersnet calibrate``); 1 where none was fitted."""
        return self.card.calibration.temperature if self.card.calibration else 1.0

    @property
    def prior(self) -> PriorName:
        """The class prior an answer assumes when the request names none (the card's ``prior.default``); ``natural``
        (the training data's frequencies) where the card records none."""
        return self.card.prior.default if self.card.prior else "natural"

    @property
    def frequencies(self) -> list[float] | None:
        """The served classes' training frequencies, in their order (the card's ``prior``); None where it records none."""
        return [self.card.prior.frequencies[c] for c in self.classes] if self.card.prior else None

    @property
    def priors(self) -> tuple[PriorName, ...]:
        """The priors this model can answer under: both where its card records the frequencies, else natural alone."""
        return PRIORS if self.card.prior else ("natural",)

    def reweigh(self, probabilities: Tensor, prior: PriorName | None = None) -> Tensor:
        """The served head's calibrated probabilities (N x classes) under ``prior`` (by default the card's):
        :func:`model_core.prior.reweigh` with the card's training frequencies."""
        prior = prior or self.prior
        if prior not in self.priors:
            raise ValueError(f"{self.card.name}'s card records no class frequencies, so it answers under the natural prior only")
        frequencies = self.frequencies
        return probabilities if frequencies is None else reweigh(probabilities, frequencies, prior)

    def calibrated(self, logits: Tensor) -> Tensor:
        """The served head's probabilities for its ``logits``, calibrated by the card's temperature, under the
        training data's prior: what the service computes per batch before each request's prior (:meth:`reweigh`)."""
        return (logits.float() / self.temperature).softmax(1)

    def probabilities(self, logits: Tensor, prior: PriorName | None = None) -> Tensor:
        """What a user is answered for the served head's ``logits``: :meth:`calibrated`, then under ``prior`` (by
        default the card's). The one place the service, ``fersnet evaluate`` and an export agree on."""
        return self.reweigh(self.calibrated(logits), prior)

    @property
    def intensity(self) -> float:
        """The synthesis intensity a request gets when it names none (the card's ``intensity``); 1 where none was chosen."""
        return self.card.intensity.default if self.card.intensity else 1.0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def build_card(
    model: FERSNet,
    classes: tuple[str, ...] | list[str],
    preprocess: Preprocess,
    *,
    expressions: tuple[str, ...] | list[str] | None = None,
    name: str | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> CardDraft:
    """The model card of ``model``, read off the network itself; :func:`save_checkpoint` adds the weights section.

    ``classes`` are what ``model.classify`` answers; a network with an answer tail also names its expression
    head's classes (the synthesis targets) in ``expressions``.
    """
    config = model.config
    return CardDraft(
        name=name or config.variant,
        variant=config.variant,
        sharing=config.sharing,
        classes=list(classes),
        expressions=None if expressions is None else list(expressions),
        input=preprocess,
        config=FERSNetConfig.from_dict(config.to_dict()),  # a copy: the card must not change with the model
        parameters=sum(p.numel() for p in model.parameters()),
        training=training or {},
        metrics=metrics or {},
    )


def save_checkpoint(folder: str | Path, model: FERSNet, card: CardDraft, half: bool = False) -> Path:
    """Write ``model.safetensors`` and ``card.json`` into ``folder``; returns the folder.

    ``half`` stores float16 weights (half the size); they are cast back to
    float32 on load. The card records the hash of exactly the bytes written
    (any weights section ``card`` had is replaced), and keeps its ``created``
    time if it has one.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    tensors = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    weights = folder / WEIGHTS_FILE
    tmp = weights.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"format": CARD_FORMAT})
    os.chmod(tmp, 0o644)  # readable by the service's non-root user once copied into an image
    os.replace(tmp, weights)
    written = Weights(file=WEIGHTS_FILE, sha256=sha256_file(weights), bytes=weights.stat().st_size,
                      dtype=str(dtype).removeprefix("torch."))
    created = card.created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_card(folder, card.complete(written, created))
    return folder


def write_card(folder: str | Path, card: ModelCard) -> None:
    """Replace a checkpoint's card (its weights untouched, so their hash still holds), atomically."""
    _atomic_write_text(Path(folder) / CARD_FILE, json.dumps(card.to_json(), indent=2) + "\n")


def resolve_checkpoint(path: str | Path | None) -> Path:
    """Accept a checkpoint folder, its card.json or its model.safetensors, or the name of a bundled checkpoint.

    None means the bundled default. A path that exists wins over a bundled name (:mod:`model_core.registry`).
    """
    try:
        bundled = registry.BUNDLED[registry.DEFAULT] if path is None else registry.bundled_name(path)
    except ValueError:
        bundled = None  # not a name: reported below as a path that is not there
    if bundled is not None:
        if not bundled.installed:
            raise CheckpointError(f"bundled checkpoint {bundled.name!r} is not in this installation "
                                  f"(no {bundled.folder}); it comes with a source checkout: mount its folder")
        return bundled.folder
    path = Path(str(path))
    if path.is_file() and path.name in (CARD_FILE, WEIGHTS_FILE):
        path = path.parent
    if not path.is_dir():
        found = "is a file, not a checkpoint folder" if path.is_file() else "not found"
        raise CheckpointError(
            f"checkpoint {path} {found} (expected a folder with {CARD_FILE} and {WEIGHTS_FILE}, "
            f"or a bundled checkpoint: {registry.names()})"
        )
    return path


def read_weights(weights: Path) -> tuple[bytes, str]:
    """The bytes of a weights file, or of its ``.part-NN`` shards joined in order, and where they came from."""
    if weights.is_file():
        return weights.read_bytes(), str(weights)
    parts = sorted(weights.parent.glob(f"{weights.name}.part-*"))
    if not parts:
        raise CheckpointError(f"{weights}: weights file missing (and no {weights.name}.part-* shards beside it)")
    return b"".join(p.read_bytes() for p in parts), f"{weights}.part-{{{parts[0].name[-2:]}..{parts[-1].name[-2:]}}}"


def read_card(folder: Path) -> ModelCard:
    """The card in ``folder``, checked field by field (:class:`~model_core.card.ModelCard`); CheckpointError if not."""
    card_path = folder / CARD_FILE
    try:
        data = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{card_path}: model card missing") from None
    except IsADirectoryError:
        raise CheckpointError(f"{card_path}: a folder, not a model card") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{card_path}: not a text file (a JSON model card expected)") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{card_path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
        raise CheckpointError(f"{card_path}: not a FERSNet model card (format should be {CARD_FORMAT!r})")
    try:
        return ModelCard.from_json(data)
    except CardError as e:
        raise CheckpointError(f"{card_path}: invalid model card: {e}") from None


def weights_path(folder: Path, card: ModelCard) -> Path:
    """Where the card's ``weights.file`` points, refused unless it is a plain file name inside ``folder``.

    A card is data a user may have downloaded; it must not make the loader
    read (or, through error messages, reveal the existence of) files elsewhere
    on the host, such as ``/etc/passwd`` or ``../../secrets``.
    """
    name = card.weights.file
    root = folder.resolve()
    candidate = (folder / name).resolve()
    if Path(name).is_absolute() or not candidate.is_relative_to(root):
        where = folder / CARD_FILE
        raise CheckpointError(f"{where}: weights.file {name!r} points outside the checkpoint folder; refusing to read it")
    return folder / name


def load_checkpoint(path: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint safely onto ``device``, in eval mode; raise CheckpointError if anything is off."""
    folder = resolve_checkpoint(path)
    card = read_card(folder)
    data, source = read_weights(weights_path(folder, card))
    actual = hashlib.sha256(data).hexdigest()
    if actual != card.weights.sha256:
        raise CheckpointError(
            f"{source}: sha256 {actual[:12]}... does not match the card's {card.weights.sha256[:12]}...; "
            "the weights were altered or belong to another card"
        )
    model = FERSNet(card.config)
    try:
        tensors = load_bytes(data)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{source}: unreadable safetensors file ({e})") from None
    _check_tensors(model, tensors, source)
    _check_finite(tensors, source)
    parameters = sum(p.numel() for p in model.parameters())
    if parameters != card.parameters:
        raise CheckpointError(f"{folder / CARD_FILE}: parameters {card.parameters:,}, but the network it describes has "
                              f"{parameters:,}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    model.to(device).eval()
    return LoadedModel(model=model, card=card, path=folder)


def _check_tensors(model: FERSNet, tensors: dict[str, Tensor], source: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (first: {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensors of the wrong shape (first: {k} {tuple(tensors[k].shape)} vs {tuple(expected[k].shape)})")
        raise CheckpointError(f"{source}: weights do not match the card's network: " + "; ".join(parts))


def _check_finite(tensors: dict[str, Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity: such a model answers null probabilities, never an error."""
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())}
    if bad:
        first = sorted(bad)[0]
        raise CheckpointError(
            f"{source}: {len(bad)} tensor(s) hold NaN or infinite values (first: {first}, {bad[first]:,} of "
            f"{tensors[first].numel():,} values); the weights are corrupt or from a diverged training run"
        )


# --------------------------------------------------------------------------- training state


def _flatten(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """Replace every tensor in a nested structure by a reference, collecting the tensors."""
    if isinstance(obj, Tensor):
        key = prefix or "root"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, f"{prefix}.k{i}", tensors), _flatten(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} without pickle")


def _unflatten(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(folder: str | Path, state: dict[str, Any]) -> None:
    """Save a nested training state (state dicts, counters, RNG states) without pickle."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    skeleton = _flatten(state, "", tensors)
    tmp = folder / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / "state.safetensors")
    _atomic_write_text(folder / "state.json", json.dumps(skeleton))


def load_state(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    try:
        skeleton = json.loads((folder / "state.json").read_text())
        tensors = load_file(str(folder / "state.safetensors"))
    except (OSError, json.JSONDecodeError, SafetensorError) as e:
        raise CheckpointError(f"{folder}: unreadable training state ({e})") from None
    return _unflatten(skeleton, tensors)

"""Initialise a model from a checkpoint trained on other data: pretraining and fine-tuning.

Every tensor whose name and shape match is copied. The tensors indexed by expression class
(:meth:`FERSNet.class_axes`: the head's outputs, the embedding's inputs, the target map in
each decoder block) are copied class by class, matched by *name*: a FER2013 model initialises
a CK+ model's angry ... surprise entries, its neutral entries are dropped, and CK+'s contempt
keeps its fresh initialisation. Copying by position instead would silently start CK+'s
contempt output from FER2013's neutral, since both datasets have seven classes; and between
seven and eight classes it would drop the whole decoder for a shape mismatch.

:func:`with_answer_tail` grows a network a second recognition head (the *answer tail*,
:attr:`~model_core.fersnet.FERSNetConfig.answer_classes`) that starts out answering exactly as
its expression head does, class by class by name, so fitting the tail on other labels (FER+'s
votes beside FER2013's) starts from what the network already knows; :func:`without_answer_tail`
takes it off again, for training that moves the trunk beneath it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from .checkpoint import load_checkpoint
from .fersnet import FERSNet


def init_from_checkpoint(
    model: FERSNet, classes: Sequence[str], checkpoint: str | Path, answer_classes: Sequence[str] | None = None,
    fresh: Sequence[str] = (),
) -> dict[str, Any]:
    """Copy into ``model`` (whose expression head answers ``classes``) what ``checkpoint`` knows; report what it did.

    A network with an answer tail names the tail's classes in ``answer_classes``; without them the tail's
    class-indexed tensors keep their initialisation, since there is nothing to match the checkpoint's by.
    The checkpoint's own heads are read by its card: its expressions for the expression head and the
    synthesis tensors, its served classes for its answer tail. The report names the checkpoint, how many
    tensors were copied, which expression classes came from the checkpoint and which start fresh, and
    (``kept_fresh``) every tensor left at its initialisation, which includes those of the submodules named in
    ``fresh``.
    """
    loaded = load_checkpoint(checkpoint)
    source = loaded.model.state_dict()
    own = model.state_dict()
    class_axes = model.class_axes()
    copied: dict[str, Tensor] = {}
    for name, tensor in source.items():
        if name not in own or name.split(".")[0] in fresh:
            continue
        if name in class_axes:
            tail = FERSNet.in_answer_tail(name)
            if tail and answer_classes is None:
                continue
            source_classes, own_classes = (loaded.classes, answer_classes) if tail else (loaded.expressions, classes)
            assert own_classes is not None  # answer_classes, checked above
            mapped = _copy_classes(tensor, own[name], class_axes[name], source_classes, own_classes)
            if mapped is not None:
                copied[name] = mapped
        elif own[name].shape == tensor.shape:
            copied[name] = tensor
    own.update(copied)
    model.load_state_dict(own)
    return {
        "checkpoint": str(checkpoint),
        "copied": len(copied),
        "classes_copied": [c for c in classes if c in loaded.expressions],
        "classes_fresh": [c for c in classes if c not in loaded.expressions],
        "kept_fresh": sorted(set(own) - set(copied)),
    }


def _copy_classes(
    source: Tensor, target: Tensor, axis: int, source_classes: Sequence[str], classes: Sequence[str]
) -> Tensor | None:
    """``target`` with every class both models know taken from ``source``, matched by name.

    Along ``axis`` the classes are the last entries (see :meth:`FERSNet.class_axes`); the entries
    before them (a decoder block's image and skip channels) are copied as they are. Returns None
    when the tensors differ in more than their classes (another width), so nothing is copied.
    """
    source_rest = source.shape[axis] - len(source_classes)
    target_rest = target.shape[axis] - len(classes)
    other_source = source.shape[:axis] + source.shape[axis + 1 :]
    other_target = target.shape[:axis] + target.shape[axis + 1 :]
    if source_rest != target_rest or other_source != other_target:
        return None
    out = target.clone()
    out.narrow(axis, 0, target_rest).copy_(source.narrow(axis, 0, source_rest))
    for j, name in enumerate(classes):
        if name in source_classes:
            i = source_classes.index(name)
            out.narrow(axis, target_rest + j, 1).copy_(source.narrow(axis, source_rest + i, 1))
    return out


def with_answer_tail(model: FERSNet, classes: Sequence[str], answer_classes: Sequence[str]) -> FERSNet:
    """A copy of ``model`` (whose expression head answers ``classes``) with an answer tail answering ``answer_classes``.

    Every weight of ``model`` is copied; the tail's stage starts as the last FER stage, and its head as the
    expression head, class by class by name. A class the expression head lacks (FER+'s contempt beside
    FER2013's seven) gets a zero weight row and the lowest bias the head has: a constant logit, no higher
    than any known class's bias. So before any training the tail computes the expression head's logits on
    the shared classes (the same weights on the same features), and fitting it on the new labels starts
    from there. A tail ``model`` already has is replaced. The copy is in ``model``'s mode and on its device.
    """
    config = model.config
    if len(classes) != config.num_classes:
        raise ValueError(f"{len(classes)} classes but the expression head has num_classes={config.num_classes}")
    if not answer_classes or len(set(answer_classes)) != len(answer_classes):
        raise ValueError(f"answer_classes must name at least one class, each once: {list(answer_classes)}")
    grown = _reshaped(model, answer_classes=len(answer_classes))
    state = grown.state_dict()
    own = _without_tail_state(model)
    last = f"fer_stages.{len(model.fer_stages) - 1}."
    tail = {f"answer_stage.{k.removeprefix(last)}": v for k, v in own.items() if k.startswith(last)}
    tail |= {f"answer_{k}": v for k, v in own.items() if k.startswith("head.") and not k.startswith("head.fc.")}
    weight, bias = own["head.fc.weight"], own["head.fc.bias"]
    unknown = {"weight": weight.new_zeros(len(answer_classes), weight.shape[1]),
               "bias": bias.new_full((len(answer_classes),), float(bias.min()))}
    for key, source in (("weight", weight), ("bias", bias)):
        mapped = _copy_classes(source, unknown[key], 0, classes, answer_classes)
        assert mapped is not None  # the same width: only the classes differ
        tail[f"answer_head.fc.{key}"] = mapped
    missing = set(state) - set(own) - set(tail)
    if missing:  # the tail's layout no longer mirrors the last stage and the head: fail here, not silently fresh
        raise RuntimeError(f"with_answer_tail left {sorted(missing)} uninitialised")
    grown.load_state_dict(own | tail)
    return grown.train(model.training)


def without_answer_tail(model: FERSNet) -> FERSNet:
    """A copy of ``model`` without its answer tail: the expression head answers again.

    A tail reads the frozen trunk's features; once the trunk trains further (a distillation
    student started from the two-head default) those features move and the tail no longer
    fits them, so the student drops it and a new one is grown on the finished trunk
    (``training/answer_tail.py``). A model without a tail is copied as it is. The copy is in
    ``model``'s mode and on its device.
    """
    bare = _reshaped(model, answer_classes=0)
    bare.load_state_dict(_without_tail_state(model))
    return bare.train(model.training)


def _reshaped(model: FERSNet, answer_classes: int) -> FERSNet:
    """A fresh network of ``model``'s config but for the answer tail's width, on its device and in its dtype."""
    parameter = next(model.parameters())
    return FERSNet(dataclasses.replace(model.config, answer_classes=answer_classes)).to(parameter.device, parameter.dtype)


def _without_tail_state(model: FERSNet) -> dict[str, Tensor]:
    """Every tensor of ``model`` but its answer tail's: the trunk, the expression head and the generator."""
    return {k: v for k, v in model.state_dict().items() if not FERSNet.in_answer_tail(k)}

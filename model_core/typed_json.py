"""JSON objects into typed dataclasses and back, checked against the dataclasses' annotations.

The model card needs this, and pydantic cannot do it: checkpoints are saved and loaded
on the bare GPU image too (``training/gpu_teachers.sh``: PyTorch, NumPy, Pillow and
safetensors, nothing installed; ``tests/training/test_gpu_teachers.py`` makes pydantic
unimportable there), so everything the checkpoint path imports must be standard library.
The annotations understood are the ones a card uses: ``str``, ``int``, ``float``, ``bool``,
``Literal[...]``, unions with ``None``, ``list[T]``, ``tuple[T, ...]``, ``dict[str, T]``,
``Any`` and nested dataclasses (whose ``__post_init__`` checks run as usual).

A value that does not fit raises :class:`JSONFieldError`, which names where it sits
(``weights.sha256``, ``classes[2]``). Unknown keys are refused, except into the one field a
dataclass marks with :data:`KEEP_UNKNOWN`, which keeps them as they came and writes them back.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

#: ``field(metadata=KEEP_UNKNOWN)``: the keys no other field takes land here, and are written back at the top level.
KEEP_UNKNOWN: dict[str, bool] = {"keep_unknown": True}


class JSONFieldError(ValueError):
    """A JSON value that does not fit its dataclass field; ``where`` is its path (empty for the object itself)."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


def from_json(cls: type[T], data: Any, where: str = "") -> T:
    """``data`` (parsed JSON) as an instance of the dataclass ``cls``, every field checked against its annotation."""
    if not isinstance(data, dict):
        raise JSONFieldError(where, f"must be an object, not {_kind(data)}")
    hints = get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    keeper = next((f.name for f in fields if f.metadata.get("keep_unknown")), None)
    known = {f.name for f in fields if f.name != keeper}
    unknown = [key for key in data if key not in known]
    if unknown and keeper is None:
        raise JSONFieldError(where, f"unknown keys {unknown}")
    values: dict[str, Any] = {}
    for f in fields:
        if f.name == keeper:
            values[f.name] = {key: data[key] for key in unknown}
        elif f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name], _join(where, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise JSONFieldError(_join(where, f.name), "missing")
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:  # the dataclass's own checks (__post_init__)
        raise JSONFieldError(where, str(e)) from None


def to_json(value: Any) -> Any:
    """A dataclass (or anything holding them) as plain JSON data: the inverse of :func:`from_json`.

    A field that is None where None is its default is left out (absent and null mean the same),
    and the :data:`KEEP_UNKNOWN` field's keys go back to the top level, after the known ones.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.metadata.get("keep_unknown"):
                kept = item
            elif not (item is None and f.default is None):
                out[f.name] = to_json(item)
        return out | {key: to_json(item) for key, item in kept.items() if key not in out}
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return value


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp`` (containers rebuilt, numbers kept as written)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # an annotation: the class, never an instance
        return from_json(tp, value, where)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise JSONFieldError(where, f"must be one of {', '.join(repr(a) for a in args)}, not {value!r}")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, where)
        for option in options:
            try:
                return _convert(option, value, where)
            except JSONFieldError:
                continue
        raise JSONFieldError(where, f"must be {_name(tp)}, not {_kind(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise JSONFieldError(where, f"must be a list, not {_kind(value)}")
        return [_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is tuple:  # tuple[T, ...]: a JSON list
        if not isinstance(value, list):
            raise JSONFieldError(where, f"must be a list, not {_kind(value)}")
        return tuple(_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise JSONFieldError(where, f"must be an object, not {_kind(value)}")
        return {key: _convert(args[1], item, f"{where}[{key!r}]") for key, item in value.items()}
    return _scalar(tp, value, where)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    """``str``, ``bool``, ``int`` (not a bool) and ``float`` (an int too: JSON's 3 and 3.0 are one number)."""
    fits = {
        str: isinstance(value, str),
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
    }
    if tp not in fits:
        raise TypeError(f"{where}: annotation {tp!r} is not one typed_json understands")
    if not fits[tp]:
        raise JSONFieldError(where, f"must be {_name(tp)}, not {_kind(value)}")
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if tp in names:
        return names[tp]
    return typing.cast(str, getattr(tp, "__name__", None) or str(tp).replace("typing.", ""))


def _kind(value: Any) -> str:
    kinds = {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    kind = kinds.get(type(value), type(value).__name__)
    return kind if isinstance(value, (list, dict, type(None))) else f"{kind} {value!r:.60}"

"""JSON into dataclasses and back: types checked by annotation, paths named, numbers and unknown sections kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from model_core.typed_json import KEEP_UNKNOWN, JSONFieldError, from_json, to_json


@dataclass
class Inner:
    size: int
    scale: float = 1.0


@dataclass
class Outer:
    kind: Literal["a", "b"]
    inner: Inner
    sizes: tuple[int, ...] = ()
    table: dict[str, list[float]] = field(default_factory=dict)
    note: str | None = None
    rest: dict[str, Any] = field(default_factory=dict, metadata=KEEP_UNKNOWN)

    def __post_init__(self) -> None:
        if self.inner.size < 0:
            raise ValueError("inner.size must not be negative")


def test_a_value_round_trips_with_numbers_as_written_and_unknown_keys_kept() -> None:
    data = {"kind": "a", "inner": {"size": 3, "scale": 2}, "sizes": [1, 2], "table": {"x": [1, 0.5]}, "later": {"y": 1}}
    value = from_json(Outer, data)
    assert value.sizes == (1, 2) and value.inner.scale == 2 and value.rest == {"later": {"y": 1}}
    assert to_json(value) == data  # None left out, 2 stays 2, the unknown key comes back at the top level


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "c", "inner": {"size": 1}}, "kind: must be one of 'a', 'b', not 'c'"),
    ({"kind": "a"}, "inner: missing"),
    ({"kind": "a", "inner": {"size": True}}, "inner.size: must be an integer, not true/false True"),
    ({"kind": "a", "inner": {"size": 1, "colour": 1}}, "inner: unknown keys ['colour']"),
    ({"kind": "a", "inner": {"size": 1}, "sizes": [1, "2"]}, "sizes[1]: must be an integer"),
    ({"kind": "a", "inner": {"size": 1}, "table": {"x": [None]}}, "table['x'][0]: must be a number, not null"),
    ({"kind": "a", "inner": {"size": -1}}, "inner.size must not be negative"),
    ([], "must be an object, not a list"),
])
def test_a_bad_value_is_named_by_its_path(data: Any, message: str) -> None:
    with pytest.raises(JSONFieldError) as refused:
        from_json(Outer, data)
    assert message in str(refused.value)

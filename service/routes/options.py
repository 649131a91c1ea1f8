"""Request options that may come as a query parameter or as a form field beside the upload.

Clients build multipart requests both ways (``curl -F detect=false`` as often
as ``?detect=false``), so every option of an upload route is read from
either. Given both ways with different values, the request is ambiguous and
answered 422 rather than one of them being ignored.
"""

from __future__ import annotations

from typing import TypeVar

from ..errors import InvalidParameter

T = TypeVar("T")


def query_or_form(name: str, query: T | None, form: T | None, default: T) -> T:
    """The option's value from wherever the client sent it, or ``default`` where it sent none."""
    if query is not None and form is not None and query != form:
        message = f"{name} given twice with different values ({_shown(query)} as a query parameter, {_shown(form)} as a form field); send it once"
        raise InvalidParameter(message, details=[{"loc": [where, name], "msg": "given twice with different values", "type": "conflicting_parameter"}
                                                 for where in ("query", "body")])
    if query is not None:
        return query
    return form if form is not None else default


def _shown(value: object) -> str:
    """A value as the client wrote it (``false``, not Python's ``False``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)

"""FastAPI dependencies, as ``Annotated`` aliases the routes use as parameter types.

A route that declares ``engine: ReadyEngine`` only runs once the model is
warmed up (503 before); ``deadline: RequestDeadline`` starts the request's
timeout clock; routers that include :func:`require_api_key` answer 401 when a
key is configured and the request lacks it; :func:`reject_unknown_parameters`
answers 422 for a parameter the route does not read.

Every dependency is ``async def`` although none awaits anything: FastAPI runs
plain ``def`` dependencies in a worker thread, one hop per dependency per
request, which costs more than the work they do.
"""

from __future__ import annotations

import secrets
from collections import Counter
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .batching import Deadline
from .engine import Engine
from .errors import InvalidParameter, Unauthorized, UnsupportedMediaType
from .runtime import Runtime
from .settings import Settings


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_ready_engine(runtime: RuntimeDep) -> Engine:
    return runtime.require_ready()


ReadyEngine = Annotated[Engine, Depends(get_ready_engine)]


async def start_deadline(settings: SettingsDep) -> Deadline:
    return Deadline.after(settings.request_timeout_s)


RequestDeadline = Annotated[Deadline, Depends(start_deadline)]

# auto_error=False: a missing key is our 401 in our error shape, not FastAPI's 403.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The key set in FERSNET_API_KEY.")
_bearer = HTTPBearer(auto_error=False, description="The key set in FERSNET_API_KEY, as a bearer token.")


async def require_api_key(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    """401 unless FERSNET_API_KEY is unset, or the request carries it (compared in constant time)."""
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    offered = api_key if api_key is not None else (bearer.credentials if bearer is not None else None)
    if offered is None or not secrets.compare_digest(offered.encode(), expected):
        raise Unauthorized()


async def require_multipart(request: Request) -> None:
    """415 for a body that is not multipart/form-data (images are uploaded as form files)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        sent = content_type.split(";")[0]
        raise UnsupportedMediaType(f"send the image(s) as multipart/form-data, not {sent}" if sent else
                                   "send the image(s) as multipart/form-data (the request named no Content-Type)")


async def reject_unknown_parameters(request: Request) -> None:
    """422 naming any query parameter or form field the route does not read, or sends twice where it reads one.

    Without it a misspelt option (``detct=false``), or one a route does not
    have, is ignored in silence and the client gets an answer to a question
    it did not ask; and of two parts named ``image`` the route would read
    the last alone. The known names, and which of them may repeat (a list),
    are read off the route's own signature, so they cannot drift from it.
    Runs after FastAPI has parsed the form, which Starlette caches: the
    upload is not read twice.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    fields = [*dependant.query_params, *dependant.body_params]
    known = {f.alias for f in fields}
    repeatable = {f.alias for f in fields if _is_list(f.field_info.annotation)}
    sent = [("query parameter", k) for k, _ in request.query_params.multi_items()]
    sent += [("form field", k) for k, _ in (await request.form()).multi_items()]
    unknown = sorted({(kind, name) for kind, name in sent if name not in known})
    if unknown:
        kind, name = unknown[0]
        raise InvalidParameter(
            f"unknown {kind} {name!r}; {request.url.path} reads {', '.join(sorted(known))}",
            details=[{"loc": _where(k, n), "msg": "unknown parameter", "type": "unknown_parameter"} for k, n in unknown],
        )
    for (kind, name), times in Counter(sent).items():
        if name not in repeatable and times > 1:
            raise InvalidParameter(
                f"{kind} {name!r} sent {times} times; {request.url.path} reads one",
                details=[{"loc": _where(kind, name), "msg": "sent more than once", "type": "repeated_parameter"}],
            )


def _where(kind: str, name: str) -> list[str | int]:
    """A parameter's ``loc`` in a 422's details, as FastAPI's own validation errors spell it."""
    return ["query" if kind == "query parameter" else "body", name]


def _is_list(annotation: Any) -> bool:
    """Whether a parameter's annotation takes a list (``list[X]``, or ``list[X] | None``): a name that may repeat."""
    if get_origin(annotation) is list:
        return True
    return any(_is_list(arg) for arg in get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else False

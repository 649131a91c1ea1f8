"""Every error the service answers, in one hierarchy and one JSON shape.

A client sees the same body for every failure, whatever raised it::

    {"error": {"code": "no_face", "message": "no face found in image 0 (photo.jpg)", "status": 400}}

``code`` is stable and meant for programs; ``message`` is for people;
``status`` repeats the HTTP status. Validation errors add ``details`` (the
offending fields).

:class:`ServiceError` subclasses Starlette's ``HTTPException`` on purpose:
FastAPI turns any other exception raised while it reads a request body into
a generic 400, but lets an ``HTTPException`` through, so a 413 raised by the
body-size limit mid-upload reaches the client as a 413.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ServiceError(StarletteHTTPException):
    """Base of every error the service raises on purpose; subclasses fix the status and code."""

    status_code: int = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None, details: Any = None) -> None:
        super().__init__(status_code=type(self).status_code, detail=message, headers=dict(headers) if headers else None)
        self.message = message
        self.details = details


# --------------------------------------------------------------------------- 4xx: the client's request


class BadImage(ServiceError):
    """An upload that is empty, or not a decodable image of a supported format (``service.images.SUPPORTED_FORMATS``)."""

    status_code = 400
    code = "bad_image"


class EmptyImage(BadImage):
    code = "empty_image"


class NoFaceFound(ServiceError):
    """The detector found no face where the endpoint needs one."""

    status_code = 400
    code = "no_face"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "missing or wrong API key: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class PayloadTooLarge(ServiceError):
    """A body, an image's pixel count, or a number of images over the configured limit."""

    status_code = 413
    code = "payload_too_large"


class TooManyPixels(PayloadTooLarge):
    """An image whose header declares more pixels than allowed: refused before it is decoded."""

    code = "too_many_pixels"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidParameter(ServiceError):
    status_code = 422
    code = "invalid_parameter"


# --------------------------------------------------------------------------- 5xx: the service's state


class SynthesisUnavailable(ServiceError):
    """The loaded model was trained without the synthesis branch (sharing='none')."""

    status_code = 501
    code = "synthesis_unavailable"


class QueueFull(ServiceError):
    """More images wait than ``max_queue``; the client should retry after a pause."""

    status_code = 429
    code = "queue_full"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class NotReady(ServiceError):
    """The model is still loading or warming up, or the service is shutting down."""

    status_code = 503
    code = "not_ready"

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)} if retry_after_s is not None else None)


class ShuttingDown(NotReady):
    code = "shutting_down"


class DeadlineExceeded(ServiceError):
    status_code = 504
    code = "timeout"


class InferenceFailed(ServiceError):
    """The forward pass itself raised: a bug or a broken device, never the client's input."""

    status_code = 500
    code = "inference_failed"


# --------------------------------------------------------------------------- the one JSON shape

#: Codes for HTTP errors raised by the framework itself (unknown route, wrong method, malformed multipart).
_FRAMEWORK_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameter",
    429: "queue_full",
    503: "not_ready",
    504: "timeout",
}


def error_body(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of every error answer."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(status: int, code: str, message: str, *, details: Any = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, details), status_code=status, headers=dict(headers) if headers else None)


class ValidationDetail(TypedDict):
    """One offending field of a 422's ``details``."""

    loc: list[str | int]
    msg: str
    type: str


def _validation_details(exc: RequestValidationError) -> list[ValidationDetail]:
    """FastAPI's validation errors, trimmed to what a client can act on (no echoed uploads)."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in exc.errors()]


async def _handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ServiceError):
        code, message, details = exc.code, exc.message, exc.details
    else:
        code = _FRAMEWORK_CODES.get(exc.status_code, "http_error")
        message, details = str(exc.detail), None
    if exc.status_code >= 500 and not isinstance(exc, NotReady):  # 503 while warming up is routine
        log.warning("%s %s -> %d %s: %s", request.method, request.url.path, exc.status_code, code, message)
    return error_response(exc.status_code, code, message, details=details, headers=exc.headers)


async def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    first: ValidationDetail = details[0] if details else {"loc": [], "msg": "invalid request", "type": ""}
    where = ".".join(str(part) for part in first["loc"])
    message = f"{where}: {first['msg']}" if where else first["msg"]
    return error_response(422, InvalidParameter.code, message, details=details)


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Last resort: log the traceback, answer the one JSON shape without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, ServiceError.code, "internal error; the service logged the details")


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through the one JSON error shape."""
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(Exception, _handle_unexpected)

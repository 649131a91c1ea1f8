"""Every error the service answers, in one hierarchy and one JSON shape.

A client sees the same body for every failure, whatever raised it::

    {"error": {"code": "no_face", "message": "no face found in image 0 (photo.jpg)", "status": 400}}

``code`` is stable and meant for programs; ``message`` is for people;
``status`` repeats the HTTP status. Validation errors add ``details`` (the
offending fields).

The classes below are the one list of codes: each fixes its status and code,
and says what it means (``summary``) with a message it might answer
(``example``). The codes of errors the framework raises (unknown route,
malformed body) come from :data:`FRAMEWORK_ERRORS`, and the API reference's
error answers from the classes each route lists
(:func:`service.schemas.error_responses`).

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
    """Base of every error the service answers; subclasses fix the status and code, and document them."""

    status_code: int = 500
    code: ClassVar[str] = "internal_error"
    #: What the code means, for the API reference.
    summary: ClassVar[str] = "An error the service did not expect; it logged the details"
    #: A message it answers, for the API reference's example.
    example: ClassVar[str] = "internal error; the service logged the details"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None, details: Any = None) -> None:
        super().__init__(status_code=type(self).status_code, detail=message, headers=dict(headers) if headers else None)
        self.message = message
        self.details = details

    def response(self) -> JSONResponse:
        """This error as the service answers it, in the one JSON shape."""
        return error_response(self.status_code, self.code, self.message, details=self.details, headers=self.headers)


# --------------------------------------------------------------------------- 4xx: the client's request


class BadRequest(ServiceError):
    """A request the framework could not read (a malformed multipart body); raised by FastAPI, not by the service."""

    status_code = 400
    code = "bad_request"
    summary = "A body the server could not parse"
    example = "There was an error parsing the body"


class BadImage(ServiceError):
    """An upload that is empty, or not a decodable image of a supported format (``service.images.SUPPORTED_FORMATS``)."""

    status_code = 400
    code = "bad_image"
    summary = "An upload that is not a decodable image"
    example = "image 0 (photo.jpg) could not be decoded as JPEG (the file is cut short)"


class EmptyImage(BadImage):
    code = "empty_image"
    summary = "An empty upload"
    example = "image 0 (photo.jpg) is empty"


class NoFaceFound(ServiceError):
    """The detector found no face where the endpoint needs one."""

    status_code = 400
    code = "no_face"
    summary = "No face found where one is needed"
    example = "no face found in image 0 (photo.jpg); send a clearer photo, or detect=false for a ready-made face crop"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"
    summary = "API key missing or wrong (only when FERSNET_API_KEY is set)"
    example = "missing or wrong API key: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'"

    def __init__(self, message: str = example) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    """Raised by the framework only; the service itself answers 401 for a missing or wrong key."""

    status_code = 403
    code = "forbidden"
    summary = "Forbidden"
    example = "Forbidden"


class NotFound(ServiceError):
    """An unknown route; raised by the framework."""

    status_code = 404
    code = "not_found"
    summary = "No such route"
    example = "Not Found"


class MethodNotAllowed(ServiceError):
    """A known route asked with a method it does not take; raised by the framework."""

    status_code = 405
    code = "method_not_allowed"
    summary = "The route does not take this method"
    example = "Method Not Allowed"


class BodyTimeout(ServiceError):
    """A request body still arriving when its time to arrive is up (``body_timeout_s``).

    A client that sends its headers and then stalls would otherwise hold its
    place among the requests in flight for as long as it keeps the connection
    open: a few dozen such connections would lock every other client out.
    """

    status_code = 408
    code = "body_timeout"
    summary = "The request body did not arrive in time"
    example = "the request body did not arrive within 30 s (4,096 of 100,000 bytes received)"


class PayloadTooLarge(ServiceError):
    """A body, an image's pixel count, or a number of images over the configured limit."""

    status_code = 413
    code = "payload_too_large"
    summary = "A body, a number of images, or pixels in flight over the limit"
    example = "request body of 20,971,520 bytes is over the limit of 16,777,216 bytes"


class TooManyPixels(PayloadTooLarge):
    """An image whose header declares more pixels than allowed: refused before it is decoded."""

    code = "too_many_pixels"
    summary = "An image with more pixels than allowed"
    example = "image 0 is 30000x30000 = 900,000,000 pixels; the limit is 40,000,000"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"
    summary = "Not an image format the service decodes, or not multipart/form-data"
    example = "image 0 (scan.pdf) is PDF; send JPEG, PNG, WebP, HEIC, AVIF, BMP, GIF or TIFF"


class InvalidParameter(ServiceError):
    """A parameter the request sent is not one the route takes, or its value is not one it can answer.

    Every such answer has ``details``, one entry per offending field, so a client reads them the same way whoever
    caught the problem: FastAPI's validation (``loc`` is where and what, ``["query", "intensity"]``), or the route's
    own checks of a value that may come as a query parameter or a form field (``loc`` is the parameter's name).
    """

    status_code = 422
    code = "invalid_parameter"
    summary = "Invalid parameter"
    example = "targets: unknown expression 'smug'; this model draws angry, disgust, fear, happy, sad, surprise, neutral (or 'all')"

    def __init__(self, message: str, *, parameter: str | None = None, details: list[ValidationDetail] | None = None) -> None:
        if details is None:
            details = [{"loc": [parameter] if parameter else [], "msg": message, "type": "invalid_value"}]
        super().__init__(message, details=details)


# --------------------------------------------------------------------------- 5xx: the service's state


class SynthesisUnavailable(ServiceError):
    """The loaded model was trained without the synthesis branch (sharing='none')."""

    status_code = 501
    code = "synthesis_unavailable"
    summary = "The model has no synthesis branch"
    example = "this model was trained without the synthesis branch (sharing='none'); only /v1/classify is served"


class DetectionUnavailable(ServiceError):
    """Detection was asked for, but this installation has no face detector (``yuface`` has wheels for Python 3.11 only)."""

    status_code = 501
    code = "detection_unavailable"
    summary = "This server cannot find faces; send face crops with detect=false"
    example = (
        "this server cannot find faces in photos (face detection needs the yuface package, which has wheels for "
        "Python 3.11 only; this is Python 3.12): send a ready-made face crop with detect=false"
    )


class QueueFull(ServiceError):
    """More images wait than ``max_queue``; the client should retry after a pause."""

    status_code = 429
    code = "queue_full"
    summary = "Queue full; retry after the Retry-After header's seconds"
    example = "classify: 512 images already queued (limit 512); retry shortly"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class NotReady(ServiceError):
    """The model is still loading or warming up, or the service is shutting down."""

    status_code = 503
    code = "not_ready"
    summary = "Model loading or warming up, or failed to start"
    example = "the model is still loading or warming up"

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)} if retry_after_s is not None else None)


class ShuttingDown(NotReady):
    code = "shutting_down"
    summary = "Shutting down; retry on another instance"
    example = "the service is shutting down"


class DeadlineExceeded(ServiceError):
    status_code = 504
    code = "timeout"
    summary = "Request timed out"
    example = "request exceeded its deadline waiting for the classify model"


class InferenceFailed(ServiceError):
    """The forward pass itself raised: a bug or a broken device, never the client's input."""

    status_code = 500
    code = "inference_failed"
    summary = "The model failed on the request's batch; the service logged the details"
    example = "the model failed on this batch; the service logged the details"


# --------------------------------------------------------------------------- the one JSON shape

#: What an HTTP error the framework raises itself (unknown route, wrong method, malformed multipart) answers,
#: by its status: the class whose code it takes. A status not listed answers ``http_error``.
FRAMEWORK_ERRORS: tuple[type[ServiceError], ...] = (
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidParameter,
    QueueFull,
    NotReady,
    DeadlineExceeded,
)

_FRAMEWORK_CODES: dict[int, str] = {error.status_code: error.code for error in FRAMEWORK_ERRORS}


#: What every route that reads uploads may answer, whatever else it does: the upload's own faults and size, its
#: parameters and key, and the service's load and state. Each such route lists these beside its own.
UPLOAD_ERRORS: tuple[type[ServiceError], ...] = (
    BadImage, EmptyImage, BadRequest, Unauthorized, BodyTimeout, TooManyPixels, PayloadTooLarge, UnsupportedMediaType,
    InvalidParameter, QueueFull, NotReady, ShuttingDown, DeadlineExceeded,
)


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


#: FastAPI's words for a text value where a file was expected ("Value error, Expected UploadFile, received: <class
#: 'str'>"), which name a Python class; the client is told what to send instead.
_NOT_A_FILE = "Expected UploadFile"


def _validation_details(exc: RequestValidationError) -> list[ValidationDetail]:
    """FastAPI's validation errors, trimmed to what a client can act on (no echoed uploads, no Python types)."""
    details: list[ValidationDetail] = []
    for e in exc.errors():
        msg, kind = str(e.get("msg", "")), str(e.get("type", ""))
        loc = list(e.get("loc", ()))
        if _NOT_A_FILE in msg:
            msg, kind = "expected a file (a form part with a filename, as curl -F name=@photo.jpg sends), not text", "not_a_file"
        elif kind == "missing" and loc[:1] == ["body"] and len(loc) == 2:  # the body's required fields are its files
            msg = f"missing: send the picture as a form part named {loc[1]} (curl -F {loc[1]}=@photo.jpg)"
        details.append({"loc": loc, "msg": msg, "type": kind})
    return details


def _request_id(request: Request) -> str:
    """The id :class:`~service.middleware.RequestId` gave the request (answered in ``X-Request-ID``), for log lines."""
    return str(getattr(request.state, "request_id", "-"))


def _framework_message(request: Request, exc: StarletteHTTPException) -> str:
    """Starlette's and FastAPI's own words ("Not Found", "Missing boundary in multipart."), said with what to do."""
    detail = str(exc.detail)
    if exc.status_code == 404:
        return f"no route {request.method} {request.url.path}; the API is listed at /docs"
    if exc.status_code == 405:
        return f"{request.url.path} does not take {request.method}; the API is listed at /docs"
    if exc.status_code == 400 and "multipart" in detail.lower():
        return f"the body is not valid multipart/form-data ({detail.rstrip('.')}); send the picture as curl -F image=@photo.jpg does"
    return detail


async def _handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ServiceError):
        code, message, response = exc.code, exc.message, exc.response()
    else:
        code, message = _FRAMEWORK_CODES.get(exc.status_code, "http_error"), _framework_message(request, exc)
        response = error_response(exc.status_code, code, message, headers=exc.headers)
    # A 503 while warming up is routine; other 5xx are the service's to look into, 4xx the client's (named, so that
    # the client's logs and these meet on the request id).
    level = logging.INFO if exc.status_code < 500 or isinstance(exc, NotReady) else logging.WARNING
    _log_failure(request, level, exc.status_code, code, message)
    return response


def _log_failure(request: Request, level: int, status: int, code: str, message: str) -> None:
    log.log(level, "%s %s -> %d %s: %s [request %s]", request.method, request.url.path, status, code, message,
            _request_id(request))


async def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    first: ValidationDetail = details[0] if details else {"loc": [], "msg": "invalid request", "type": ""}
    where = ".".join(str(part) for part in first["loc"])
    message = f"{where}: {first['msg']}" if where else first["msg"]
    _log_failure(request, logging.INFO, InvalidParameter.status_code, InvalidParameter.code, message)
    return InvalidParameter(message, details=details).response()


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Last resort: log the traceback, answer the one JSON shape without internals."""
    log.exception("unhandled error on %s %s [request %s]", request.method, request.url.path, _request_id(request))
    return ServiceError("internal error; the service logged the details").response()


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through the one JSON error shape."""
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(Exception, _handle_unexpected)

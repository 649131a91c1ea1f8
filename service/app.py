"""The app factory: ``create_app(settings)`` wires settings, runtime, routes, middleware and errors.

Request path, outermost first::

    RequestId -> RequestMetrics -> [CORS] -> Admission -> BodyLimits -> FastAPI (error handlers -> routes)

``Admission`` counts inference requests from arrival and answers 429 at once,
body unread, past ``max_inflight_requests``.

The lifespan loads the checkpoint before the first request is served (a bad
checkpoint stops start-up with ``CheckpointError``'s message), warms up in
the background (``/readyz`` says when it is done), and on shutdown stops
taking work and answers everything it accepted.

``/docs`` (Swagger UI) loads its scripts and styles from this server (the
``fastapi-offline`` package ships them, under :data:`DOCS_ASSETS`), never from
a CDN, so it works on a host without internet access. There is no ``/redoc``:
ReDoc's bundle fetches its logo from redocly's CDN, whatever serves the script.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from .errors import install_error_handlers
from .middleware import REQUEST_ID_HEADER, Admission, BodyLimits, RequestId, RequestMetrics
from .routes import classify, operations, page, preview, synthesize
from .runtime import Runtime
from .settings import Settings

DESCRIPTION = """
Facial expression **recognition** and **synthesis** with FERSNet
(Zhao et al., ICPR 2020), served from one multi-task model.

* `POST /v1/classify`: the expression of every face in one or more photos.
* `POST /v1/synthesize`: a face redrawn with other expressions.
* `POST /v1/preview`: an upload as the service reads it (upright), as a JPEG any browser shows.
* `GET /v1/models`: the served checkpoint's model card, and the bundled checkpoints.

The web page at `/` does the same for people, in a browser.

Images from concurrent requests are merged into shared forward passes.
Every error answers `{"error": {"code", "message", "status"}}`.
When the service has an API key, send it as `X-API-Key` (or a bearer token).
"""

#: Where the Swagger UI and ReDoc assets are served from (a folder of their own, apart from any web page's files).
DOCS_ASSETS = "/docs-assets"

#: The routes whose requests count against the admission limit: every one that decodes uploads.
INFERENCE_PATHS = frozenset({"/v1/classify", "/v1/synthesize", "/v1/preview"})

TAGS = [
    {"name": "inference", "description": "Recognition and synthesis, batched across concurrent requests."},
    {"name": "model", "description": "What model is served."},
    {"name": "operations", "description": "Probes and metrics for orchestrators and Prometheus."},
]


def _version() -> str:
    try:
        return version("fersnet")
    except PackageNotFoundError:
        return "0.0.0"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and warm up on start-up; stop taking work and finish what was accepted on shutdown."""
    runtime: Runtime = app.state.runtime
    await runtime.start()
    try:
        yield
    finally:
        await runtime.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app with its own runtime and metrics registry (so tests can build many side by side)."""
    settings = settings if settings is not None else Settings()
    runtime = Runtime(settings)
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        redoc_url=None,
        title="FERSNet",
        version=_version(),
        summary="Facial expression recognition and synthesis",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(classify.router)
    app.include_router(synthesize.router)
    app.include_router(preview.router)
    app.include_router(operations.models_router)
    app.include_router(operations.router)

    page.install_page(app)  # / is the web page for people; /docs stays the API's reference

    # add_middleware wraps: the last added is the outermost.
    app.add_middleware(BodyLimits, max_bytes=settings.max_upload_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(
        Admission,
        limit=settings.max_inflight_requests,
        paths=INFERENCE_PATHS,
        retry_after_s=settings.retry_after_s,
        metrics=runtime.metrics,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["Retry-After", REQUEST_ID_HEADER, "X-Face-Index", "X-Face-Box", "X-Face-Score", "X-Faces-Found", "X-Expressions"],
        )
    app.add_middleware(RequestMetrics, metrics=runtime.metrics, routes=app.routes)
    app.add_middleware(RequestId)
    return app

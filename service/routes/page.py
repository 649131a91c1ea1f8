"""``GET /``: the web page for people, and ``/static/*``: its stylesheet and script.

The page is three plain files in ``service/static`` (HTML, CSS, JavaScript;
no build step, no framework) that call the same ``/v1/classify`` and
``/v1/synthesize`` endpoints as any other client. They are package data, so a
wheel or the Docker image carries them.

The Content-Security-Policy header lets the page load and contact nothing but
this service: photos and camera frames never leave it, and a stray external
font or script would be refused by the browser instead of silently fetched.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: Everything from this service only. blob:/data: are the photos the page shows from memory
#: (uploads, redrawn faces); mediastream: is the camera preview.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # Revalidate every time (the ETag makes that cheap): a new release's page never mixes with an old script.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
async def page() -> FileResponse:
    """The web page: drop photos or use the camera, see each face's expression, redraw a face."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


class _StaticAssets(StaticFiles):
    """StaticFiles whose answers say ``nosniff`` and ``no-cache`` like the page itself."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets under ``/static``."""
    app.include_router(router)
    app.mount("/static", _StaticAssets(directory=STATIC_DIR), name="static")

"""The web page at ``/`` without a browser: served with its CSP, its files present and shipped, nothing external.

What the page does in a browser is tested in ``test_page_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path

import pytest

from service.routes.page import STATIC_DIR
from service.settings import Settings

from .browser import demo_photo
from .helpers import serve

ROOT = Path(__file__).resolve().parents[2]
STATIC_FILES = sorted(p for p in STATIC_DIR.iterdir() if p.is_file())

# Any absolute or protocol-relative URL: https://host, http://host, //host.
EXTERNAL_URL = re.compile(r"(?:\b[a-z][a-z0-9+.-]*:)?//([a-z0-9-]+(?:\.[a-z0-9-]+)*)", re.IGNORECASE)
#: Hosts the page may name in its text (where the camera works); it loads nothing from any host.
NAMED_NOT_LOADED = {"localhost", "127.0.0.1"}


async def test_root_is_the_page_with_a_content_security_policy(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (_, client):
        page = await client.get("/")
        head = await client.head("/")
    assert page.status_code == 200 and head.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>FERSNet" in page.text
    csp = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'" and csp["connect-src"] == "'self'"
    assert set(csp["img-src"].split()) == {"'self'", "blob:", "data:"}
    assert "mediastream:" in csp["media-src"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "camera=(self)" in page.headers["permissions-policy"]


async def test_page_links_the_api_documentation_which_stays_reachable(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as (_, client):
        page = (await client.get("/")).text
        docs = await client.get("/docs")
    assert 'href="docs"' in page  # relative, like every path of the page: it also works under a proxy's prefix
    assert docs.status_code == 200 and "swagger-ui" in docs.text


async def test_every_file_the_page_uses_is_served(make_settings: Callable[..., Settings]) -> None:
    html = (STATIC_DIR / "index.html").read_text()
    referenced = {f"/{path}" for path in re.findall(r'(?:src|href)="(static/[^"]+)"', html)}
    for script in STATIC_DIR.glob("*.js"):
        referenced |= {f"/static/{name}" for name in re.findall(r'from "\./([^"]+)"', script.read_text())}
    assert {"/static/page.css", "/static/page.js", "/static/api.js"} <= referenced
    async with serve(make_settings()) as (_, client):
        answers = {path: await client.get(path) for path in sorted(referenced)}
        missing = await client.get("/static/no-such-file.js")
        outside = await client.get("/static/%2e%2e/app.py")  # no way out of the folder
    for path, answer in answers.items():
        assert answer.status_code == 200, path
        assert answer.headers["x-content-type-options"] == "nosniff"
        kind = "text/css" if path.endswith(".css") else "text/javascript"
        assert answer.headers["content-type"].startswith(kind), (path, answer.headers["content-type"])
    assert missing.status_code == 404 and outside.status_code == 404


def test_the_page_refers_to_no_other_host() -> None:
    """No CDN, no web font, no analytics: every file the page is made of names only this service."""
    assert [p.name for p in STATIC_FILES if p.suffix not in {".html", ".css", ".js"}] == []
    for path in STATIC_FILES:
        text = path.read_text()
        hosts = {match.group(1).lower() for match in EXTERNAL_URL.finditer(text)}
        assert hosts <= NAMED_NOT_LOADED, f"{path.name} names {hosts - NAMED_NOT_LOADED}"
        assert "@import" not in text and "@font-face" not in text, path.name


def test_the_page_is_package_data() -> None:
    """A wheel (and so the Docker image) carries the page: every static file matches service's package-data."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["service"]
    for path in STATIC_FILES:
        relative = path.relative_to(ROOT / "service").as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), f"{relative} would be missing from a wheel"


async def test_classify_and_synthesize_number_faces_alike(make_settings: Callable[..., Settings]) -> None:
    """The page asks /v1/synthesize for face=N where N is the face's place in /v1/classify's list."""
    photo = demo_photo()
    async with serve(make_settings()) as (_, client):
        classified = await client.post("/v1/classify", files={"images": ("two.jpg", photo, "image/jpeg")})
        faces = classified.json()["images"][0]["faces"]
        assert len(faces) == 2
        for index, face in enumerate(faces):
            answer = await client.post(
                "/v1/synthesize", params={"targets": "happy,sad", "format": "json", "face": index},
                files={"image": ("two.jpg", photo, "image/jpeg")},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["face"]["box"] == face["box"]

"""Driving the web page in a real browser: the system's headless Chromium, a live server, and a photo with faces.

Used by ``test_page_browser.py`` and by ``page_screenshots.py`` (the README's
screenshots). Selenium is pointed at the distribution's ``chromium`` and
``chromedriver`` explicitly, so Selenium Manager never downloads a browser.

The photo is Grace Hopper's official US Navy portrait (public domain), which
matplotlib, a dependency of this project, ships as sample data: no dataset
image is needed, and none is committed.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import uvicorn
from PIL import Image, ImageOps

from service.app import create_app
from service.settings import Settings

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_paths() -> tuple[str | None, str | None]:
    """The installed Chromium and its chromedriver (None where absent)."""
    browser = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    return browser, shutil.which("chromedriver")


def browser_missing() -> str | None:
    """Why the page cannot be tested in a browser here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    browser, driver = chromium_paths()
    if browser is None or driver is None:
        return "no Chromium here: apt-get install chromium chromium-driver (Debian) to run the browser tests"
    return None


def chromium(width: int = 1280, height: int = 800) -> WebDriver:
    """Headless Chromium with a ``width`` x ``height`` viewport, its console log readable."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    assert browser is not None and driver is not None, browser_missing()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars",
                     f"--window-size={width},{height}", "--force-device-scale-factor=1",
                     # A fake camera (a moving test pattern) that needs no permission prompt.
                     "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    set_viewport(chrome, width, height)
    return chrome


def set_viewport(chrome: WebDriver, width: int, height: int) -> None:
    """Make the page's viewport exactly ``width`` x ``height`` CSS pixels (a phone's is narrow and touch-sized)."""
    chrome.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def demo_photo(size: tuple[int, int] = (960, 600)) -> bytes:
    """A JPEG with two faces: the portrait, and a smaller mirrored copy of it, on a plain background."""
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        portrait = Image.open(file).convert("RGB")
    photo = Image.new("RGB", size, (214, 222, 230))
    big = portrait.resize((int(portrait.width * size[1] / portrait.height), size[1]), Image.Resampling.LANCZOS)
    photo.paste(big, (40, 0))
    small = ImageOps.mirror(portrait).resize((big.width // 2, big.height // 2), Image.Resampling.LANCZOS)
    photo.paste(small, (size[0] - small.width - 40, size[1] - small.height - 40))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@contextmanager
def live_server(settings: Settings, ready_timeout_s: float = 120.0) -> Iterator[str]:
    """The service on 127.0.0.1 at a free port, in a thread, ready (model warm); yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the OS picks the port, and we hold it: no other process can take it meanwhile
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="live-server")
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, ready_timeout_s)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def wait_until_ready(base: str, timeout_s: float) -> None:
    """Poll /readyz until the model is loaded and warmed up."""
    end = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"{base} not ready after {timeout_s:.0f} s")
        time.sleep(0.2)


def upload(chrome: WebDriver, *paths: Path) -> None:
    """Choose files in the page's file input, as a person would with the "Choose photos" dialog."""
    from selenium.webdriver.common.by import By

    chrome.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))

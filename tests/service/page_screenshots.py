"""Screenshots of the web page for the docs, at desktop and phone size, in headless Chromium.

Start the service, then run from the repository root::

    fersnet serve --port 8000 &
    python -m tests.service.page_screenshots --url http://127.0.0.1:8000 --out docs/figures

It uploads the demo photo (two copies of a public-domain portrait, see
``browser.demo_photo``; no dataset image) and saves ``page_desktop.png``
(1280x800), ``page_phone.png`` (390x844) and ``page_redraw.png`` (a face
redrawn with every expression).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from .browser import browser_missing, chromium, demo_photo, set_viewport, upload

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def show_results(chrome: WebDriver, url: str, photo: Path, faces: int = 2) -> None:
    """Open the page, upload the photo, and wait until every face is boxed and labelled."""
    chrome.get(url)
    WebDriverWait(chrome, 30).until(lambda c: c.find_element(By.ID, "model").text.startswith("Model "))
    upload(chrome, photo)
    WebDriverWait(chrome, 60).until(lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo .face-box .tag")) == faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="where the service runs")
    parser.add_argument("--out", type=Path, default=Path("docs/figures"), help="folder for the PNGs")
    args = parser.parse_args()
    if (reason := browser_missing()) is not None:
        raise SystemExit(reason)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "portraits.jpg"
        photo.write_bytes(demo_photo())
        chrome = chromium(*SIZES["desktop"])
        try:
            for name, (width, height) in SIZES.items():
                set_viewport(chrome, width, height)
                show_results(chrome, args.url, photo)
                # The desktop shows the whole page; a phone's narrow screen, the photo and its first face.
                chrome.execute_script("document.querySelector(arguments[0]).scrollIntoView()",
                                      "body" if name == "desktop" else ".photo")
                chrome.save_screenshot(str(args.out / f"page_{name}.png"))
            set_viewport(chrome, *SIZES["desktop"])
            show_results(chrome, args.url, photo)
            chrome.find_element(By.CSS_SELECTOR, ".photo .face-box").click()
            WebDriverWait(chrome, 60).until(
                lambda c: "expressions" in c.find_element(By.ID, "redraw-status").text
            )
            chrome.save_screenshot(str(args.out / "page_redraw.png"))
        finally:
            chrome.quit()
    print(f"wrote page_desktop.png, page_phone.png and page_redraw.png in {args.out}")


if __name__ == "__main__":
    main()

"""The web page in a real browser: headless Chromium against a live server, as a person would use it.

Skipped, with the reason, where Chromium, chromedriver or selenium is not
installed (``apt-get install chromium chromium-driver`` on Debian). The server
runs the tiny random test model: its expressions are noise, but the boxes come
from the real face detector and every request takes the real path.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from PIL import Image

from service.settings import Settings

from .browser import browser_missing, chromium, demo_photo, live_server, set_viewport, upload
from .helpers import FER_CLASSES, blank_photo

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = [pytest.mark.slow, pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]

if browser_missing() is None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT_S = 60


def settings_for(checkpoint: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"checkpoint": str(checkpoint), "device": "cpu", "torch_threads": 1, "max_batch_size": 8,
                              "max_wait_ms": 2, "decode_workers": 2, "api_key": None}
    return Settings(**(values | overrides))


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path) -> Iterator[str]:
    with live_server(settings_for(tiny_checkpoint)) as url:
        yield url


@pytest.fixture(scope="module")
def chrome() -> Iterator[WebDriver]:
    driver = chromium(1280, 800)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    mirrored = io.BytesIO()
    Image.open(io.BytesIO(demo_photo())).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored, "JPEG", quality=95)
    pair = Image.open(io.BytesIO(demo_photo()))
    row = Image.new("RGB", (2 * pair.width, pair.height))
    row.paste(pair, (0, 0))
    row.paste(pair, (pair.width, 0))
    four = io.BytesIO()
    row.save(four, "JPEG", quality=90)
    crop = io.BytesIO()
    Image.open(io.BytesIO(demo_photo())).crop((100, 50, 400, 350)).resize((32, 32)).save(crop, "PNG")
    tiff = io.BytesIO()
    Image.open(io.BytesIO(demo_photo((1600, 1000)))).save(tiff, "TIFF")  # a format Chromium cannot show
    files = {"two faces.jpg": demo_photo(), "small face first.jpg": mirrored.getvalue(), "four faces.jpg": four.getvalue(),
             "crop.png": crop.getvalue(), "wall.jpg": blank_photo(), "notes.txt": b"not a picture\n",
             "two faces.tiff": tiff.getvalue(), "astronaut.heic": (Path(__file__).parent / "pictures" / "astronaut.heic").read_bytes()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


def wait(chrome: WebDriver, condition: Any, timeout: float = WAIT_S) -> Any:
    return WebDriverWait(chrome, timeout).until(condition)


def open_page(chrome: WebDriver, url: str) -> None:
    chrome.get(url)
    chrome.get_log("browser")  # start each test with an empty console
    wait(chrome, lambda c: c.find_element(By.ID, "model").text.startswith("Model "))


def texts(chrome: WebDriver, selector: str) -> list[str]:
    return [e.text for e in chrome.find_elements(By.CSS_SELECTOR, selector)]


def redrawn_tiles_ready(chrome: WebDriver) -> bool:
    return "expressions" in chrome.find_element(By.ID, "redraw-status").text


def assert_nothing_from_elsewhere(chrome: WebDriver, url: str) -> None:
    """Every resource the page fetched came from the service (or from its own memory), and no console error."""
    names = chrome.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(e => e.name)"
    )
    assert names and all(n.startswith((url + "/", "blob:", "data:")) for n in names), names
    errors = [entry["message"] for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors


def test_upload_boxes_every_face_and_redraws_the_chosen_one(
    chrome: WebDriver, server: str, photos: dict[str, Path]
) -> None:
    set_viewport(chrome, 1280, 800)
    open_page(chrome, server)
    assert "calibrated" in chrome.find_element(By.ID, "model").text  # the test model says it is not
    upload(chrome, photos["two faces.jpg"])

    # Two boxes on the photo, each labelled "N expression P %", and a bar per expression per face.
    wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo button.face-box")) == 2)
    tags = texts(chrome, ".photo .face-box .tag")
    assert [t.split()[0] for t in tags] == ["1", "2"]
    assert all(re.fullmatch(rf"\d ({'|'.join(FER_CLASSES)}) \d+ %", t) for t in tags), tags
    assert "2 faces found by test-tiny" in chrome.find_element(By.CSS_SELECTOR, ".photo .status").text
    assert len(chrome.find_elements(By.CSS_SELECTOR, ".faces .face")) == 2
    assert len(chrome.find_elements(By.CSS_SELECTOR, ".faces .face .bars li")) == 2 * len(FER_CLASSES)
    big, small = (e.rect for e in chrome.find_elements(By.CSS_SELECTOR, ".photo .face-box"))
    assert big["width"] > 1.5 * small["width"] and big["x"] < small["x"]  # the large face is on the left

    # Click a face: every expression is drawn, each with a download link.
    chrome.find_element(By.CSS_SELECTOR, ".photo .face-box").click()
    dialog = chrome.find_element(By.ID, "redraw")
    wait(chrome, redrawn_tiles_ready)
    assert dialog.is_displayed() and "Face 1 of two faces.jpg" in chrome.find_element(By.ID, "redraw-title").text
    tiles = chrome.find_elements(By.CSS_SELECTOR, "#redraw-tiles .tile")
    assert len(tiles) == 1 + len(FER_CLASSES)  # the face as photographed, then each expression
    assert [t.find_element(By.CSS_SELECTOR, "figcaption span").text for t in tiles[1:]] == list(FER_CLASSES)
    drawn = chrome.execute_script(
        "return [...document.querySelectorAll('#redraw-tiles .tile')].slice(1)"
        ".map(t => { const v = t.querySelector('img, canvas'); return v.naturalWidth ?? v.width; })"
    )
    assert all(width > 0 for width in drawn), drawn
    links = [t.find_element(By.CSS_SELECTOR, "a[download]") for t in tiles[1:]]
    assert all(a.get_attribute("href").startswith("blob:") for a in links)
    assert all(a.get_attribute("download").endswith(".jpg") for a in links)  # a JPEG upload comes back as JPEG
    assert all(t.find_elements(By.TAG_NAME, "canvas") for t in tiles[1:])  # shown as a crop around the face
    assert [a.text for a in links] == [f"Download the {t.find_element(By.CSS_SELECTOR, 'figcaption span').text} photo"
                                       for t in tiles[1:]]  # each link says which, in a screen reader's list of links
    size = chrome.execute_async_script(  # the download is a picture (loaded as an <img>: the CSP allows blob: images)
        "const [href, done] = arguments; const image = new Image();"
        "image.onload = () => done([image.naturalWidth, image.naturalHeight]); image.onerror = () => done(null);"
        "image.src = href;",
        links[0].get_attribute("href"),
    )
    uploaded = Image.open(photos["two faces.jpg"]).size
    assert size == list(uploaded)  # the download is the whole photo, at its own size

    # The slider opens at the model's default intensity and redraws the same face at the one chosen.
    slider = chrome.find_element(By.ID, "redraw-intensity")
    assert slider.get_attribute("value") == "1" and "at intensity 1." in chrome.find_element(By.ID, "redraw-status").text
    chrome.execute_script("const s = arguments[0]; s.value = '0.5'; s.dispatchEvent(new Event('input'));"
                          "s.dispatchEvent(new Event('change'));", slider)
    wait(chrome, lambda c: "at intensity 0.5." in c.find_element(By.ID, "redraw-status").text)
    assert chrome.find_element(By.ID, "redraw-intensity-value").text == "0.5"
    # From the keyboard, step after step: the slider keeps its focus while each redraw runs.
    chrome.execute_script("arguments[0].focus()", slider)
    for expected in ("0.6", "0.7"):
        slider.send_keys(Keys.ARROW_RIGHT)
        wait(chrome, lambda c, e=expected: f"at intensity {e}." in c.find_element(By.ID, "redraw-status").text)
        assert chrome.switch_to.active_element == slider
    assert len(chrome.find_elements(By.CSS_SELECTOR, "#redraw-tiles .tile")) == 1 + len(FER_CLASSES)

    # Keyboard: Escape closes and gives focus back; Enter on a focused face box opens its redraw.
    chrome.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(chrome, lambda c: not dialog.is_displayed())
    assert chrome.switch_to.active_element.get_attribute("data-face") == "0"
    second = chrome.find_elements(By.CSS_SELECTOR, ".photo .face-box")[1]
    second.send_keys(Keys.ENTER)
    wait(chrome, redrawn_tiles_ready)
    assert "Face 2 of" in chrome.find_element(By.ID, "redraw-title").text
    chrome.find_element(By.ID, "redraw-close").click()
    assert_nothing_from_elsewhere(chrome, server)


def test_a_photo_this_browser_cannot_show_is_shown_from_the_service_s_preview(
        chrome: WebDriver, server: str, photos: dict[str, Path]) -> None:
    """Chromium shows neither HEIC nor TIFF: the page shows the service's JPEG of each (POST /v1/preview), the boxes
    on it, and the face as photographed beside its redrawings. A file that is no picture still gets a blank."""
    set_viewport(chrome, 1280, 800)
    open_page(chrome, server)
    upload(chrome, photos["notes.txt"], photos["astronaut.heic"], photos["two faces.tiff"])
    wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo[aria-busy='false']")) == 3)
    wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".stage.no-preview")) == 1)
    chrome.get_log("browser")  # the text file's 415s, from classify and from preview: as they should be
    cards = {card.find_element(By.TAG_NAME, "h2").text: card for card in chrome.find_elements(By.CSS_SELECTOR, ".photo")}
    assert "no-preview" in cards["notes.txt"].find_element(By.CSS_SELECTOR, ".stage").get_attribute("class")
    sizes = {name: chrome.execute_script("const i = arguments[0].querySelector('.stage img'); return [i.naturalWidth, i.naturalHeight];",
                                         cards[name]) for name in ("astronaut.heic", "two faces.tiff")}
    assert sizes == {"astronaut.heic": [256, 256], "two faces.tiff": [1024, 640]}  # a preview is at most 1024 a side
    assert len(cards["two faces.tiff"].find_elements(By.CSS_SELECTOR, ".face-box")) == 2
    cards["two faces.tiff"].find_element(By.CSS_SELECTOR, ".face-box").click()
    wait(chrome, redrawn_tiles_ready)
    tiles = chrome.find_elements(By.CSS_SELECTOR, "#redraw-tiles .tile")
    assert len(tiles) == 1 + len(FER_CLASSES) and tiles[0].text.startswith("as photographed")
    # The face as photographed is cut from the 1024-pixel preview with the box of the 1600-pixel upload: the same
    # square of the photo as Python cuts from the upload itself (up to JPEG's and the two resamplings' differences).
    shown = chrome.execute_script("return document.querySelector('#redraw-tiles canvas').toDataURL('image/png');")
    face = max((json_box(b) for b in classify_boxes(server, photos["two faces.tiff"])), key=lambda b: b[2])
    x, y, w, h = face
    side = max(w, h) * 1.25
    left, top = min(max(0, x + w / 2 - side / 2), 1600 - side), min(max(0, y + h / 2 - side / 2), 1000 - side)
    drawn = Image.open(io.BytesIO(base64.b64decode(shown.split(",", 1)[1]))).convert("L")
    expected = Image.open(photos["two faces.tiff"]).convert("L").resize(drawn.size, box=(left, top, left + side, top + side))
    difference = np.abs(np.asarray(drawn, dtype=float) - np.asarray(expected, dtype=float)).mean()
    assert difference < 6, difference  # a box not scaled to the preview would cut another square: tens of grey levels
    chrome.find_element(By.ID, "redraw-close").click()
    assert_nothing_from_elsewhere(chrome, server)


def classify_boxes(server: str, path: Path) -> list[dict[str, int]]:
    """The face boxes the service finds in a picture, in its pixels."""
    answer = httpx.post(f"{server}/v1/classify", files={"images": (path.name, path.read_bytes())}, timeout=WAIT_S)
    return [face["box"] for face in answer.json()["images"][0]["faces"]]


def json_box(box: dict[str, int]) -> tuple[int, int, int, int]:
    return box["x"], box["y"], box["width"], box["height"]


def test_phone_sized_window(chrome: WebDriver, server: str, photos: dict[str, Path]) -> None:
    set_viewport(chrome, 390, 844)
    try:
        open_page(chrome, server)
        upload(chrome, photos["two faces.jpg"])
        wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo .face-box .tag")) == 2)
        width = chrome.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide: it scrolls sideways on a phone"
        chrome.find_elements(By.CSS_SELECTOR, ".faces .face button")[0].click()
        wait(chrome, redrawn_tiles_ready)
        box = chrome.find_element(By.ID, "redraw").rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        chrome.find_element(By.ID, "redraw-close").click()
        # Four faces in a row: on a phone each label keeps its number alone, and no two labels overlap.
        upload(chrome, photos["four faces.jpg"])
        wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo .face-box .tag")) == 6)
        tags = chrome.find_elements(By.CSS_SELECTOR, ".photo:first-child .face-box .tag")
        assert [t.text for t in tags] == ["1", "2", "3", "4"]
        for left, right in pairwise(t.rect for t in tags):
            assert left["x"] + left["width"] <= right["x"] + 1 or left["y"] + left["height"] <= right["y"] + 1, (left, right)
    finally:
        set_viewport(chrome, 1280, 800)


def test_errors_are_said_in_plain_words(chrome: WebDriver, server: str, photos: dict[str, Path]) -> None:
    open_page(chrome, server)
    upload(chrome, photos["wall.jpg"])
    wait(chrome, lambda c: "No face was found" in c.find_element(By.CSS_SELECTOR, ".photo .status").text)
    upload(chrome, photos["notes.txt"])
    wait(chrome, lambda c: "not a picture" in c.find_element(By.CSS_SELECTOR, ".photo.failed .status").text)

    # A busy service (429, as its queue-full answer): said so, with a button that tries again once it has room.
    chrome.execute_script("""
        window.realFetch = window.fetch;
        window.fetch = async () => new Response(
          JSON.stringify({ error: { code: "queue_full", message: "classify: 512 images already queued", status: 429 } }),
          { status: 429, headers: { "content-type": "application/json", "Retry-After": "2" } });""")
    upload(chrome, photos["two faces.jpg"])
    wait(chrome, lambda c: "busy" in c.find_element(By.CSS_SELECTOR, ".photo.failed .status").text)
    assert "Try again in 2 seconds" in chrome.find_element(By.CSS_SELECTOR, ".photo .status").text
    chrome.execute_script("window.fetch = window.realFetch")
    chrome.find_element(By.CSS_SELECTOR, ".photo .again").click()
    wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo .face-box")) == 2)


def test_faces_are_numbered_from_the_left_whatever_their_size(chrome: WebDriver, server: str, photos: dict[str, Path]) -> None:
    """The service lists faces largest first; a person reads a photo from the left: the page numbers, lists and tabs
    through them that way, and a redraw still asks the service for the face that was chosen."""
    set_viewport(chrome, 1280, 800)
    open_page(chrome, server)
    upload(chrome, photos["small face first.jpg"])
    wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo button.face-box")) == 2)
    boxes = chrome.find_elements(By.CSS_SELECTOR, ".photo .face-box")
    assert [b.find_element(By.CSS_SELECTOR, ".tag").text.split()[0] for b in boxes] == ["1", "2"]
    assert boxes[0].rect["x"] < boxes[1].rect["x"] and boxes[0].rect["width"] < boxes[1].rect["width"]
    assert [b.get_attribute("data-face") for b in boxes] == ["1", "0"]  # the service's indices: largest first
    assert texts(chrome, ".faces .face h3")[0].startswith("Face 1:")
    boxes[0].click()
    wait(chrome, redrawn_tiles_ready)
    assert "Face 1 of small face first.jpg" in chrome.find_element(By.ID, "redraw-title").text
    assert chrome.find_element(By.CSS_SELECTOR, "#redraw-tiles a[download]").get_attribute("download").startswith(
        "small face first-face1-")


def test_photos_chosen_together_read_in_their_order_and_a_small_crop_is_enlarged(
        chrome: WebDriver, server: str, photos: dict[str, Path]) -> None:
    set_viewport(chrome, 1280, 800)
    open_page(chrome, server)
    upload(chrome, photos["two faces.jpg"], photos["crop.png"])
    wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo[aria-busy='false']")) == 2)
    assert texts(chrome, ".photo h2") == ["two faces.jpg", "crop.png"]
    crop = chrome.find_elements(By.CSS_SELECTOR, ".photo .stage img")[1]
    assert crop.get_property("naturalWidth") == 32 and crop.rect["width"] >= 150  # seen, not a 32 px speck


def test_camera_frames_go_through_classify(chrome: WebDriver, server: str) -> None:
    """Chromium's fake camera (a test pattern, no face): frames are classified live, and one can be kept."""
    open_page(chrome, server)
    chrome.find_element(By.ID, "camera-start").click()
    wait(chrome, lambda c: "frames a second" in c.find_element(By.ID, "camera-rate").text)
    chrome.find_element(By.ID, "camera-snap").click()
    wait(chrome, lambda c: c.find_elements(By.CSS_SELECTOR, ".photo[aria-busy='false']"))
    assert chrome.find_element(By.CSS_SELECTOR, ".photo h2").text.startswith("camera-")
    chrome.find_element(By.ID, "camera-stop").click()
    assert not chrome.find_element(By.ID, "camera").is_displayed()


def test_api_key_is_asked_for_once_and_sent(chrome: WebDriver, tiny_checkpoint: Path, photos: dict[str, Path]) -> None:
    with live_server(settings_for(tiny_checkpoint, api_key="page-test-key")) as url:
        chrome.get(url)
        wait(chrome, lambda c: c.find_element(By.ID, "key-panel").is_displayed())
        assert "needs an API key" in chrome.find_element(By.ID, "model").text
        # Before the key: they fail, and are tried again once the key is set; so is the preview of the TIFF, which
        # this browser cannot show itself.
        upload(chrome, photos["two faces.jpg"], photos["two faces.tiff"])
        wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo.failed")) == 2)
        chrome.find_element(By.ID, "key").send_keys("a-wrong-key", Keys.ENTER)  # refused, and the page says so
        wait(chrome, lambda c: "refused the API key" in c.find_element(By.ID, "model").text)
        wait(chrome, lambda c: c.find_element(By.ID, "key-panel").is_displayed())
        chrome.find_element(By.ID, "key").send_keys("page-test-key", Keys.ENTER)
        wait(chrome, lambda c: c.find_element(By.ID, "model").text.startswith("Model "))
        wait(chrome, lambda c: len(c.find_elements(By.CSS_SELECTOR, ".photo .face-box")) == 4)
        assert not chrome.find_elements(By.CSS_SELECTOR, ".photo.failed")
        wait(chrome, lambda c: c.execute_script(
            "return [...document.querySelectorAll('.photo .stage img')].every(i => i.naturalWidth > 0)"))
        assert not chrome.find_elements(By.CSS_SELECTOR, ".stage.no-preview")
        assert "page-test-key" not in chrome.current_url
        assert chrome.execute_script("return sessionStorage.getItem('fersnet-api-key')") == "page-test-key"
        chrome.execute_script("sessionStorage.clear()")


def test_the_answers_prior_is_a_choice_where_the_model_records_its_class_frequencies(
        chrome: WebDriver, server: str, balanced_checkpoint: Path, photos: dict[str, Path]) -> None:
    """Opened at the model's default; changing it classifies the photos shown again under the other prior."""
    open_page(chrome, server)
    assert not chrome.find_element(By.ID, "prior-choice").is_displayed()  # the test model records no frequencies
    with live_server(settings_for(balanced_checkpoint)) as url:
        open_page(chrome, url)
        wait(chrome, lambda c: c.find_element(By.ID, "prior-choice").is_displayed())
        choice = Select(chrome.find_element(By.ID, "prior"))
        assert choice.first_selected_option.get_attribute("value") == "balanced"
        upload(chrome, photos["two faces.jpg"])
        wait(chrome, lambda c: c.find_elements(By.CSS_SELECTOR, ".photo[aria-busy='false'] .face"))
        balanced = texts(chrome, ".photo .face .value")
        choice.select_by_value("natural")
        wait(chrome, lambda c: c.find_elements(By.CSS_SELECTOR, ".photo[aria-busy='false'] .face")
             and texts(c, ".photo .face .value") != balanced)
        assert len(texts(chrome, ".photo .face .value")) == len(balanced)  # the same faces, other probabilities
        assert not chrome.get_log("browser")


@pytest.mark.usefixtures("no_yuface")
def test_without_a_face_detector_each_picture_is_read_as_one_face(chrome: WebDriver, tiny_checkpoint: Path,
                                                                   photos: dict[str, Path]) -> None:
    """On a Python where YuNet has no wheel: the page says so, and sends pictures as crops instead of failing."""
    with live_server(settings_for(tiny_checkpoint)) as url:
        open_page(chrome, url)
        assert "cannot find faces in photos" in chrome.find_element(By.ID, "model").text
        upload(chrome, photos["two faces.jpg"])
        wait(chrome, lambda c: c.find_elements(By.CSS_SELECTOR, ".photo[aria-busy='false'] .face-box"))
        assert len(chrome.find_elements(By.CSS_SELECTOR, ".photo .face-box")) == 1  # the whole picture, as one face
        chrome.find_element(By.CSS_SELECTOR, ".photo .face-box").click()
        wait(chrome, redrawn_tiles_ready)
        assert len(chrome.find_elements(By.CSS_SELECTOR, "#redraw-tiles .tile")) == 1 + len(FER_CLASSES)
        chrome.find_element(By.ID, "redraw-close").click()
        assert_nothing_from_elsewhere(chrome, url)


def test_the_page_lists_the_formats_this_server_decodes(chrome: WebDriver, tiny_checkpoint: Path, photos: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An installation without HEIC's decoder (no pi-heif wheel for its platform): the page does not offer HEIC."""
    from service.routes import operations

    monkeypatch.setattr(operations, "FORMAT_NAMES", ["JPEG", "PNG", "WebP", "AVIF", "BMP", "GIF", "TIFF"])
    with live_server(settings_for(tiny_checkpoint)) as url:
        open_page(chrome, url)
        wait(chrome, lambda c: c.find_element(By.ID, "formats").text == "JPEG, PNG, WebP, AVIF, BMP, GIF or TIFF")
        upload(chrome, photos["notes.txt"])
        wait(chrome, lambda c: "use JPEG, PNG, WebP, AVIF, BMP, GIF or TIFF." in c.find_element(By.CSS_SELECTOR, ".photo.failed .status").text)

"""The web page end to end in a real headless Chromium (Selenium, Debian's chromium + chromedriver).

uvicorn serves `create_app` on a free loopback port in a thread. The test loads the page, uploads a
face, sees its neighbours, runs a morph and moves the slider, and sees a readable error for junk.
With FACESPACE_SCREENSHOT=1 it writes the page to benchmarks/results/web_page.png (built from LFW
people when ../shared/data has LFW); otherwise the screenshot goes to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from test_web_api import build_site

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = os.environ.get("FACESPACE_SCREENSHOT", "") not in ("", "0")

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); "
           "`make browser` installs them",
)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")


def lfw_site(root: Path, *, people: int = 12, per_person: int = 20) -> dict[str, Path] | None:
    """A nicer site for the screenshot: colour LFW faces of well-photographed people, with names."""
    from conftest import LFW

    if not LFW.is_dir():
        return None
    from facespace.models.registry import load_model, save_model
    from facespace.data import load_faces
    from facespace.pipelines.indexing import build_index
    from facespace.models.pca import PCAAutoencoder

    chosen = sorted((p for p in LFW.iterdir() if p.is_dir()), key=lambda p: (-len(list(p.iterdir())), p.name))[:people]
    faces = root / "faces"
    for person in chosen:
        (faces / person.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(person.iterdir())[:per_person]:
            (faces / person.name / f.name).symlink_to(f)
    face_set = load_faces(str(faces), size=32, progress=False)
    model = load_model(save_model(PCAAutoencoder(code_size=32).fit(face_set.images), root / "pca.safetensors"))
    build_index(model, face_set).save(root / "faces.index")
    return {"faces": faces, "model": root / "pca.safetensors", "index": root / "faces.index",
            "gallery": root / "people.db", "people": [p.name for p in chosen]}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("webui")
    return (lfw_site(root) if SCREENSHOT else None) or build_site(root)


@pytest.fixture(scope="module")
def server(site):
    """The app on http://127.0.0.1:<free port>, served by uvicorn in a thread."""
    import uvicorn

    from facespace.web import create_app

    app = create_app(model=site["model"], index=site["index"], gallery=site["gallery"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download a driver
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,2000", "--hide-scrollbars",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, condition, timeout: float = 20.0, what: str = "the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message=f"timed out waiting for {what}")


def by_id(driver, id_):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, id_)


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def test_page_search_morph_and_errors(server, browser, site, tmp_path):
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/")
    n_index = len(list(Path(site["faces"]).rglob("*.*")))
    wait(browser, lambda d: f"index of {n_index} faces" in by_id(d, "info").text, what="/api/info on the page")
    wait(browser, lambda d: len(css(d, "#browse-tiles figure img")) == min(40, n_index), what="the index thumbnails")

    # upload a face: its reconstruction and neighbours appear, the face itself first at distance 0
    query = sorted(Path(site["faces"]).rglob("*.*"))[5]
    by_id(browser, "search-file").send_keys(str(query))
    by_id(browser, "search-go").click()
    wait(browser, lambda d: len(css(d, "#neighbours figure")) == 8, what="8 neighbours")
    captions = [f.text for f in css(browser, "#neighbours figcaption")]
    assert captions[0].splitlines()[0] == "1. 0.000" and [c.split(".")[0] for c in captions] == [str(i) for i in range(1, 9)]
    assert len(css(browser, "#search-result figure.query img")) == 2  # query and reconstruction
    loaded = browser.execute_script(
        "return [...document.querySelectorAll('#neighbours img')].every(i => i.complete && i.naturalWidth > 0)")
    assert loaded, "every neighbour picture loads from /api/images"

    # each request shows progress while it works
    busy = browser.execute_script("search(0); return document.getElementById('search-status').className;")
    assert "busy" in busy
    wait(browser, lambda d: "busy" not in by_id(d, "search-status").get_attribute("class"), what="search to finish")

    # morph between two index faces; the slider changes the frame
    by_id(browser, "a-id").send_keys("1")
    by_id(browser, "b-id").send_keys("2")
    by_id(browser, "morph-go").click()
    wait(browser, lambda d: len(css(d, "#morph-strip img")) == 9, what="9 morph frames")
    first = by_id(browser, "morph-frame").get_attribute("src")
    slider = by_id(browser, "morph-slider")
    slider.send_keys(Keys.END)
    wait(browser, lambda d: by_id(d, "morph-label").text == "frame 9 of 9", what="the slider to move")
    last = by_id(browser, "morph-frame").get_attribute("src")
    assert first.startswith("data:image/png") and last.startswith("data:image/png") and first != last

    # verify with a threshold gives a verdict
    by_id(browser, "threshold").send_keys("0.5")
    by_id(browser, "verify-go").click()
    wait(browser, lambda d: css(d, "#verify-result .verdict"), what="a verdict")
    assert css(browser, "#verify-result .verdict")[0].text in ("same person", "different people")

    # explain the pair, where this installation has facespace.pipelines.explanation
    if by_id(browser, "explain-go").is_enabled():
        by_id(browser, "explain-go").click()
        wait(browser, lambda d: css(d, "#explain-result img.picture"), what="the explanation picture")
        assert browser.execute_script("return document.querySelector('#explain-result img').naturalWidth") > 0

    # a file that is not an image: a readable message, no crash
    junk = tmp_path / "notes.jpg"
    junk.write_bytes(b"this is not a picture")
    by_id(browser, "search-id").clear()
    by_id(browser, "search-file").send_keys(str(junk))
    by_id(browser, "search-go").click()
    wait(browser, lambda d: "error" in by_id(d, "search-status").get_attribute("class"), what="the error message")
    assert "notes.jpg" in by_id(browser, "search-status").text and "not an image" in by_id(browser, "search-status").text

    # the screenshot: a good-looking state of the page (neighbours, morph, people, clusters)
    _dress_for_screenshot(browser, site)
    out = ROOT / "benchmarks" / "results" / "web_page.png" if SCREENSHOT else tmp_path / "web_page.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(int(height) + 40, 4000))
    time.sleep(0.3)
    assert browser.save_screenshot(str(out))
    from PIL import Image

    with Image.open(out) as shot:
        assert shot.size[0] >= 1000 and np.asarray(shot.convert("L")).std() > 10  # a picture, not a blank page


def _dress_for_screenshot(browser, site) -> None:
    """Search again with a face, enrol two people, identify, and group the index."""
    files = sorted(Path(site["faces"]).rglob("*.*"))
    people = site.get("people")
    browser.execute_script("document.getElementById('search-file').value = ''")
    by_id(browser, "search-id").send_keys("3")
    by_id(browser, "search-go").click()
    wait(browser, lambda d: len(css(d, "#neighbours figure")) == 8 and
         "error" not in by_id(d, "search-status").get_attribute("class"), what="neighbours again")
    if people:  # LFW: enrol two named people from their own photos, identify a third photo
        groups = [[f for f in files if f.parent.name == name] for name in people[:2]]
    else:
        groups = [files[:3], files[20:23]]
    for k, group in enumerate(groups):
        name = people[k].replace("_", " ") if people else ("ann", "bob")[k]
        by_id(browser, "enroll-name").clear()
        by_id(browser, "enroll-name").send_keys(name)
        by_id(browser, "enroll-files").send_keys("\n".join(str(f) for f in group[:5]))
        if not by_id(browser, "enroll-force").is_selected():
            by_id(browser, "enroll-force").click()
        by_id(browser, "enroll-go").click()
        wait(browser, lambda d, n=name: f"of {n}" in by_id(d, "people-status").text, what=f"enrolling {name}")
    by_id(browser, "identify-file").send_keys(str(groups[0][7 if people else 1]))
    by_id(browser, "identify-go").click()
    wait(browser, lambda d: css(d, "#identify-result table"), what="identification")
    by_id(browser, "decode-go").click()
    wait(browser, lambda d: len(css(d, "#decode-result figure")) == 2, what="a decoded code")
    by_id(browser, "clusters-go").click()
    wait(browser, lambda d: "groups" in by_id(d, "clusters-result").text, what="clusters")
    by_id(browser, "duplicates-go").click()
    wait(browser, lambda d: "groups within" in by_id(d, "duplicates-result").text, what="duplicates")
    browser.execute_script("window.scrollTo(0, 0)")


"""The slice viewer driven in headless Chromium (Selenium and the system's chromedriver).

One browser for the module, the page opened from a ``file://`` URL. Canvas pixels are
read back with ``getImageData``; each overlay toggle is checked to change exactly the
pixels of its own mask, computed here from the arrays the files were written from.

Skips, with the reason, when Selenium, ``chromium`` or ``chromedriver`` is missing
(``.ci/run`` installs them where it can); ``BRATS_CHROMIUM`` and ``BRATS_CHROMEDRIVER``
name other binaries.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from brats_sdk.report import write_viewer
from tests.viewer_case import FN_SLICE, FP_BOX, FP_SLICE, ViewerCase, make_viewer_case

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

Driver = Any  # selenium's WebDriver (untyped for mypy here: tests are not type-checked strictly)
RGBA = npt.NDArray[np.int16]

_READ_CANVAS = """
const c = document.querySelector('canvas.bv-canvas');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let s = '';
for (let i = 0; i < d.length; i += 8192) s += String.fromCharCode.apply(null, d.subarray(i, i + 8192));
return [c.width, c.height, btoa(s)];
"""


def _binary(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def case(module_tmp: Path) -> ViewerCase:
    return make_viewer_case(module_tmp)


@pytest.fixture(scope="module")
def page(case: ViewerCase, module_tmp: Path) -> Path:
    out = module_tmp / "viewer.html"
    write_viewer(case.pred_dir, out, ground_truth=case.data_dir, volumes=[1, 2])
    return out


@pytest.fixture(scope="module")
def driver() -> Iterator[Driver]:
    browser = _binary("BRATS_CHROMIUM", "chromium", "chromium-browser", "google-chrome")
    chromedriver = _binary("BRATS_CHROMEDRIVER", "chromedriver")
    if browser is None or chromedriver is None:
        pytest.skip("chromium or chromedriver not found (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900", "--disable-background-networking", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture
def viewer(driver: Driver, page: Path) -> Driver:
    """The page freshly loaded, its first volume drawn."""
    driver.get(page.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "div.bv").get_attribute("data-ready"))
    return driver


def _pixels(d: Driver) -> RGBA:
    w, h, data = d.execute_script(_READ_CANVAS)
    return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(h, w, 4).astype(np.int16)


def _geometry(d: Driver) -> dict[str, Any]:
    """The shown volume's box and first slice, from its payload in the page."""
    return dict(d.execute_script(
        "const v = document.querySelector('div.bv').getAttribute('data-volume');"
        "const p = JSON.parse(document.querySelector(`script.bv-vol[data-volume=\"${v}\"]`).textContent);"
        "return {volume: p.volume, box: p.box, z0: p.z0, n: p.n};"
    ))


def _slice(d: Driver) -> int:
    return int(d.find_element(By.CSS_SELECTOR, "div.bv").get_attribute("data-slice"))


def _go(d: Driver, z: int) -> None:
    """Show slice ``z`` through the slider's own keyboard handling (Home, then arrows)."""
    slider = d.find_element(By.CSS_SELECTOR, ".bv-slider")
    g = _geometry(d)
    slider.send_keys(Keys.HOME, *([Keys.ARROW_RIGHT] * (z - g["z0"])))
    assert _slice(d) == z


def _set(d: Driver, css: str, on: bool) -> None:
    box = d.find_element(By.CSS_SELECTOR, css)
    if box.is_selected() != on:
        box.click()


def _overlays_off(d: Driver) -> None:
    for css in (".bv-pred", ".bv-truth", ".bv-error", ".bv-unc"):
        _set(d, css, False)


def _crop(d: Driver, volume: npt.NDArray[np.generic], z: int) -> npt.NDArray[Any]:
    y0, y1, x0, x1 = _geometry(d)["box"]
    return volume[z, y0:y1, x0:x1]


def _changed(before: RGBA, after: RGBA) -> npt.NDArray[np.bool_]:
    return np.asarray((before != after).any(axis=2))


def _outline(t: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Pixels of a label whose 4-neighbour (or the box edge) has another label."""
    pad = np.pad(t, 1, constant_values=255)
    edge = np.zeros(t.shape, dtype=bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        edge |= pad[1 + dy : 1 + dy + t.shape[0], 1 + dx : 1 + dx + t.shape[1]] != t
    return (t > 0) & edge


def test_loads_from_file_url_without_console_errors(viewer: Driver, page: Path) -> None:
    assert viewer.current_url.startswith("file://")
    errors = [e for e in viewer.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert viewer.execute_script("return performance.getEntriesByName('bv-first-paint').length") == 1
    labels = [o.text for o in Select(viewer.find_element(By.CSS_SELECTOR, ".bv-modality")).options]
    assert labels == ["FLAIR", "T1", "T1ce", "T2"]
    assert "<script src" not in page.read_text() and "http" not in page.read_text().split("<body>")[1]


def test_slider_arrow_keys_and_wheel_change_the_slice(viewer: Driver) -> None:
    text = viewer.find_element(By.CSS_SELECTOR, ".bv-slice")
    _go(viewer, 3)
    before, label = _pixels(viewer), text.text
    assert label.startswith("Slice 3 of 0\u20139")  # 0-9 with an en dash
    viewer.find_element(By.CSS_SELECTOR, ".bv-slider").send_keys(Keys.ARROW_RIGHT)
    assert _slice(viewer) == 4 and text.text.startswith("Slice 4 ")
    after_slider = _pixels(viewer)
    assert _changed(before, after_slider).sum() > 50
    stage = viewer.find_element(By.CSS_SELECTOR, ".bv-stage")
    stage.click()
    ActionChains(viewer).send_keys(Keys.ARROW_UP).perform()
    assert _slice(viewer) == 5 and text.text.startswith("Slice 5 ")
    assert _changed(after_slider, _pixels(viewer)).sum() > 50
    ActionChains(viewer).send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN).perform()
    assert _slice(viewer) == 3
    assert (_pixels(viewer) == before).all()  # back on slice 3: the same image
    ActionChains(viewer).scroll_from_origin(ScrollOrigin.from_element(stage), 0, 100).perform()
    WebDriverWait(viewer, 5).until(lambda d: _slice(d) == 4)
    # The region volumes of the slice are shown: slice 4's truth WT in mL (1 mm voxels).
    rows = viewer.find_elements(By.CSS_SELECTOR, ".bv-ml tr")
    assert rows[2].text.split()[0] == "truth"


def test_each_overlay_changes_exactly_its_mask(viewer: Driver, case: ViewerCase) -> None:
    z = FP_SLICE
    _go(viewer, z)
    _overlays_off(viewer)
    base = _pixels(viewer)
    pred, truth = _crop(viewer, case.pred[1], z), _crop(viewer, case.truth[1], z)

    _set(viewer, ".bv-pred", True)
    assert np.array_equal(_changed(base, _pixels(viewer)), pred > 0)
    _set(viewer, ".bv-pred", False)
    assert (_pixels(viewer) == base).all()

    _set(viewer, ".bv-truth", True)
    changed = _changed(base, _pixels(viewer))
    assert changed.any() and np.array_equal(changed, _outline(truth))
    _set(viewer, ".bv-truth", False)

    _set(viewer, ".bv-unc", True)
    assert np.array_equal(_changed(base, _pixels(viewer)), _crop(viewer, case.unc, z) > 0)
    _set(viewer, ".bv-unc", False)
    assert (_pixels(viewer) == base).all()


def test_error_view_colours_the_planted_errors(viewer: Driver, case: ViewerCase) -> None:
    _overlays_off(viewer)
    Select(viewer.find_element(By.CSS_SELECTOR, ".bv-error-region")).select_by_visible_text("WT")
    for z in (FP_SLICE, FN_SLICE):
        _go(viewer, z)
        base = _pixels(viewer)
        _set(viewer, ".bv-error", True)
        shown = _pixels(viewer)
        _set(viewer, ".bv-error", False)
        p, t = _crop(viewer, case.pred[1], z) > 0, _crop(viewer, case.truth[1], z) > 0
        assert np.array_equal(_changed(base, shown), p ^ t)
        if z == FP_SLICE:  # the planted false positive: magenta (#ff00ff) at half opacity
            y0, y1, x0, x1 = FP_BOX
            by0, _, bx0, _ = _geometry(viewer)["box"]
            where = np.zeros(p.shape, dtype=bool)
            where[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] = True
            assert np.array_equal(where, p & ~t)
            colour = (255, 0, 255)
        else:  # the planted false negative: cyan (#00e5ff)
            where = t & ~p
            assert where.sum() > 5
            colour = (0, 229, 255)
        blend = 0.5 * np.asarray(colour) + 0.5 * base[where][:, :3]
        assert np.abs(shown[where][:, :3] - blend).max() <= 2  # the compositor rounds alpha to 8 bits


def test_opacity_modality_and_jump_list(viewer: Driver, case: ViewerCase) -> None:
    _go(viewer, 4)
    _overlays_off(viewer)
    flair = _pixels(viewer)
    Select(viewer.find_element(By.CSS_SELECTOR, ".bv-modality")).select_by_visible_text("T2")
    t2 = _pixels(viewer)
    assert _changed(flair, t2).sum() > 50
    _set(viewer, ".bv-pred", True)
    viewer.find_element(By.CSS_SELECTOR, ".bv-opacity").send_keys(Keys.END)  # opacity 100 %
    shown = _pixels(viewer)
    pred = _crop(viewer, case.pred[1], 4)
    assert (shown[pred == 1][:, :3] == (255, 0, 0)).all()  # NCR at full opacity: the report's red
    assert (shown[pred == 0] == t2[pred == 0]).all()
    first = viewer.find_element(By.CSS_SELECTOR, ".bv-jump-row button")
    most = int(np.argmax((case.truth[1] > 0).sum(axis=(1, 2))))
    assert int(first.text) == most
    _go(viewer, 1)
    first.click()
    assert _slice(viewer) == most


def test_volume_selector_switches_volumes(viewer: Driver, case: ViewerCase) -> None:
    assert _geometry(viewer)["volume"] == 1
    one = _pixels(viewer)
    Select(viewer.find_element(By.CSS_SELECTOR, ".bv-volume")).select_by_value("1")
    root = viewer.find_element(By.CSS_SELECTOR, "div.bv")
    WebDriverWait(viewer, 10).until(lambda _d: root.get_attribute("data-volume") == "2")
    g = _geometry(viewer)
    two = _pixels(viewer)
    y0, y1, x0, x1 = g["box"]
    assert two.shape[:2] == (y1 - y0, x1 - x0) and (two.shape != one.shape or _changed(one, two).any())
    # Volume 2 is predicted exactly: its error view changes nothing; it has no uncertainty map.
    _overlays_off(viewer)
    base = _pixels(viewer)
    _set(viewer, ".bv-error", True)
    assert (_pixels(viewer) == base).all()
    assert not viewer.find_element(By.CSS_SELECTOR, ".bv-unc").is_displayed()
    assert [e for e in viewer.get_log("browser") if e["level"] == "SEVERE"] == []

"""What only a real browser can show: dragging the nodule, the gallery filling, Stop mid-run.

Debian's chromium through Playwright against the real app (micro model, few steps). One
server and one browser page for the module; screenshots of each page go to
test-output/screenshots/.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tiger.paths import PROJECT_ROOT

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SHOTS = PROJECT_ROOT / "test-output" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page(ui_server):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed (run scripts/system_deps.sh)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        pg.goto(ui_server.url)
        pg.wait_for_selector("#syn-canvas .tc-mask")
        yield pg
        browser.close()


def _location(page) -> str | None:
    return page.evaluate("() => { const r = document.querySelector('#syn-location input[type=radio]:checked');"
                         " return r ? r.value : null; }")


def _condition_src(page) -> str | None:
    return page.evaluate("() => { const i = document.querySelector('#syn-condition img'); return i ? i.src : null; }")


def _drag_mask_to(page, third: str) -> None:
    mask = page.locator("#syn-canvas .tc-mask").bounding_box()
    target = page.locator(f'#syn-canvas .tc-third[data-third="{third}"]').bounding_box()
    page.mouse.move(mask["x"] + mask["width"] / 2, mask["y"] + mask["height"] / 2)
    page.mouse.down()
    tx, ty = target["x"] + target["width"] / 2, target["y"] + target["height"] / 2
    page.mouse.move(tx, ty, steps=12)
    page.mouse.up()


def _wait(cond, timeout: float = 60.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return False


def _set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_drag_nodule_between_poles(page):
    page.locator('#syn-location input[value="upper pole"]').check()
    assert _wait(lambda: page.locator("#syn-canvas .tc-location").inner_text() == "upper pole")
    before = _condition_src(page)
    page.screenshot(path=str(SHOTS / "synthesize-before-drag.png"), full_page=True)
    _drag_mask_to(page, "inferior")
    assert _wait(lambda: _location(page) == "inferior"), f"Location chip is {_location(page)!r}"
    assert _wait(lambda: _condition_src(page) != before), "the condition image did not change"
    assert page.locator("#syn-canvas .tc-location").inner_text() == "inferior"
    # the FG text follows the chip
    assert _wait(lambda: "inferior pole" in page.locator("#syn-text-fg textarea").input_value())
    _drag_mask_to(page, "upper pole")
    assert _wait(lambda: _location(page) == "upper pole")
    page.screenshot(path=str(SHOTS / "synthesize-after-drag.png"), full_page=True)


def test_generate_fills_gallery(page):
    page.locator("#syn-preset-papillary").click()
    _set_number(page, "syn-steps", 4)
    _set_number(page, "syn-batch", 2)
    page.locator("#syn-generate").click()
    assert _wait(lambda: page.locator("#syn-results img").count() >= 2, 120), "the gallery did not fill"
    assert _wait(lambda: "2/2 done" in page.locator("#syn-status").inner_text(), 60)
    page.screenshot(path=str(SHOTS / "synthesize-results.png"), full_page=True)


def test_preview_then_first_image_before_the_batch_ends(page):
    """The live preview shows before any final image, and image 1 shows while the rest still run."""
    page.locator("#syn-preset-papillary").click()
    _set_number(page, "syn-steps", 30)
    _set_number(page, "syn-batch", 3)
    page.locator("#syn-generate").click()
    # the run's first update clears the previous run's gallery and preview
    assert _wait(lambda: "Generating 3 image(s) at 30 steps" in page.locator("#syn-status").inner_text(), 120)
    assert _wait(lambda: page.locator("#syn-preview img").count() >= 1, 120), "no live preview appeared"
    assert page.locator("#syn-results img").count() == 0, "a final image came before the first preview"
    assert _wait(lambda: page.locator("#syn-results img").count() >= 1, 120), "image 1 never appeared"
    status = page.locator("#syn-status").inner_text()
    assert "3/3 done" not in status and page.locator("#syn-results img").count() < 3, status
    assert _wait(lambda: "3/3 done" in page.locator("#syn-status").inner_text(), 180)


def test_stop_mid_run(page):
    _set_number(page, "syn-steps", 60)
    _set_number(page, "syn-batch", 4)
    page.locator("#syn-generate").click()
    assert _wait(lambda: "Generating 4 image(s) at 60 steps" in page.locator("#syn-status").inner_text(), 120)
    time.sleep(1.0)
    page.locator("#syn-stop").click()
    # the run ends long before 4 x 60 steps would, with fewer than 4 images
    assert _wait(lambda: "Stopping" in page.locator("#syn-status").inner_text()
                 or "Stopped" in page.locator("#syn-status").inner_text(), 30)
    time.sleep(2.0)
    assert page.locator("#syn-results img").count() < 4
    page.screenshot(path=str(SHOTS / "synthesize-stopped.png"), full_page=True)
    # the page is still usable: a short run afterwards completes
    _set_number(page, "syn-steps", 2)
    _set_number(page, "syn-batch", 1)
    page.locator("#syn-generate").click()
    assert _wait(lambda: "1/1 done" in page.locator("#syn-status").inner_text(), 120)


@pytest.mark.parametrize("tab", ["Reference", "Teach"])
def test_screenshot_pages(page, tab: str):
    page.get_by_role("tab", name=tab).click()
    anchor = "#ref-source-file" if tab == "Reference" else "#teach-row"
    page.wait_for_selector(anchor)
    page.screenshot(path=str(SHOTS / f"{tab.lower()}.png"), full_page=True)
    page.get_by_role("tab", name="Synthesize").click()

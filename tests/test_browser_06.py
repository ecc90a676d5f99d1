"""Notebook 06 in a real JupyterLab, driven by headless Chromium: every cell runs, the explorer's widgets
render (image chooser, threshold slider, upload box, the map picture), moving the slider updates the live
rates, and the browser console shows no error. Skipped, with the reason, without Chromium + Playwright
(`bash scripts/browser_deps.sh`); the tooling is scripts/notebook_browser.py, as in tests/test_browser.py."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import notebook_browser as nbk  # noqa: E402
from adlib.notebooks import notebooks_dir  # noqa: E402

NOTEBOOK = "06_inspect_your_images"
RATES = "normal validation images above it"


def _move_the_slider(page):
    """Drag the threshold slider to its lowest position with the keyboard; the rates line must follow."""
    panel = nbk._PANEL
    rates = page.locator(f"{panel} .widget-html", has_text=RATES).first
    before = rates.inner_text()
    handle = page.locator(f"{panel} .widget-slider .noUi-handle").first
    handle.click()
    page.keyboard.press("Home")
    after = before
    for _ in range(40):
        page.wait_for_timeout(250)
        after = rates.inner_text()
        if after != before:
            break
    pictures = page.evaluate(f"""() => [...document.querySelectorAll('{panel} .widget-image')]
        .map(i => i.naturalWidth)""")
    return {"before": before, "after": after, "pictures": pictures,
            "uploads": page.locator(f"{panel} .widget-upload").count()}


@pytest.fixture(scope="module")
def browser_result(tmp_path_factory):
    reason = nbk.browser_missing()
    if reason:
        pytest.skip(reason)
    shot = tmp_path_factory.mktemp("browser") / f"{NOTEBOOK}.png"
    with nbk.JupyterLab([notebooks_dir() / f"{NOTEBOOK}.ipynb"]) as lab:
        result = nbk.run_in_browser(lab, f"{NOTEBOOK}.ipynb", screenshot=shot, timeout=600,
                                    scroll_to="3. Explorer", interact=_move_the_slider)
        result["lab_log"] = lab.log_tail()
    return result


def test_every_cell_runs_without_error(browser_result):
    prompts = browser_result["prompts"]
    assert prompts and all(p.startswith("[") and p[1:-2].isdigit() for p in prompts), (prompts, browser_result["lab_log"])
    assert browser_result["errors"] == []


def test_explorer_widgets_render(browser_result):
    r = browser_result["interaction"]
    assert browser_result["widgets"] >= 2  # the image chooser and the threshold slider
    assert r["uploads"] == 1
    assert r["pictures"] and r["pictures"][0] > 0  # the chosen image's map, loaded


def test_slider_updates_the_rates(browser_result):
    r = browser_result["interaction"]
    assert RATES in r["before"] and r["after"] != r["before"], r


def test_console_has_no_errors(browser_result):
    assert browser_result["console"] == []

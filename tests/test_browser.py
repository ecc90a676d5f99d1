"""Notebook 03 in a real JupyterLab, driven by headless Chromium (Debian's `chromium` + Python Playwright):
every cell runs, the widgets and plotly figures render, and the browser console shows no error.

Needs `bash scripts/browser_deps.sh` (apt-get chromium, pip playwright); skipped with the reason otherwise.
The screenshots in docs/ are made the same way: `.venv/bin/python scripts/notebook_browser.py screenshots`.
The browser tooling lives in scripts/, outside the package users import.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import notebook_browser as nbk  # noqa: E402
from adlib.notebooks import notebooks_dir  # noqa: E402

NOTEBOOK = "03_visualize_latents"


def _choose_another_image(page):
    """Pick the first image in the explorer's dropdown: its callback must redraw the figure below."""
    panel = nbk._PANEL
    titles = f"{panel} .js-plotly-plot .gtitle"
    before = page.locator(titles).all_text_contents()
    select = page.locator(f"{panel} .widget-dropdown select").first
    option = select.locator("option").first.inner_text().replace("\xa0", " ")
    select.select_option(index=0)
    for _ in range(60):
        page.wait_for_timeout(500)
        after = page.locator(titles).all_text_contents()
        if after != before:
            break
    return {"option": option, "before": before, "after": after}


@pytest.fixture(scope="module")
def browser_result(tmp_path_factory):
    reason = nbk.browser_missing()
    if reason:
        pytest.skip(reason)
    shot = tmp_path_factory.mktemp("browser") / f"{NOTEBOOK}.png"
    with nbk.JupyterLab([notebooks_dir() / f"{NOTEBOOK}.ipynb"]) as lab:
        result = nbk.run_in_browser(lab, f"{NOTEBOOK}.ipynb", screenshot=shot, timeout=600,
                                    interact=_choose_another_image)
        result["lab_log"] = lab.log_tail()
    return result


def test_every_cell_runs_without_error(browser_result):
    prompts = browser_result["prompts"]
    assert prompts and all(p.startswith("[") and p[1:-2].isdigit() for p in prompts), (prompts, browser_result["lab_log"])
    assert browser_result["errors"] == []


def test_widgets_and_plotly_render(browser_result):
    assert browser_result["widgets"] >= 2  # the explorer's image dropdown, step slider, score dropdown
    assert browser_result["plotly"] >= 1


def test_explorer_callback_redraws_the_figure(browser_result):
    r = browser_result["interaction"]
    image = r["option"].split(" (")[0]  # "good/000.png (normal)" -> "good/000.png"
    assert not any(image in t for t in r["before"]) and any(t.startswith(image) for t in r["after"]), (r["before"][-3:], r["after"][-3:])


def test_console_has_no_errors(browser_result):
    assert browser_result["console"] == []


def test_screenshot_saved(browser_result):
    from PIL import Image
    with Image.open(browser_result["screenshot"]) as im:
        assert im.size == (1400, 1000)

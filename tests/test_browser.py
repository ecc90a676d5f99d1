"""The notebooks in a real JupyterLab, driven by headless Chromium (Debian's `chromium` + Python Playwright).

One JupyterLab server for the whole sequence (adlib.teach.notebooks.SEQUENCE, committed = smoke parameters); for each
notebook: every cell runs without error, every plotly figure draws, every widget renders (an explorer's
sliders / dropdowns where the notebook builds one), and the browser console shows no error. Plus two
interactions: 03's explorer dropdown redraws its figure; 06's threshold slider updates the live rates.

Needs `bash scripts/browser_deps.sh` (apt-get chromium, pip playwright); skipped with the reason otherwise.
The screenshots in docs/ are made the same way: `.venv/bin/python scripts/notebook_browser.py screenshots`.
The browser tooling lives in scripts/, outside the package users import.
"""
import json
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import notebook_browser as nbb  # noqa: E402
from adlib.teach.notebooks import SEQUENCE, notebooks_dir

RATES = "normal validation images above it"  # 06's live rates line
NO_PLOTLY = {"06_inspect_your_images"}  # its explorer shows score maps as images


def _choose_another_image(page):
    """03: pick the first image in the explorer's dropdown; its callback must redraw the figure below."""
    panel = nbb._PANEL
    titles = f"{panel} .js-plotly-plot .gtitle"
    before = page.locator(titles).all_text_contents()
    # the latent explorer's image chooser: its options read "good/000.png (normal)"
    select = page.locator(f"{panel} .widget-dropdown select").filter(
        has=page.locator("option", has_text=re.compile(r"\((normal|anomalous)\)$"))).first
    option = select.locator("option").first.inner_text().replace("\xa0", " ")
    select.select_option(index=0)
    after = before
    for _ in range(60):
        page.wait_for_timeout(500)
        after = page.locator(titles).all_text_contents()
        if after != before:
            break
    return {"option": option, "before": before, "after": after}


def _move_the_slider(page):
    """06: move the threshold slider to its lowest position with the keyboard; the rates line must follow."""
    panel = nbb._PANEL
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
    pictures = page.evaluate(f"() => [...document.querySelectorAll('{panel} .widget-image')].map(i => i.naturalWidth)")
    return {"before": before, "after": after, "pictures": pictures,
            "uploads": page.locator(f"{panel} .widget-upload").count()}


INTERACT = {"03_visualize_latents": _choose_another_image, "06_inspect_your_images": _move_the_slider}


def _builds_an_explorer(name) -> bool:
    nb = json.loads((notebooks_dir() / f"{name}.ipynb").read_text())
    return any("Explorer(" in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


@pytest.fixture(scope="module")
def lab():
    reason = nbb.browser_missing()
    if reason:
        pytest.skip(reason)
    times = {}
    with nbb.JupyterLab([notebooks_dir() / f"{name}.ipynb" for name in SEQUENCE]) as server:
        server.results, server.times = {}, times
        yield server
    if times:
        print("\nbrowser test: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
              + f"; total {sum(times.values()):.0f} s")


@pytest.fixture
def result(lab, request, tmp_path_factory):
    """Run the notebook once (its first test), keep the result for the others."""
    name = request.param
    if name not in lab.results:
        shot = tmp_path_factory.mktemp("browser") / f"{name}.png"
        t0 = time.time()
        try:
            r = nbb.run_in_browser(lab, f"{name}.ipynb", screenshot=shot, timeout=600,
                                   scroll_to=nbb.SCREENSHOT_AT.get(name), interact=INTERACT.get(name))
        finally:
            lab.times[name] = time.time() - t0
            lab.shutdown_kernels()
        r["lab_log"] = lab.log_tail()
        lab.results[name] = r
    return lab.results[name]


each = pytest.mark.parametrize("result", SEQUENCE, indirect=True)


@each
def test_every_cell_runs_without_error(result):
    prompts = result["prompts"]
    assert prompts and all(p.startswith("[") and p[1:-2].isdigit() for p in prompts), (prompts, result["lab_log"])
    assert result["errors"] == []


@each
def test_figures_and_widgets_render(result, request):
    name = request.node.callspec.params["result"]
    assert result["plotly_drawn"] == result["plotly_outputs"], result
    assert result["plotly_outputs"] >= (0 if name in NO_PLOTLY else 1), result
    assert result["widget_failures"] == []
    if _builds_an_explorer(name):
        assert result["widgets"] >= 1, result  # its sliders / dropdowns


@each
def test_console_has_no_errors(result):
    assert result["console"] == []


@each
def test_screenshot_saved(result):
    from PIL import Image
    with Image.open(result["screenshot"]) as im:
        assert im.size == (1400, 1000)


@pytest.mark.parametrize("result", ["03_visualize_latents"], indirect=True)
def test_03_explorer_callback_redraws_the_figure(result):
    r = result["interaction"]
    image = r["option"].split(" (")[0]  # "good/000.png (normal)" -> "good/000.png"
    assert not any(image in t for t in r["before"]) and any(t.startswith(image) for t in r["after"]), \
        (r["before"][-3:], r["after"][-3:])


@pytest.mark.parametrize("result", ["06_inspect_your_images"], indirect=True)
def test_06_slider_updates_the_rates(result):
    r = result["interaction"]
    assert result["widgets"] >= 2  # the image chooser and the threshold slider
    assert r["uploads"] == 1
    assert r["pictures"] and r["pictures"][0] > 0  # the chosen image's map, loaded
    assert RATES in r["before"] and r["after"] != r["before"], r

"""Executed notebooks a student can trust (adlib/notebooks/html_export.py): progress bars saved as they ended,
and HTML exports that open offline with widgets, plotly figures and math rendered.

A tiny notebook (a slider, tqdm bars, a plotly figure, an explorer-style Output widget holding a figure, a
formula) is executed once with papermill. The browser check opens its HTML from file:// in headless Chromium
with every other request blocked. It needs Chromium + Playwright (`bash scripts/browser_deps.sh`) and the
inlined JavaScript (`bash scripts/widget_js.sh`, run by scripts/setup.sh, so CI has it); without them it is
skipped and the reason says which command is missing.
"""
import re
import sys
from pathlib import Path

import nbformat
import pytest

from adlib.teach.notebooks import html_export as hx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import notebook_browser as nbb  # noqa: E402

STALE = re.compile(r"(?<![\d.])0%")  # a bar's first line ("train:   0%|"), not "100%"
CELLS = [
    ("markdown", "# Tiny\nA formula: $\\bar\\alpha_t = \\prod_{s \\le t} (1 - \\beta_s)$."),
    ("code", "import sys\nimport ipywidgets as w\nfrom tqdm.auto import tqdm\nfrom tqdm.std import tqdm as text_tqdm\n"
             "import plotly.graph_objects as go\nfrom adlib.teach.viz.explorers import display_data"),
    ("code", "w.IntSlider(value=3, min=0, max=10, description='S')"),
    ("code", "for _ in tqdm(range(40), desc='kept'):\n    pass"),
    ("code", "for _ in tqdm(range(40), desc='gone', leave=False):\n    pass\nprint('after the vanished bar')"),
    ("code", "for _ in text_tqdm(range(5), desc='text', file=sys.stderr, mininterval=0):\n    pass"),
    ("code", "go.Figure(go.Scatter(y=[1, 3, 2]), layout_title_text='in a cell')"),
    ("code", "out = w.Output()\n"
             "out.outputs = (display_data(go.Figure(go.Bar(y=[2, 1]), layout_title_text='in a widget')),)\n"
             "w.VBox([w.Dropdown(options=['a', 'b']), out])"),
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    import papermill
    d = tmp_path_factory.mktemp("html-export")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell(s) if kind == "markdown" else nbformat.v4.new_code_cell(s)
                for kind, s in CELLS]
    nbformat.write(nb, str(d / "tiny.ipynb"))
    papermill.execute_notebook(str(d / "tiny.ipynb"), str(d / "raw.ipynb"), progress_bar=False, cwd=str(d))
    return d


def _outputs(nb, cell):
    return nb.cells[cell].outputs


def test_papermill_saves_the_widget_state(executed):
    nb = nbformat.read(str(executed / "raw.ipynb"), as_version=4)
    state = nb.metadata.widgets[hx.WIDGET_STATE]["state"]
    names = {m["model_name"] for m in state.values()}
    assert {"IntSliderModel", "FloatProgressModel", "OutputModel"} <= names
    # without tidying, the saved fallback of a tqdm bar is the line it was displayed with: the stale 0 %
    assert "0%" in _outputs(nb, 3)[0].data["text/plain"]


def test_tidy_keeps_bars_as_they_ended(executed):
    nb = nbformat.read(str(executed / "raw.ipynb"), as_version=4)
    assert hx.tidy_outputs(nb) > 0
    kept = _outputs(nb, 3)
    assert len(kept) == 1 and kept[0].data["text/plain"].startswith("kept: 100%|██████████| 40/40 ")
    # the leave=False bar vanished while the cell ran: its output goes, the print stays
    assert [o.output_type for o in _outputs(nb, 4)] == ["stream"] and "after the vanished" in _outputs(nb, 4)[0].text
    (text,) = (o.text for o in _outputs(nb, 5))  # a text bar's \r updates: one stream, its last state
    assert "\r" not in text and text.startswith("text: 100%|██████████| 5/5 ") and " 0%" not in text
    assert hx.tidy_outputs(nb) == 0  # idempotent
    assert kept[0].data["text/plain"].startswith("kept: 100%")


def test_tidy_ipynb_rewrites_the_file(executed, tmp_path):
    p = tmp_path / "t.ipynb"
    p.write_text((executed / "raw.ipynb").read_text())
    assert hx.tidy_ipynb(p) > 0 and hx.tidy_ipynb(p) == 0
    nb = nbformat.read(str(p), as_version=4)
    plain = [o.get("data", {}).get("text/plain", "") for c in nb.cells for o in c.get("outputs", [])]
    assert not any(STALE.search(t) for t in plain) and any("kept: 100%" in t for t in plain)


def test_export_without_the_js_still_writes_html_and_says_what_to_run(executed, tmp_path, monkeypatch):
    monkeypatch.setenv(hx.ASSETS_ENV, str(tmp_path / "nothing-here"))
    assert hx.assets_missing() and "scripts/widget_js.sh" in hx.assets_missing()
    lines = []
    html = hx.export_html(executed / "raw.ipynb", tmp_path / "cdn.html", log=lines.append)
    assert len(lines) == 1 and "network" in lines[0] and hx.FETCH in lines[0]
    assert "unpkg.com" in html.read_text()  # the stock template: widgets from a CDN


def test_export_inlines_everything(executed, tmp_path):
    reason = hx.assets_missing()
    if reason:
        pytest.skip(f"offline widget JS not fetched (scripts/setup.sh does it): {reason}")
    lines = []
    html = hx.export_html(executed / "raw.ipynb", tmp_path / "offline.html", log=lines.append).read_text()
    assert lines == []
    for cdn in ("unpkg.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net/npm/@jupyter", "require.min.js"):
        assert f'src="https://{cdn}' not in html and f"'https://{cdn}" not in html, cdn
    assert '<script src="http' not in html and "Automatic publicPath is not supported" not in html
    assert "data:font/woff2;base64," in html  # FontAwesome, for the widgets' icons


@pytest.fixture(scope="module")
def offline_page(executed, tmp_path_factory):
    reason = nbb.browser_missing() or hx.assets_missing()
    if reason:
        pytest.skip(f"offline HTML check needs Chromium, Playwright and the widget JS: {reason}")
    nb = nbformat.read(str(executed / "raw.ipynb"), as_version=4)
    hx.tidy_outputs(nb)
    nbformat.write(nb, str(executed / "tidy.ipynb"))
    html = hx.export_html(executed / "tidy.ipynb", executed / "tidy.html", log=lambda m: None)
    return nbb.open_html(html)


def test_offline_html_makes_no_request(offline_page):
    assert offline_page["blocked"] == []


def test_offline_html_has_no_console_error(offline_page):
    assert offline_page["console"] == []


def test_offline_html_renders_widgets_figures_and_math(offline_page):
    r = offline_page
    assert r["sliders"] == 1 and r["progress"] == 1, r  # the slider; the kept bar only
    assert r["plotly"] >= 2, r  # the cell's figure and the one inside the Output widget
    assert r["math"] >= 1 and r["raw_math"] == 0, r


def test_offline_html_shows_no_stale_progress(offline_page):
    text = offline_page["text"].replace("\u2007", " ")
    assert "kept: 100%" in text and "40/40" in text
    assert not STALE.search(text) and "gone:" not in text

"""Executed notebooks a student can trust: progress bars that show how they ended, and HTML exports that
open offline with their widgets, figures and math.

- `tidy_outputs(nb)`: a tqdm widget's text/plain fallback is the line it was displayed with ("train: 0%");
  it becomes the bar's final line from the saved widget state. A bar closed with `leave=False` vanished
  in the live notebook, so its output goes (its saved text would be stale). Stream text keeps what a
  terminal shows after carriage returns (a text bar's last state).
- `export_html(ipynb, html)`: nbconvert's lab template, with plotly.js, the ipywidgets HTML manager
  (renders the saved widget state, FontAwesome fonts as data: URLs) and MathJax inlined instead of
  loaded from CDNs. The JavaScript is fetched once at set-up (`bash scripts/widget_js.sh`, pinned, into
  .venv/share/adlib-widgets); without it the HTML is still written, and one line says what to run.
"""
import base64
import html as _html
import os
import re
import sys
from pathlib import Path

from adlib.files import atomic_write_text

ASSETS_ENV = "ADLIB_WIDGET_JS"
FETCH = "bash scripts/widget_js.sh"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PLOTLY = "application/vnd.plotly.v1+json"

# webpack's automatic publicPath throws for an inline <script> (it has no src); the assets are data: URLs
_PUBLIC_PATH = re.compile(r'if\(!(\w+)\)throw new Error\("Automatic publicPath is not supported in this browser"\)')
_ASSET = re.compile(r'\b\w+\.p\+"([0-9a-f]{20}\.(?:woff2|woff|ttf|eot|svg))"')
_MATHJAX_CONFIG = """window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']],
  displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'}, options: {ignoreHtmlClass: 'tex2jax_ignore|jp-RenderedText'}};"""
# ipywidgets' typeset() (descriptions with $...$) speaks MathJax 2: MathJax.Hub.Queue(["Typeset", Hub, el])
_MATHJAX_SHIM = """window.MathJax.Hub = window.MathJax.Hub || {Config: function () {}, Queue: function (job) {
  var el = job && job[2], ready = (MathJax.startup && MathJax.startup.promise) || Promise.resolve();
  ready.then(function () { return MathJax.typesetPromise(el ? [el] : undefined); })
       .catch(function (e) { console.warn('MathJax', e); });
}};"""
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}
{%- if "widgets" in nb.metadata %}<script>{{ resources.adlib_widget_js }}</script>{% endif -%}
{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}
{%- if resources.adlib_mathjax_js -%}
<script>{{ resources.adlib_mathjax_config }}</script>
<script>{{ resources.adlib_mathjax_js }}</script>
<script>{{ resources.adlib_mathjax_shim }}</script>
{%- endif -%}
{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}{{ resources.adlib_head_html }}{%- endblock html_head_css -%}
"""


def assets_dir() -> Path:
    return Path(os.environ.get(ASSETS_ENV) or Path(sys.prefix) / "share" / "adlib-widgets")


def _script_safe(js: str) -> str:
    """JavaScript that can sit inside <script>...</script>."""
    return js.replace("</script", "<\\/script").replace("<!--", "<\\!--")


def widget_js():
    """The HTML manager's standalone embed.js (no require.js), its fonts inlined; None when not fetched."""
    dist = assets_dir() / "html-manager" / "dist"
    try:
        js = (dist / "embed.js").read_text(encoding="utf-8")
    except OSError:
        return None
    js, n = _PUBLIC_PATH.subn(r'if(!\1)\1="./"', js)
    if n != 1:
        raise RuntimeError(f"{dist / 'embed.js'}: webpack publicPath code not found; update html_export.py")

    def data_url(m):  # browsers take the woff2 of each @font-face; the older formats are never requested
        name = m.group(1)
        if not name.endswith(".woff2"):
            return '"data:,"'
        return '"data:font/woff2;base64,' + base64.b64encode((dist / name).read_bytes()).decode() + '"'
    return _script_safe(_ASSET.sub(data_url, js))


def mathjax_js():
    try:
        return _script_safe((assets_dir() / "mathjax" / "es5" / "tex-svg-full.js").read_text(encoding="utf-8"))
    except OSError:
        return None


def assets_missing():
    """None when the offline JavaScript is there, else the reason (for a log line or pytest.skip)."""
    missing = [p for p in ("html-manager/dist/embed.js", "mathjax/es5/tex-svg-full.js") if not (assets_dir() / p).is_file()]
    return f"{', '.join(missing)} not in {assets_dir()}: run `{FETCH}`" if missing else None


def _plotly_html(fig, first: bool) -> str:
    import plotly.io as pio
    return pio.to_html(fig, include_plotlyjs=bool(first), full_html=False, validate=False)


def _html_with_plotly(nb):
    """Give plotly outputs (application/vnd.plotly.v1+json only, the default renderer) a text/html twin so
    the exported HTML shows them; plotly.js is inlined once, in the first figure."""
    first = True
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY in data and "text/html" not in data:
                data["text/html"] = _plotly_html(data[PLOTLY], first)
                first = False
    return nb


def _widget_states(nb) -> dict:
    return ((nb.metadata.get("widgets") or {}).get(WIDGET_STATE) or {}).get("state") or {}


def _widget_plotly(nb) -> int:
    """Plotly figures inside Output widgets (the explorers) get a text/html twin too (the HTML manager
    renders trusted HTML and runs its script); returns how many, so plotly.js goes in the head if no
    cell figure carries it."""
    n = 0
    for model in _widget_states(nb).values():
        for out in model.get("state", {}).get("outputs") or []:
            data = out.get("data", {})
            if PLOTLY in data and "text/html" not in data:
                data["text/html"] = _plotly_html(data[PLOTLY], False)
                n += 1
    return n


def _model(states, ref):
    ref = ref or ""
    return states.get(ref[len("IPY_MODEL_"):] if ref.startswith("IPY_MODEL_") else ref) or {}


def _tqdm_bar(states, model_id):
    """(final text, hidden) of a tqdm.notebook bar (HBox of HTML, progress, HTML), or None."""
    box = states.get(model_id) or {}
    kids = box.get("state", {}).get("children") or []
    if box.get("model_name") != "HBoxModel" or len(kids) != 3:
        return None
    left, bar, right = (_model(states, k) for k in kids)
    if [m.get("model_name") for m in (left, bar, right)] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    from tqdm.std import Bar
    s = bar["state"]
    lo, hi, value = s.get("min", 0), s.get("max", 1), s.get("value", 0)
    frac = min(1.0, max(0.0, (value - lo) / (hi - lo))) if hi > lo else 1.0
    l_text, r_text = (_html.unescape(m["state"].get("value", "")).replace("\u2007", " ") for m in (left, right))
    text = f"{l_text}|{Bar(frac, 10, charset=Bar.UTF):10}|{r_text}"
    hidden = _model(states, box["state"].get("layout")).get("state", {}).get("visibility") == "hidden"
    return text, hidden


def _terminal_text(text: str) -> str:
    """What a terminal shows: on each line, the last text written after a carriage return."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(next((p for p in reversed(line.split("\r")) if p), "") for line in lines)


def tidy_outputs(nb) -> int:
    """Progress bars as they ended (see the module docstring), in place: a tqdm widget's text/plain becomes
    its final line, a closed bar's output goes, consecutive stream outputs merge and keep their text after
    carriage returns. Returns how many outputs changed or went (0 when already tidy)."""
    states, changed = _widget_states(nb), 0
    for cell in nb.cells:
        if "outputs" not in cell:
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data", {})
            bar = _tqdm_bar(states, data[WIDGET_VIEW].get("model_id")) if WIDGET_VIEW in data else None
            if bar is not None:
                text, hidden = bar
                if hidden or data.get("text/plain") != text:
                    changed += 1
                if hidden:
                    continue
                data["text/plain"] = text
            elif out.get("output_type") == "stream" and kept and kept[-1].get("output_type") == "stream" \
                    and kept[-1].get("name") == out.get("name"):
                kept[-1]["text"] = "".join(kept[-1]["text"]) + "".join(out["text"])
                changed += 1
                continue
            kept.append(out)
        for out in kept:
            if out.get("output_type") == "stream" and "\r" in "".join(out["text"]):
                out["text"] = _terminal_text("".join(out["text"]))
                changed += 1
        cell.outputs = kept
    return changed


def tidy_ipynb(ipynb) -> int:
    """tidy_outputs on a saved notebook file, rewritten only when something changed."""
    import nbformat
    nb = nbformat.read(str(ipynb), as_version=4)
    n = tidy_outputs(nb)
    if n:
        atomic_write_text(ipynb, nbformat.writes(nb))
    return n


def _has_math(nb) -> bool:
    return any(c.cell_type == "markdown" and re.search(r"\$|\\\(|\\\[|\\begin\{", "".join(c.source)) for c in nb.cells)


def export_html(ipynb, html, log=print):
    """Write `ipynb` as self-contained HTML (see the module docstring); returns the HTML path."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    nb = _html_with_plotly(nbformat.read(str(ipynb), as_version=4))
    in_widgets = _widget_plotly(nb)
    has_cell_plotly = any(PLOTLY in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    widgets_js = widget_js() if "widgets" in nb.metadata else ""
    math_js = mathjax_js() if _has_math(nb) else ""
    if widgets_js is None or math_js is None:
        log(f"note: {Path(html).name} loads its widgets/math from a CDN (needs a network connection): "
            f"run `{FETCH}` once to inline them")
        body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    else:
        head = ""
        if in_widgets and not has_cell_plotly:  # plotly.js for the figures inside widgets
            import plotly.offline
            head = f"<script>{_script_safe(plotly.offline.get_plotlyjs())}</script>"
        exporter = HTMLExporter(template_name="lab", template_file="adlib_offline.html.j2",
                                extra_loaders=[jinja2.DictLoader({"adlib_offline.html.j2": _TEMPLATE})])
        body, _ = exporter.from_notebook_node(nb, resources={
            "adlib_widget_js": widgets_js, "adlib_mathjax_js": math_js, "adlib_mathjax_config": _MATHJAX_CONFIG,
            "adlib_mathjax_shim": _MATHJAX_SHIM,
            "adlib_head_html": head})
    atomic_write_text(html, body)
    return Path(html)

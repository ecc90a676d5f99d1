"""JupyterLab in headless Chromium (Debian's `chromium` + Python Playwright): run a notebook as a user
would, report what rendered, and save the screenshots in docs/.

    .venv/bin/python scripts/notebook_browser.py screenshots [--out docs] [--only 01,03]

Test tooling, not part of the package users import: tests/test_browser.py loads it from here.
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adlib.errors import AdlibError
from adlib.teach.notebooks.profiles import list_notebooks, select
from adlib.teach.notebooks.runner import _first_line

CHROMIUM = "/usr/bin/chromium"
# default: the first explorer or plot
SCREENSHOT_AT = {"04_sweep_steps": "3. The paper's ablation", "06_inspect_your_images": "3. Explorer"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_missing():
    """None when headless Chromium and Playwright are usable, else the reason (for pytest.skip)."""
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} not found: install it with `bash scripts/browser_deps.sh` (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "python package playwright missing: `bash scripts/browser_deps.sh` (pip install playwright)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_expanded(src, dst):
    """Copy a notebook with its collapsed code cells (the answers) expanded: a collapsed cell shows no
    execution count, so the browser could not see that it ran."""
    nb = json.loads(Path(src).read_text())
    for cell in nb["cells"]:
        cell.get("metadata", {}).get("jupyter", {}).pop("source_hidden", None)
    Path(dst).write_text(json.dumps(nb, indent=1))


class JupyterLab:
    """`jupyter lab` on 127.0.0.1 (free port, known token) over a temp copy of the notebooks."""

    def __init__(self, notebooks, root=None, timeout: float = 90):
        self.tmp = Path(tempfile.mkdtemp(prefix="adlib-lab-"))
        self.root = Path(root) if root else self.tmp / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        for nb in notebooks:
            _copy_expanded(nb, self.root / Path(nb).name)
        self.port, self.token, self.timeout = _free_port(), hashlib.sha1(os.urandom(16)).hexdigest()[:24], timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def _settings(self) -> Path:
        s = self.tmp / "settings"
        for plugin, values in {
            # every cell in the DOM; no "Select Kernel" dialog
            "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
            "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        }.items():
            f = s / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        return s

    def __enter__(self):
        import urllib.request
        env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(self._settings()),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.tmp / "workspaces"), JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"),
                   PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=False"]
        self.log = open(self.tmp / "lab.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AdlibError(f"jupyter lab exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise AdlibError(f"jupyter lab did not answer within {self.timeout:.0f} s: {self.log_tail()}")

    def shutdown_kernels(self):
        """Stop every kernel the server runs (between notebooks of one browser test)."""
        import urllib.request
        with urllib.request.urlopen(f"{self.url}/api/kernels?token={self.token}", timeout=10) as r:
            kernels = json.load(r)
        for k in kernels:
            req = urllib.request.Request(f"{self.url}/api/kernels/{k['id']}?token={self.token}", method="DELETE")
            urllib.request.urlopen(req, timeout=30).close()
        return len(kernels)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.tmp / "lab.log").read_text()[-n:]
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False


_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in the visible tab
_PROMPTS_JS = f"() => [...document.querySelectorAll('{_PANEL} .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim())"
_ERRORS_JS = f"""() => [...document.querySelectorAll('{_PANEL} .jp-OutputArea-output')]
    .map(e => e.innerText || '').filter(t => t.includes('Traceback') || /^\\S*Error\\b/m.test(t) && t.includes('----'))
    .map(t => t.slice(0, 400))"""
# every plotly output (jupyterlab-plotly's renderer) drew its figure; no widget output failed ("Error
# displaying widget", a missing model). A tqdm bar closed with leave=False is removed: no failure.
_RENDERED_JS = f"""() => {{
  const plots = [...document.querySelectorAll('{_PANEL} .jp-RenderedPlotly')];
  return {{plotly_outputs: plots.length, plotly_drawn: plots.filter(e => e.querySelector('.main-svg')).length,
          widget_failures: [...document.querySelectorAll('{_PANEL} .jp-OutputArea-output')].map(e => e.innerText || '')
            .filter(t => t.includes('Error displaying widget')).map(t => t.slice(0, 200))}};
}}"""
_SCROLL_JS = f"""() => {{
  const cells = [...document.querySelectorAll('{_PANEL} .jp-Cell')];
  let i = cells.findIndex(c => c.querySelector('.widget-slider, .widget-dropdown') && c.querySelector('.js-plotly-plot'));
  if (i < 0) i = cells.findIndex(c => c.querySelector('.js-plotly-plot'));
  if (i < 0) return false;
  (cells[Math.max(0, i - 1)]).scrollIntoView({{block: 'start'}});
  return true;
}}"""


def _open_page(p, viewport, console):
    """(browser, page): headless Chromium with one page whose console errors and page errors go to `console`."""
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.on("console", lambda m: console.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    return browser, page


def run_in_browser(lab: JupyterLab, notebook: str, screenshot=None, timeout: float = 600,
                   viewport=(1400, 1000), scroll_to: str = None, interact=None) -> dict:
    """Open `notebook` in JupyterLab in headless Chromium, run all cells, wait, and report what rendered.

    The screenshot shows the first explorer (widgets + plot), else the first plot, or the cell whose
    text starts with `scroll_to`. interact(page) runs after the cells (its result: "interaction").
    Returns {prompts, plotly, widgets, errors (tracebacks in outputs), console (console errors and page
    errors), screenshot}."""
    from playwright.sync_api import sync_playwright
    console = []
    with sync_playwright() as p:
        browser, page = _open_page(p, viewport, console)
        try:
            # ?reset: a fresh workspace, not the tabs a previous page left open
            page.goto(f"{lab.url}/lab/tree/{notebook}?reset&token={lab.token}", wait_until="domcontentloaded")
            page.wait_for_selector(f"{_PANEL} .jp-Cell", timeout=120_000)
            dialog = page.locator(".jp-Dialog .jp-mod-accept")
            if dialog.count():  # a kernel chooser, should the setting above not apply
                dialog.first.click()
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            page.keyboard.press("Control+b")  # hide the file browser: more room for the notebook
            done = lambda x: x.startswith("[") and x[1:-2].isdigit()  # noqa: E731
            for _ in range(4):  # "idle" can show before the kernel connection takes requests: retry
                page.wait_for_timeout(3000)
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
                t0 = time.time()
                while time.time() - t0 < 30 and not any(x == "[*]:" or done(x) for x in page.evaluate(_PROMPTS_JS)):
                    time.sleep(0.5)
                if any(x == "[*]:" or done(x) for x in page.evaluate(_PROMPTS_JS)):
                    break
            started, deadline, prompts = time.time(), time.time() + timeout, []
            while time.time() < deadline:
                time.sleep(1.0)
                prompts = page.evaluate(_PROMPTS_JS)
                if prompts and all(done(x) for x in prompts):
                    break
                busy = any(x == "[*]:" for x in prompts)
                if not busy and (page.evaluate(_ERRORS_JS) or (time.time() - started > 60 and not any(map(done, prompts)))):
                    break  # stopped at an error, or nothing ever ran
            page.wait_for_timeout(2000)  # let plotly finish drawing
            result = {"prompts": prompts, "plotly": page.locator(f"{_PANEL} .js-plotly-plot").count(),
                      "widgets": page.locator(f"{_PANEL} .widget-slider, {_PANEL} .widget-dropdown").count(),
                      "errors": page.evaluate(_ERRORS_JS), "console": console, "screenshot": None,
                      **page.evaluate(_RENDERED_JS)}
            if interact is not None:
                result["interaction"] = interact(page)
            if screenshot:
                target = page.locator(f"{_PANEL} .jp-Cell", has_text=scroll_to) if scroll_to else None
                if target is not None and target.count():
                    target.first.evaluate("e => e.scrollIntoView({block: 'start'})")
                else:  # no such heading (any more): the first explorer or plot
                    page.evaluate(_SCROLL_JS)
                page.wait_for_timeout(1000)
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot))
                result["screenshot"] = str(screenshot)
            return result
        finally:
            browser.close()


def open_html(path, screenshot=None, viewport=(1400, 1000), settle_ms: int = 1500) -> dict:
    """Open an exported notebook HTML from file:// in headless Chromium with every other request blocked
    (the offline check of adlib/notebooks/html_export.py). Returns {blocked (URLs that tried to leave the
    file), console (console errors and page errors), widgets (rendered widget views), sliders, progress
    (rendered progress bars), plotly (drawn figures), math (typeset formulas), raw_math (markdown `$`
    left as text), text (the page's visible text), screenshot}."""
    from playwright.sync_api import sync_playwright
    console, blocked = [], []

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()
    with sync_playwright() as p:
        browser, page = _open_page(p, viewport, console)
        try:
            page.route("**/*", route)
            page.goto(Path(path).resolve().as_uri(), wait_until="load")
            page.wait_for_timeout(settle_ms)  # the HTML manager renders after `load`; MathJax typesets
            count = lambda sel: page.locator(sel).count()  # noqa: E731
            result = {"blocked": blocked, "console": console, "widgets": count(".widget-subarea > *"),
                      "sliders": count(".widget-slider"), "progress": count(".widget-hprogress, .widget-vprogress"),
                      "plotly": count(".js-plotly-plot .main-svg"), "math": count("mjx-container"),
                      "raw_math": page.evaluate("""() => [...document.querySelectorAll('.jp-MarkdownOutput')]
                          .filter(e => /\\$[^$\\s][^$]*\\$/.test(e.innerText)).length"""),
                      "text": page.inner_text("body"), "screenshot": None}
            if screenshot:
                page.screenshot(path=str(screenshot), full_page=False)
                result["screenshot"] = str(screenshot)
            return result
        finally:
            browser.close()


def screenshots(out="docs", only=None, timeout: float = 900, log=print) -> list:
    """Run each notebook (committed = smoke values) in JupyterLab and save docs/<notebook>.png."""
    reason = browser_missing()
    if reason:
        raise AdlibError(reason)
    paths = list_notebooks()
    names = select([p.stem for p in paths], only)
    done = []
    with JupyterLab(paths) as lab:
        for name in names:
            t0 = time.time()
            r = run_in_browser(lab, f"{name}.ipynb", Path(out) / f"{name}.png", timeout=timeout,
                               scroll_to=SCREENSHOT_AT.get(name))
            log(f"{name}: {len(r['prompts'])} code cells, {r['plotly']} plotly figures, {r['widgets']} widget "
                f"controls, {len(r['errors'])} errors, {len(r['console'])} console errors, "
                f"{time.time() - t0:.0f} s -> {r['screenshot']}")
            for e in r["errors"] + r["console"]:
                lines = [x.strip() for x in e.splitlines() if "Error" in x or "error" in x] or [_first_line(e)]
                log("   " + lines[0][:200])
            done.append(r)
            lab.shutdown_kernels()
    return done


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="scripts/notebook_browser.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("screenshots", help="run the notebooks in headless JupyterLab and save PNGs")
    s.add_argument("--out", default="docs")
    s.add_argument("--only")
    a = p.parse_args(argv)
    try:
        screenshots(a.out, a.only)
    except AdlibError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

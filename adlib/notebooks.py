"""The notebook sequence: helpers the notebooks call, the headless runner, and browser screenshots.

    adlib notebooks run [--profile smoke|cpu|full] [--data SPEC] [--out DIR] [--only 03] [--run-dir RUN]
    python -m adlib.notebooks screenshots [--out docs] [--only 01,03]

Notebooks live in `notebooks/NN_name.ipynb`, each with one cell tagged `parameters` whose committed values
are the `smoke` profile (what nbval and CI run on CPU). `notebooks/profiles/<profile>.yaml` holds papermill
parameters: `shared:` for every notebook (each gets only those it declares) and one section per notebook.
The runner executes the sequence in order, passes the run directory a notebook records (`record(...,
run_dir=...)`) to the notebooks after it (parameter RUN_DIR), writes executed .ipynb and .html and one
JSON of key numbers per notebook into --out, and prints a summary.

Where notebooks write: $ADLIB_NOTEBOOK_OUT (set by the runner to --out) or, when unset (nbval, an
interactive session), a per-user folder in the system temp dir: never the repository.
DATA = "mini" (or "mini:<texture>") generates the miniature MVTec-layout category there.
"""
import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path

from .errors import AdlibError

SEQUENCE = ("01_prior_density", "02_train_on_gpu", "03_visualize_latents", "04_sweep_steps")
PROFILES = ("smoke", "cpu", "full")
MINI = "mini"
OUT_ENV = "ADLIB_NOTEBOOK_OUT"
# The small run notebooks train when no RUN_DIR is given (02's committed parameters are the same values).
SMOKE_TRAIN = dict(image_size=128, model="mlp", model_kwargs={"hidden": 128, "depth": 2}, iters=800, batch_size=16)
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_AT = {"04_sweep_steps": "3. The paper's ablation"}  # default: the first explorer or plot
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# --------------------------------------------------------------------------- helpers the notebooks call

def notebooks_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "notebooks"
    if not path.is_dir():
        raise AdlibError(f"{path} not found: the notebooks ship with the source checkout (pip install -e .)")
    return path


def work_dir() -> Path:
    """$ADLIB_NOTEBOOK_OUT/work, or <temp>/adlib-notebooks-<uid> when the runner did not set it."""
    out = os.environ.get(OUT_ENV)
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    path = Path(out) / "work" if out else Path(tempfile.gettempdir()) / f"adlib-notebooks-{uid}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_data(spec, seed: int = 0):
    """`mini` / `mini:<texture>` -> the generated miniature's folder (made once in the work dir); other
    SPECs (elpv:mono, mvtec:PATH, a folder) unchanged; None stays None."""
    if spec is None:
        return None
    spec = str(spec)
    if spec != MINI and not spec.startswith(MINI + ":"):
        return spec
    from .data.mini import TEXTURES, make_mini_mvtec
    texture = spec.split(":", 1)[1] if ":" in spec else "weave"
    if texture not in TEXTURES:
        raise AdlibError(f"DATA {spec!r}: the miniature's textures are {', '.join(TEXTURES)} (e.g. mini:{TEXTURES[0]})")
    path = work_dir() / "data" / f"mini-{texture}-seed{seed}"
    if not (path / "README.txt").is_file():
        make_mini_mvtec(path, seed=seed, texture=texture, overwrite=True)
    return str(path)


def run_config(data, **params):
    """RunConfig from notebook parameters: None means 'RunConfig's default'; DATA is resolved."""
    from .config import RunConfig
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise AdlibError(f"unknown training settings {unknown}: RunConfig has {sorted(known)}")
    return RunConfig(data=resolve_data(data), **{k: v for k, v in params.items() if v is not None})


def set_threads(n):
    """torch threads (None: leave torch's default). One thread keeps the tiny smoke models fast on a busy
    2-core machine, where a 2-thread pool makes every small op wait."""
    import torch
    if n:
        torch.set_num_threads(int(n))
    return torch.get_num_threads()


def _source_hash() -> str:
    """Hash of adlib's sources (not the notebook helpers): a cached smoke run is reused only while it holds."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for p in sorted(root.rglob("*.py")):
        if p.name not in ("viz.py", "notebooks.py"):
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def _prune(folder: Path, pattern: str, keep: int):
    """Outside the runner (nbval, interactive), keep only the newest `keep` runs matching `pattern`."""
    if os.environ.get(OUT_ENV):
        return
    runs = sorted((p for p in folder.glob(pattern) if p.is_dir() and ".tmp-" not in p.name),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def new_run_dir(prefix: str = "02") -> Path:
    """A fresh run folder <work>/runs/<prefix>-<time> (in the temp work dir the 3 newest are kept)."""
    folder = work_dir() / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    _prune(folder, f"{prefix}-*", keep=2)
    path = folder / time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
    while path.exists():
        path = path.with_name(path.name + "x")
    return path


def smoke_run(data=MINI, progress: bool = True, **overrides):
    """The small run trained on `data` with SMOKE_TRAIN (+ overrides), cached in the work dir by config
    and adlib's source, so notebooks run alone (nbval) share one training."""
    from .run import Run, train_run
    cfg = run_config(data, **{**SMOKE_TRAIN, "checkpoint_every": SMOKE_TRAIN["iters"], **overrides})
    key = hashlib.sha256((json.dumps(asdict(cfg), sort_keys=True) + _source_hash()).encode()).hexdigest()[:16]
    path = work_dir() / "runs" / f"smoke-{key}"
    if (path / "calibration.json").is_file():
        return Run(path)
    _prune(path.parent, "smoke-*", keep=3)  # runs of older adlib sources
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    train_run(cfg, tmp, progress=progress)
    try:
        tmp.rename(path)
    except OSError:  # another process finished the same run first
        shutil.rmtree(tmp, ignore_errors=True)
    return Run(path)


def open_run(run_dir=None, data=None, weights: str = "ema"):
    """(Run, Dataset) for the analysis notebooks: RUN_DIR if given (DATA None -> the run's own data),
    otherwise the cached smoke run on DATA."""
    from .data import load_spec
    from .run import Run
    if run_dir:
        run = Run(run_dir, weights)
    else:
        print(f"RUN_DIR not given: using the small smoke run on {data} (trained once, then cached)")
        run = smoke_run(data or MINI)
        if weights != "ema":
            run = Run(run.path, weights)
    spec = resolve_data(data) or run.cfg.data
    if spec != run.cfg.data:
        print(f"note: {run.path} was trained on {run.cfg.data}; scoring {spec} with it")
    return run, load_spec(spec, run.cfg.split_seed)


def pick_device(device="auto") -> str:
    from .train import pick_device as pick
    return pick(device)


def on_device(model, device: str):
    """The eps-network evaluated on `device` but called with and returning CPU tensors, so adlib.bench and
    adlib.scoring (which read results with .numpy()) work unchanged with a model on a GPU."""
    import torch
    if device == "cpu":
        return model

    class OnDevice(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m.to(device).eval()
            self.config = getattr(m, "config", None)

        def forward(self, x, t):
            return self.m(x.to(device), t.to(device)).to(x.device)

    return OnDevice(model)


def records_dir() -> Path:
    out = os.environ.get(OUT_ENV)
    path = Path(out) if out else work_dir() / "records"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(v):
    import numpy as np
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def record(notebook: str, **numbers) -> dict:
    """Key numbers of a notebook -> <out>/<notebook>.json; the runner's summary and chaining read it
    (a `run_dir` entry is passed on as RUN_DIR to the notebooks after this one)."""
    numbers = _plain(numbers)
    path = records_dir() / f"{notebook}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(numbers, indent=2) + "\n")
    tmp.replace(path)
    return numbers


# --------------------------------------------------------------------------- the runner

def list_notebooks(nb_dir=None) -> list:
    nb_dir = Path(nb_dir) if nb_dir else notebooks_dir()
    return sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))


def declared_parameters(path) -> dict:
    """name -> default (as source text) of a notebook's `parameters` cell."""
    import papermill
    return {k: v["default"] for k, v in papermill.inspect_notebook(str(path)).items()}


def load_profile(name: str, nb_dir=None) -> dict:
    import yaml
    folder = (Path(nb_dir) if nb_dir else notebooks_dir()) / "profiles"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
        raise AdlibError(f"--profile {name}: no {path} (profiles: {have})")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise AdlibError(f"{path}: expected a mapping of `shared` and notebook names to parameters")
    return raw


def select(names: list, only) -> list:
    """--only 03 / 03,04 / 03_visualize_latents -> those notebooks, in sequence order."""
    if not only:
        return list(names)
    wanted = [w.strip() for w in str(only).split(",") if w.strip()]
    chosen = []
    for w in wanted:
        hits = [n for n in names if n == w or n.startswith(w + "_") or n.split("_", 1)[0] == w]
        if not hits:
            raise AdlibError(f"--only {w}: no such notebook; choose from {', '.join(n.split('_', 1)[0] for n in names)}")
        chosen += hits
    return [n for n in names if n in chosen]


def parameters_for(name: str, declared: dict, profile: dict, profile_name: str) -> dict:
    own = profile.get(name) or {}
    bad = sorted(set(own) - set(declared))
    if bad:
        raise AdlibError(f"profile {profile_name}: {name} has no parameter(s) {bad} (it declares {sorted(declared)})")
    shared = {k: v for k, v in (profile.get("shared") or {}).items() if k in declared}
    return {**shared, **own}


def _first_line(text) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _html_with_plotly(nb):
    """Give plotly outputs (application/vnd.plotly.v1+json only, the default renderer) a text/html twin so
    the exported HTML shows them; plotly.js is inlined once, in the first figure."""
    import plotly.io as pio
    first = True
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/vnd.plotly.v1+json" in data and "text/html" not in data:
                fig = data["application/vnd.plotly.v1+json"]
                data["text/html"] = pio.to_html(fig, include_plotlyjs=True if first else False, full_html=False,
                                                validate=False)
                first = False
    return nb


def export_html(ipynb, html):
    import nbformat
    from nbconvert import HTMLExporter
    nb = _html_with_plotly(nbformat.read(str(ipynb), as_version=4))
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    Path(html).write_text(body, encoding="utf-8")


@contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _summary_line(row) -> str:
    nums = row.get("numbers") or {}
    shown = []
    for k, v in nums.items():
        if k in ("run_dir", "data", "profile") or isinstance(v, (dict, list)):
            continue
        shown.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")
    return f"{row['notebook']:<22} {row['status']:<7} {row['minutes']:6.2f} min  " + " ".join(shown[:8])


def run_notebooks(profile: str = "smoke", data=None, out=None, only=None, run_dir=None, nb_dir=None,
                  kernel_name=None, log=print) -> list:
    """Execute the notebooks in order with papermill; returns the summary rows. On failure prints the
    summary so far and raises AdlibError naming the notebook and the cell (partial output is kept)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError
    paths = {p.stem: p for p in list_notebooks(nb_dir)}
    if not paths:
        raise AdlibError(f"no NN_name.ipynb notebooks in {nb_dir or notebooks_dir()}")
    names = select(list(paths), only)
    prof = load_profile(profile, nb_dir)
    stray = sorted(set(prof) - {"shared"} - set(paths))
    if stray:
        raise AdlibError(f"profile {profile}: sections {stray} match no notebook (have {', '.join(paths)})")
    out = Path(out or f"runs/notebooks-{profile}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "work").mkdir(exist_ok=True)
    carry = str(run_dir) if run_dir else None
    if carry is None:  # --only: take the run an earlier notebook of this profile recorded in --out
        for name in list(paths)[:list(paths).index(names[0])]:
            rec = out / f"{name}.json"
            if rec.is_file():
                r = json.loads(rec.read_text())
                if r.get("run_dir") and r.get("profile", profile) == profile and Path(r["run_dir"]).is_dir():
                    carry = r["run_dir"]
    rows = []
    log(f"running {len(names)} notebook(s) with profile {profile} into {out}")
    for k, name in enumerate(names, 1):
        declared = declared_parameters(paths[name])
        params = parameters_for(name, declared, prof, profile)
        if data is not None and "DATA" in declared:
            params["DATA"] = data
        if carry and "RUN_DIR" in declared:
            params["RUN_DIR"] = carry
        ipynb, html, rec = out / f"{name}.ipynb", out / f"{name}.html", out / f"{name}.json"
        if rec.is_file():
            rec.unlink()
        log(f"[{k}/{len(names)}] {name} " + " ".join(f"{p}={v!r}" for p, v in params.items()))
        t0, error = time.time(), None
        with _env(**{OUT_ENV: out}):
            try:
                papermill.execute_notebook(str(paths[name]), str(ipynb), parameters=params, progress_bar=False,
                                           kernel_name=kernel_name, cwd=str(out / "work"), log_output=False)
            except PapermillExecutionError as e:
                src = _first_line(e.source)
                error = (f"notebook {name} failed in cell {e.cell_index} (execution count {e.exec_count}: "
                         f"{src[:60]}): {e.ename}: {_first_line(e.evalue)[:200]}; partial output kept in {ipynb}")
            except Exception as e:  # kernel died, timeout, bad parameters
                error = f"notebook {name} failed: {type(e).__name__}: {_first_line(e)[:200]}; partial output in {ipynb}"
        minutes = (time.time() - t0) / 60
        if ipynb.is_file():
            try:
                export_html(ipynb, html)
            except Exception as e:  # the HTML is a convenience; the executed notebook is what counts
                log(f"  (no HTML for {name}: {type(e).__name__}: {_first_line(e)})")
        numbers = json.loads(rec.read_text()) if rec.is_file() else {}
        if numbers:
            numbers.setdefault("profile", profile)
            rec.write_text(json.dumps(numbers, indent=2) + "\n")
        row = {"notebook": name, "status": "failed" if error else "ok", "minutes": round(minutes, 2),
               "numbers": numbers, "ipynb": str(ipynb), "html": str(html)}
        rows.append(row)
        log("  " + _summary_line(row))
        if error:
            _write_summary(out, profile, rows, log)
            raise AdlibError(error)
        if numbers.get("run_dir"):
            carry = numbers["run_dir"]
    _write_summary(out, profile, rows, log)
    return rows


def _write_summary(out: Path, profile: str, rows: list, log):
    (out / "summary.json").write_text(json.dumps({"profile": profile, "notebooks": rows}, indent=2) + "\n")
    log(f"summary ({out / 'summary.json'}):")
    for row in rows:
        log("  " + _summary_line(row))


# --------------------------------------------------------------------------- JupyterLab in a headless browser

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


class JupyterLab:
    """`jupyter lab` on 127.0.0.1 (free port, known token) over a temp copy of the notebooks."""

    def __init__(self, notebooks, root=None, timeout: float = 90):
        self.tmp = Path(tempfile.mkdtemp(prefix="adlib-lab-"))
        self.root = Path(root) if root else self.tmp / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        for nb in notebooks:
            shutil.copy(nb, self.root / Path(nb).name)
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
_SCROLL_JS = f"""() => {{
  const cells = [...document.querySelectorAll('{_PANEL} .jp-Cell')];
  let i = cells.findIndex(c => c.querySelector('.widget-slider, .widget-dropdown') && c.querySelector('.js-plotly-plot'));
  if (i < 0) i = cells.findIndex(c => c.querySelector('.js-plotly-plot'));
  if (i < 0) return false;
  (cells[Math.max(0, i - 1)]).scrollIntoView({{block: 'start'}});
  return true;
}}"""


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
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("console", lambda m: console.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
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
                      "errors": page.evaluate(_ERRORS_JS), "console": console, "screenshot": None}
            if interact is not None:
                result["interaction"] = interact(page)
            if screenshot:
                if scroll_to:
                    page.locator(f"{_PANEL} .jp-Cell", has_text=scroll_to).first.evaluate(
                        "e => e.scrollIntoView({block: 'start'})")
                else:
                    page.evaluate(_SCROLL_JS)
                page.wait_for_timeout(1000)
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot))
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
    return done


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="python -m adlib.notebooks")
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

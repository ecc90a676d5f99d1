"""The headless runner: `adlib notebooks run [--profile smoke|cpu|full] [--data SPEC] [--out DIR] [--only 03]
[--run-dir RUN]`.

It executes the sequence in order with papermill, passes the run directory a notebook records
(`record(..., run_dir=...)`) to the notebooks after it (parameter RUN_DIR), writes executed .ipynb and
.html and one JSON of key numbers per notebook into --out, prints a summary, and on a failure names the
notebook and the cell.
"""
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from adlib.errors import AdlibError
from adlib.files import write_json
from adlib.teach.notebooks.machine import machine, slow_warning
from adlib.teach.notebooks.html_export import _html_with_plotly, export_html, tidy_ipynb
from adlib.teach.notebooks.profiles import declared_parameters, list_notebooks, load_profile, parameters_for, select
from adlib.teach.notebooks.workspace import OUT_ENV, notebooks_dir


def _first_line(text) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


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
    where = machine()
    log(f"running {len(names)} notebook(s) with profile {profile} into {out} on {where['name']}"
        + (f" (load average {where['load']:.1f})" if where["load"] is not None else ""))
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
                tidy_ipynb(ipynb)  # progress bars as they ended, not their first "0%" line
                export_html(ipynb, html, log=lambda m: log("  " + m))
            except Exception as e:  # the HTML is a convenience; the executed notebook is what counts
                log(f"  (no HTML for {name}: {type(e).__name__}: {_first_line(e)})")
        numbers = json.loads(rec.read_text()) if rec.is_file() else {}
        if numbers:
            numbers.setdefault("profile", profile)
            write_json(numbers, rec)
        row = {"notebook": name, "status": "failed" if error else "ok", "minutes": round(minutes, 2),
               "numbers": numbers, "ipynb": str(ipynb), "html": str(html)}
        rows.append(row)
        log("  " + _summary_line(row))
        if not error:
            import nbformat
            head = nbformat.read(str(paths[name]), as_version=4).cells[0].source
            warning = slow_warning(name, minutes, head, profile)
            if warning:
                row["warning"] = warning
                log("  " + warning)
        if error:
            _write_summary(out, profile, rows, log, where)
            raise AdlibError(error)
        if numbers.get("run_dir"):
            carry = numbers["run_dir"]
    _write_summary(out, profile, rows, log, where)
    return rows


def _write_summary(out: Path, profile: str, rows: list, log, where: dict = None):
    write_json({"profile": profile, "machine": where, "notebooks": rows}, out / "summary.json")
    log(f"summary ({out / 'summary.json'}):")
    for row in rows:
        log("  " + _summary_line(row))

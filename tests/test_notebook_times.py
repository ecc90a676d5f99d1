"""Measured run times in the notebook headers: the runner names the machine and warns when a run takes more
than twice its header; scripts/run_times.py writes the header line (adlib.teach.notebooks.machine)."""
import importlib.util
from pathlib import Path

from adlib.teach.notebooks import machine as mc

HEAD = ("# 04 · Title\n\n**Run time** (measured, 2 CPU cores): smoke 0.6 min · cpu 1.2 min · full: a GPU, not measured\n")


def _run_times():
    path = Path(__file__).resolve().parents[1] / "scripts" / "run_times.py"
    spec = importlib.util.spec_from_file_location("run_times", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_machine_is_named():
    m = mc.machine()
    assert m["cores"] >= 1 and f"{m['cores']} CPU cores" in m["name"] and m["cpu"]


def test_slow_warning_at_twice_the_header():
    assert mc.header_minutes(HEAD, "smoke") == 0.6 and mc.header_minutes(HEAD, "cpu") == 1.2
    assert mc.header_minutes(HEAD, "full") is None
    assert mc.slow_warning("04", 1.2, HEAD, "smoke") == ""
    assert "more than twice" in mc.slow_warning("04", 1.3, HEAD, "smoke")
    assert mc.slow_warning("04", 99, HEAD, "full") == ""


def test_run_times_rewrites_the_header_line_with_the_machine():
    rt = _run_times()
    new = rt.rewrite_header(HEAD, 0.9, 1.2, {"name": "2 CPU cores, Test CPU", "load": 0.5})
    assert "measured with `adlib notebooks run` on 2 CPU cores, Test CPU; load average 0.5" in new
    assert mc.header_minutes(new, "smoke") == 0.9 and "full: a GPU, not measured" in new
    assert rt.rewrite_header(new, 1.0, 1.3, {"name": "x"}).count("**Run time**") == 1

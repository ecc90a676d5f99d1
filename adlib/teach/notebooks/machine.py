"""What a notebook run was measured on, and whether it ran slower than its header says.

`machine()` names the machine for the runner's summary.json (CPU cores, CPU model, GPU if any, the load
average when the run started); scripts/run_times.py writes that name beside the measured minutes into each
notebook's header. `header_minutes` reads those minutes back, and `slow_warning` is the runner's check that a
run did not take more than twice what its header promises.
"""
import os
import platform
import re

TIMES = re.compile(r"smoke\s+([\d.]+)\s*min\s*·\s*cpu\s+([\d.]+)\s*min")
RUN_TIME = re.compile(r"\*\*Run time\*\*[^:\n]*:")


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> dict:
    """{cores, cpu, gpu, load, name}: name e.g. '2 CPU cores, AMD EPYC 7B13'."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = None
    try:
        import torch
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    name = f"{cores} CPU cores, {cpu_model()}" + (f", {gpu}" if gpu else "")
    return {"cores": cores, "cpu": cpu_model(), "gpu": gpu, "load": load, "name": name}


def header_minutes(header: str, profile: str):
    """The minutes a notebook's header gives for `profile` (smoke or cpu), None if it gives none."""
    m = TIMES.search(header)
    if not m or profile not in ("smoke", "cpu"):
        return None
    return float(m.group(1 if profile == "smoke" else 2))


def slow_warning(name: str, minutes: float, header: str, profile: str) -> str:
    """A warning when a run took more than twice its header's minutes for this profile, else ''."""
    h = header_minutes(header, profile)
    if h is None or minutes <= 2 * h:
        return ""
    return (f"WARNING: {name} took {minutes:.1f} min with profile {profile}, more than twice its header's {h:g} min "
            "(a loaded machine, or a slower one: re-measure with scripts/run_times.py)")


def run_time_line(smoke: float, cpu: float, machine_name: str, load: float = None) -> str:
    """The header's run-time line as scripts/run_times.py writes it."""
    busy = f"; load average {load:.1f} when it started" if load is not None else ""
    return (f"**Run time** (measured with `adlib notebooks run` on {machine_name}{busy}): "
            f"smoke {smoke:g} min · cpu {cpu:g} min")

"""One clock for every speed figure: the device synchronised before each read, methods interleaved.

On a GPU, kernels are queued and run later; reading the clock without `torch.cuda.synchronize()` times
the launches, not the work. `clock(device)` synchronises the device of the work first (nothing to do
on the CPU), and `timed` / `interleaved` read the clock only through it.

On a shared machine the speed of a method drifts with the load of the others. Timing each method in a
block of its own lets that drift decide a ratio between methods; `interleaved` instead runs every
method once per round, in an order rotated each round, so that all meet the same load, and reports the
median over rounds with its spread. This module imports nothing from adlib.
"""
import time

import numpy as np
import torch


def is_cuda(device) -> bool:
    """Whether the work runs on CUDA: `device` names it; None means "whatever has been used", i.e. CUDA
    when it has been initialised in this process."""
    if device is None:
        return torch.cuda.is_available() and torch.cuda.is_initialized()
    return torch.device(device).type == "cuda"


def sync(device=None):
    """Wait until the queued work of `device` is done (a no-op on the CPU)."""
    if is_cuda(device):
        torch.cuda.synchronize(None if device is None else torch.device(device))


def clock(device=None) -> float:
    """Seconds (time.perf_counter) once the device's queued work has finished."""
    sync(device)
    return time.perf_counter()


def timed(fn, *args, device=None):
    """(fn(*args), seconds it took), the device synchronised before each clock read."""
    t0 = clock(device)
    out = fn(*args)
    return out, clock(device) - t0


def interleaved(tasks: dict, rounds: int = 5, device=None, warmup: int = 0, on_round=None) -> dict:
    """{name: [seconds of each round]} for zero-argument callables, run interleaved.

    `warmup` untimed rounds first, then round r runs every task once, starting r places further along
    the list (a b c, b c a, c a b, ...), so no task always follows the same one or always comes first.
    on_round(r) is called after each timed round (a progress bar)."""
    names = list(tasks)
    for _ in range(warmup):
        for name in names:
            tasks[name]()
    seconds = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            seconds[name].append(timed(tasks[name], device=device)[1])
        if on_round is not None:
            on_round(r)
    return seconds


def rate_summary(seconds, n: int) -> dict:
    """Items/s of each round (n items per round) summarised: median, min, max, iqr, relative spread."""
    rates = n / np.asarray(seconds, dtype=float)
    q1, med, q3 = np.percentile(rates, [25, 50, 75])
    return {"median": float(med), "min": float(rates.min()), "max": float(rates.max()), "iqr": float(q3 - q1),
            "spread": float((q3 - q1) / med), "rounds": len(rates)}

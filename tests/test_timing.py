"""Speed figures: the device synchronised before every clock read, and methods timed interleaved.

No GPU is needed: CUDA is faked by recording `torch.cuda.synchronize` (a device named "cuda" is what
makes the timer synchronise) and `time.perf_counter`, and checking that every clock read comes right
after a synchronisation of that device.
"""
import time
from itertools import groupby
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from adlib.evaluation import bench


@pytest.fixture
def events(monkeypatch):
    """Records ("sync", device) for torch.cuda.synchronize and ("clock",) for time.perf_counter."""
    log, real = [], time.perf_counter
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append(("sync", device)))

    def clock():
        log.append(("clock",))
        return real()
    monkeypatch.setattr(time, "perf_counter", clock)
    return log


def _each_clock_read_follows_a_sync(log, device_type="cuda"):
    reads = [i for i, e in enumerate(log) if e[0] == "clock"]
    assert reads, "nothing was timed"
    for i in reads:
        assert i > 0 and log[i - 1][0] == "sync", f"clock read #{reads.index(i)} without synchronising first: {log[:i + 1][-4:]}"
        dev = log[i - 1][1]
        assert dev is None or torch.device(dev).type == device_type
    return len(reads)


def test_timer_synchronises_cuda_before_each_clock_read(events):
    from adlib.evaluation import timing
    out, seconds = timing.timed(lambda x: x + 1, 1, device="cuda")
    assert out == 2 and seconds >= 0
    assert _each_clock_read_follows_a_sync(events) == 2
    events.clear()
    timing.interleaved({"a": lambda: None, "b": lambda: None}, rounds=3, device=torch.device("cuda", 0))
    assert _each_clock_read_follows_a_sync(events) == 2 * 3 * 2


def test_timer_does_not_synchronise_the_cpu(events):
    from adlib.evaluation import timing
    timing.timed(lambda: None, device="cpu")
    timing.interleaved({"a": lambda: None}, rounds=2, device="cpu")
    assert not [e for e in events if e[0] == "sync"] and len(events) == 2 + 4


def _fake_run(device="cpu", backbone_work=1):
    a = torch.randn(96, 96)

    def extractor(images):
        for _ in range(backbone_work * len(images)):
            a @ a
        return torch.zeros(len(images), 3, 2, 2)
    return SimpleNamespace(device=device, extractor=extractor, cfg=SimpleNamespace(image_size=32),
                           stats={"mean": torch.zeros(1, 3, 1, 1), "std": torch.ones(1, 3, 1, 1)})


def _matmul_scorer(k, name, log, size=512, per_image=4):
    """A scorer whose cost is k x per_image matmuls of a fixed size per image; logs (name, batch length) per call."""
    a = torch.randn(size, size, generator=torch.Generator().manual_seed(k))

    def f(z):
        log.append((name, len(z)))
        for _ in range(k * per_image * len(z)):
            a @ a
        return {"max": np.linspace(0, 1, len(z)), "map": torch.zeros(len(z), 2, 2)}
    return f


def _data(n=48):
    return torch.zeros(n, 3, 2, 2), np.r_[np.zeros(n // 2), np.ones(n - n // 2)], torch.zeros(8, 3, 32, 32)


def test_bench_measure_synchronises_the_runs_device(events):
    """bench.measure on a run whose device is "cuda" (the work itself is fake and runs on the CPU)."""
    z, labels, images = _data(16)
    methods = [("a", _matmul_scorer(1, "a", [], size=8, per_image=1), {}),
               ("b", _matmul_scorer(2, "b", [], size=8, per_image=1), {})]
    rows, backbone = bench.measure(methods, _fake_run("cuda"), z, labels, None, images, 8, False)
    assert _each_clock_read_follows_a_sync(events) >= 2 * 2 * 2  # latent and end to end, every method, >= 2 rounds
    events.clear()
    bench.end_to_end_ips(_fake_run("cuda"), images, methods[0][1], 4)
    bench.timed_scorer(methods[0][1], z, 8, device="cuda")
    # end_to_end_ips: (warm-up + 1 round) x 2 batches x (backbone, head) x 2 clock reads; timed_scorer: 3 x 2
    assert _each_clock_read_follows_a_sync(events) == 2 * 2 * 2 * 2 + 3 * 2


def test_throughput_uses_the_shared_clock(monkeypatch):
    """throughput.measure reads the clock through adlib.evaluation.timing (one implementation for bench and it)."""
    from adlib.evaluation import throughput, timing
    log, sync = [], timing.sync

    def recorded(device=None):
        log.append(("sync", device))
        sync(device)
    monkeypatch.setattr(timing, "sync", recorded)
    extractor = type("E", (), {"image_size": 32, "__call__": lambda self, x: torch.zeros(len(x), 4, 2, 2)})()
    r = throughput.measure(extractor, {"mean": torch.zeros(1, 4, 1, 1), "std": torch.ones(1, 4, 1, 1)},
                           lambda x, t: torch.zeros_like(x), 2, steps=2, device="cpu", warmup=1, batches=2)
    assert r["images_per_second"] > 0
    assert log == [("sync", "cpu")] * 4  # two clock reads for each of the two paths


def test_interleaved_rotates_the_order_each_round():
    from adlib.evaluation import timing
    calls = []
    s = timing.interleaved({k: (lambda k=k: calls.append(k)) for k in "abc"}, rounds=4, warmup=1)
    assert "".join(calls) == "abc" + "abc" + "bca" + "cab" + "abc"
    assert {k: len(v) for k, v in s.items()} == {"a": 4, "b": 4, "c": 4}


def test_rate_summary():
    from adlib.evaluation.timing import rate_summary
    r = rate_summary([1.0, 0.5, 2.0, 1.0, 0.25], 10)  # rates 10, 20, 5, 10, 40
    assert (r["median"], r["min"], r["max"], r["rounds"]) == (10, 5, 40, 5)
    assert r["iqr"] == pytest.approx(10) and r["spread"] == pytest.approx(1.0)


def test_measure_interleaves_methods_and_reports_ratio_and_spread():
    """Two fake scorers of known relative cost (1 vs 3 matmuls per image): the measured ratio is 3 within
    25 %, rows report the spread over rounds, and the calls alternate between methods. On a machine
    shared with other work a burst of load can still land on one method's rounds: one retry."""
    z, labels, images = _data(32)
    for attempt in range(2):
        log = []
        methods = [("k=1", _matmul_scorer(1, "k=1", log), {}), ("k=3", _matmul_scorer(3, "k=3", log), {})]
        rows, backbone = bench.measure(methods, _fake_run(), z, labels, None, images, 16, False)
        fast, slow = rows
        ratio = fast["score_images_per_second"] / slow["score_images_per_second"]
        if 2.25 <= ratio <= 3.75:
            break
    assert 2.25 <= ratio <= 3.75
    for r in rows:
        for key in ("score_images_per_second", "images_per_second", "backbone_images_per_second"):
            assert r[f"{key}_min"] <= r[key] <= r[f"{key}_max"]
            assert r[f"{key}_iqr"] >= 0 and r[f"{key}_spread"] == pytest.approx(r[f"{key}_iqr"] / r[key])
        assert r["timing_rounds"] == 5 and r["score_timing_rounds"] == 5 and r["score_timing_images"] == 16
        assert r["backbone_ratio"] == pytest.approx(r["images_per_second"] / r["backbone_images_per_second"])
        assert r["backbone_images_per_second"] == backbone
    assert fast["images_per_second"] > slow["images_per_second"]
    # the timed latent passes (16 features each) alternate, starting one place further each round
    timed = [name for name, n in log if n == 16]
    assert timed == ["k=1", "k=3", "k=3", "k=1", "k=1", "k=3", "k=3", "k=1", "k=1", "k=3"]
    names = [name for name, _ in log]
    assert max(len(list(g)) for _, g in groupby(names)) <= 2  # never a block of one method's calls
    assert "±" in bench.format_table({"data": "x", "n_train": 1, "n_test": 48, "n_anomalous": 24, "methods": rows,
                                      "backbone_images_per_second": backbone, "timing_rounds": 5})

"""The speed table cannot show a method faster than its own backbone (issue 13).

A fake clock replaces adlib.evaluation.timing's: the backbone and the heads advance it by known costs, the
backbone's cost changing from call to call as a shared machine's load does. The old procedure (backbone
alone and backbone + method as separate pipelines, ratio of their medians: adlib.evaluation.bench.measure) shows a
cheap head faster than its backbone under that load; the new one (adlib.evaluation.speed_table) cannot."""
import numpy as np
import pytest
import torch

from adlib.evaluation import bench
from adlib.evaluation.speed_table import run_heads, speed_rows, speed_table, time_heads
import adlib.evaluation.timing


class FakeClock:
    """Stands for the time module inside adlib.evaluation.timing: perf_counter reads a counter the fakes advance."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(adlib.evaluation.timing, "time", c)
    return c


class Backbone:
    """1 s per batch, times the load of the call: `loads` cycles (a busy machine every other call)."""

    def __init__(self, clock, loads=(2.0, 1.0)):
        self.clock, self.loads, self.calls = clock, loads, 0

    def __call__(self, images):
        self.clock.now += self.loads[self.calls % len(self.loads)]
        self.calls += 1
        return images.float()


def head(clock, cost):
    def f(z):
        clock.now += cost
        return {"max": z.flatten(1).mean(1).numpy(), "map": z[:, 0]}
    return f


def test_end_to_end_is_backbone_plus_head_in_every_round(clock):
    images = torch.zeros(8, 1, 2, 2)
    s = time_heads(Backbone(clock, loads=(1.0, 3.0, 2.0)), {"a": head(clock, 0.25), "b": head(clock, 0.5)},
                   images, batch_size=4, rounds=4, warmup=1)
    assert all(len(v) == 4 for v in s.values())
    assert s["a"] == [0.5] * 4 and s["b"] == [1.0] * 4  # two batches per round
    rows = speed_rows(s, len(images))
    total_a = np.asarray(s["backbone"]) + np.asarray(s["a"])
    assert rows["a"]["images_per_second"] == pytest.approx(np.median(len(images) / total_a))
    assert rows["a"]["backbone_ratio"] == pytest.approx(np.median(s["backbone"]) / np.median(total_a))
    assert rows["a"]["head_ms_per_image"] == pytest.approx(1e3 * 0.5 / 8)


def test_heads_run_in_rotated_order_after_the_same_warm_up():
    seen = []
    heads = {n: (lambda z, n=n: seen.append(n)) for n in "abc"}
    time_heads(None, heads, torch.zeros(2, 1), batch_size=2, rounds=3, warmup=1)
    assert seen == list("abc" "bca" "cab" "abc")  # warm-up round 0, then rounds 1-3 continue the rotation


def _fake_run(clock, loads):
    cfg = type("Cfg", (), {"image_size": 2})()
    return type("Run", (), {"device": "cpu", "extractor": Backbone(clock, loads), "cfg": cfg,
                            "stats": {"mean": torch.zeros(1, 1, 1, 1), "std": torch.ones(1, 1, 1, 1)}})()


def test_bench_measure_no_longer_shows_a_cheap_head_faster_than_its_backbone(clock):
    """The defect's case: with separate pipelines (the old bench.measure) the backbone-alone passes met the
    quiet calls and PaDiM came out faster than its backbone (1.99 vs 4.0 images/s would read 'ratio > 1');
    bench.measure now times by speed_table's procedure."""
    images, labels = torch.zeros(4, 1, 2, 2), np.array([0, 0, 1, 1])
    run = _fake_run(clock, loads=(1.0, 2.0))
    methods = [("padim", head(clock, 0.01), {})]
    rows, backbone_ips = bench.measure(methods, run, images, labels, None, images, batch_size=4, progress=False)
    assert rows[0]["images_per_second"] <= backbone_ips and rows[0]["backbone_ratio"] <= 1.0
    full, alone = bench.end_to_end_ips(run, images, methods[0][1], 4, rounds=3)
    assert full <= alone


@pytest.mark.parametrize("loads", [(2.0, 1.0), (1.0, 2.0), (1.0, 5.0, 1.0, 1.0), (3.0, 1.0, 2.0)])
def test_new_procedure_never_shows_a_method_faster_than_its_backbone(clock, loads):
    images = torch.zeros(4, 1, 2, 2)
    run = _fake_run(clock, loads)
    methods = [("padim", head(clock, 0.01), {}), ("invad S=3", head(clock, 0.3), {})]
    backbone, heads = run_heads(run, methods)
    rows, alone = speed_table(backbone, heads, images, batch_size=2, rounds=5)
    for r in rows.values():
        assert r["backbone_ratio"] <= 1.0 and r["images_per_second"] <= alone
    assert rows["invad S=3"]["images_per_second"] < rows["padim"]["images_per_second"]  # dearer head, slower


def test_without_a_backbone_only_heads_are_timed(clock):
    rows, alone = speed_table(None, {"a": head(clock, 0.5)}, torch.zeros(4, 1, 2, 2), batch_size=2, rounds=3)
    assert alone is None and "backbone_ratio" not in rows["a"]
    assert rows["a"]["images_per_second"] == pytest.approx(4 / 1.0)

"""The throughput command: honest per-image timing, counted FLOPs, and its options.

Timings are checked against fake networks of known cost (sleeps), so a wrong formula shows as a wrong number."""
import json
import time

import pytest
import torch

from adlib.cli import main
from adlib.evaluation.throughput import count_flops, measure, throughput
from adlib.models import build_model


class FakeExtractor:
    """A backbone that returns zeros at once; its first call can sleep (one-time set-up)."""
    image_size, channels = 32, 4

    def __init__(self, first_call_sleeps=0.0):
        self.first, self.calls = first_call_sleeps, 0

    def __call__(self, images):
        if self.calls == 0:
            time.sleep(self.first)
        self.calls += 1
        return torch.zeros(len(images), self.channels, 2, 2)


class SleepingEps:
    """An eps-network whose every evaluation takes `seconds`, whatever the batch size."""
    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self, x, t):
        time.sleep(self.seconds)
        return torch.zeros_like(x)


STATS = {"mean": torch.zeros(1, 4, 1, 1), "std": torch.ones(1, 4, 1, 1)}


def _measure(eps, batch_size=2, steps=3, extractor=None, **kw):
    return measure(extractor or FakeExtractor(), STATS, eps, batch_size, steps=steps, device="cpu", **kw)


def test_timer_measures_a_known_sleep():
    from adlib.evaluation.timing import timed
    _, seconds = timed(time.sleep, 0.2)
    assert 0.2 <= seconds < 0.3


def test_known_workload_gives_known_times():
    """3 eps-evaluations of 50 ms per batch: ~150 ms per batch of 4, ~37.5 ms per image, ~27 images/s.
    (50 ms, not less: on a loaded 2-core machine a batch's fixed overhead reached ~30 ms; 4 evaluations fail.)"""
    x = _measure(SleepingEps(0.05), batch_size=4, steps=3, warmup=1, batches=3)
    assert 150 <= x["ms_per_batch"] < 200
    assert 37.5 <= x["ms_per_image"] < 50
    assert 20 < x["images_per_second"] <= 26.7
    assert x["backbone_images_per_second"] > 10 * x["images_per_second"]  # the fake backbone costs ~nothing


def test_rate_halves_when_the_scorer_costs_twice_as_much():
    # sleeps of 50 ms+: a loaded machine oversleeps by a few ms, which must not decide the ratio
    cheap = _measure(SleepingEps(0.05), steps=2, warmup=1, batches=3)["images_per_second"]
    dear = _measure(SleepingEps(0.1), steps=2, warmup=1, batches=3)["images_per_second"]
    more_steps = _measure(SleepingEps(0.05), steps=4, warmup=1, batches=3)["images_per_second"]
    assert 1.5 <= cheap / dear <= 2.5 and 1.5 <= cheap / more_steps <= 2.5


def test_images_per_second_counts_images_not_batches():
    """A cost per batch, not per image: a batch of 4 scores 4 images in the time a batch of 1 scores one."""
    one = _measure(SleepingEps(0.05), batch_size=1, warmup=1, batches=3)
    four = _measure(SleepingEps(0.05), batch_size=4, warmup=1, batches=3)
    assert 3 <= four["images_per_second"] / one["images_per_second"] <= 5
    assert 3 <= one["ms_per_image"] / four["ms_per_image"] <= 5


def test_warmup_batches_are_not_timed():
    """A backbone whose first call takes 0.5 s: with a warm-up batch the rate does not see it."""
    eps = SleepingEps(0.001)
    warm = _measure(eps, extractor=FakeExtractor(first_call_sleeps=0.5), warmup=1, batches=2)
    assert warm["ms_per_batch"] < 100 and warm["warmup_batches"] == 1 and warm["timed_batches"] == 2
    cold = _measure(eps, extractor=FakeExtractor(first_call_sleeps=0.5), warmup=0, batches=2)
    assert cold["ms_per_batch"] >= 250  # the same set-up, timed: what the warm-up keeps off the bill


def test_flops_of_a_linear_layer():
    layer = torch.nn.Linear(7, 5)
    _, flops = count_flops(layer, torch.randn(3, 7))
    assert flops == 2 * 7 * 5 * 3


def test_report_of_a_run(tiny_run):
    r = throughput(run_dir=tiny_run.path, batch_sizes=(1, 3), device="cpu", warmup=1, batches=1)
    assert [x["batch_size"] for x in r["rows"]] == [1, 3] and r["model"].startswith("run ")
    assert r["backbone_gflop"] > 0 and r["inversion_gflop"] > 0


def test_flops_of_attention_are_counted():
    """2 * (token-wise weights) * tokens per evaluation: attention projections included."""
    m = build_model("dit", 8, 4, hidden=32, depth=2, heads=2).eval()
    per_token = sum(b.attn.in_proj_weight.numel() + b.attn.out_proj.weight.numel() + b.mlp[0].weight.numel()
                    + b.mlp[2].weight.numel() for b in m.blocks) + m.proj_in.weight.numel() + m.proj_out.weight.numel()
    _, flops = count_flops(m, torch.randn(1, 8, 4, 4), torch.tensor([5]))
    assert flops >= 2 * per_token * 16
    assert torch.backends.mha.get_fastpath_enabled()  # restored


def test_cli_bf16_json(tmp_path, capsys):
    assert main(["throughput", "--model", "mlp", "--image-size", "64", "--batch-sizes", "2", "--batches", "1",
                 "--warmup", "1", "--bf16", "--device", "cpu", "--json", str(tmp_path / "t.json")]) == 0
    assert "bf16" in capsys.readouterr().out
    assert json.loads((tmp_path / "t.json").read_text())["rows"][0]["bf16"] is True


@pytest.mark.parametrize("args, says", [(["--batch-sizes", "1,x"], "--batch-sizes"),
                                         (["--batch-sizes", "0"], "every batch size must be positive"),
                                         (["--steps", "0"], "--steps")])
def test_cli_bad_options(args, says, capsys):
    assert main(["throughput", "--device", "cpu", *args]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_cuda_without_cuda_is_one_line(tiny_run, capsys):
    assert main(["throughput", "--device", "cuda"]) == 2
    assert main(["evaluate", str(tiny_run.path), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("--device cuda" in line and "no CUDA" in line for line in err)


def test_threads_option(capsys):
    before = torch.get_num_threads()
    try:
        assert main(["--threads", "1", "throughput", "--model", "mlp", "--image-size", "64", "--batch-sizes", "1",
                     "--batches", "1", "--warmup", "0", "--no-flops", "--device", "cpu"]) == 0
        assert "(1 threads)" in capsys.readouterr().out
        assert main(["--threads", "0", "throughput"]) == 2
    finally:
        torch.set_num_threads(before)

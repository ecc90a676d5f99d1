"""The throughput command: honest per-image timing, counted FLOPs, and its options."""
import json

import pytest
import torch

from adlib.cli import main
from adlib.models import build_model
from adlib.throughput import count_flops, throughput


def test_rows_per_batch_size(tiny_run):
    r = throughput(run_dir=tiny_run.path, batch_sizes=(1, 3), device="cpu", warmup=1, batches=2)
    assert [x["batch_size"] for x in r["rows"]] == [1, 3]
    for x in r["rows"]:  # per-image time is batch time / batch size, not batch time
        assert x["ms_per_image"] == pytest.approx(x["ms_per_batch"] / x["batch_size"])
        assert x["images_per_second"] == pytest.approx(1e3 / x["ms_per_image"])
        assert 0 < x["images_per_second"] and x["timed_batches"] == 2 and x["warmup_batches"] == 1
    assert r["backbone_gflop"] > 0 and r["inversion_gflop"] > 0 and r["model"].startswith("run ")


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

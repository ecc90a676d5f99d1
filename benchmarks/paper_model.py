"""The paper-size configuration on CPU: build the 1.2 B-parameter DiT of `--recipe paper`, run forward passes.

    python benchmarks/paper_model.py [--batch 1] [--bf16] [--json docs/bench/paper-model-cpu.json]

Builds the recipe's eps-network for EfficientNet-B4 features (272 x 16 x 16), counts its parameters and
the FLOPs of one eps-evaluation (torch.utils.flop_counter), times forward passes (median of 3; fp32, and
bf16 autocast with --bf16), and checks the output is finite and shaped like the input. One image costs the
backbone plus S = 3 such evaluations; the paper's ~1.3 TFLOP/image is that sum. Not part of CI: it needs
~6 GB of memory and about a minute of CPU. GPU training of this model uses bf16 and gradient
checkpointing (both set by the recipe); see README "Paper scale".
"""
import argparse
import json
import time
from pathlib import Path

import torch

from adlib.evaluation.throughput import count_flops
from adlib.features.backbone import BACKBONES, FeatureExtractor
from adlib.models import build_model
from adlib.runs.config import recipe


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--bf16", action="store_true", help="also time a bf16-autocast forward pass")
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args()
    cfg = recipe("paper")
    channels, grid = BACKBONES[cfg.backbone]["channels"], cfg.image_size // 16
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = build_model(cfg.model, channels, grid).eval()
    built = time.perf_counter() - t0
    x, t = torch.randn(a.batch, channels, grid, grid), torch.full((a.batch,), 333)
    report = {"model": cfg.model, "config": dict(model.config), "params": sum(q.numel() for q in model.parameters()),
              "build_seconds": round(built, 1), "batch": a.batch, "threads": torch.get_num_threads()}
    out, flops = count_flops(model, x, t)
    assert out.shape == x.shape and torch.isfinite(out).all()
    report["eps_tflop_per_image"] = flops / a.batch / 1e12
    with torch.no_grad():
        for name, ctx in [("fp32", torch.autocast("cpu", enabled=False))] + \
                         ([("bf16", torch.autocast("cpu", dtype=torch.bfloat16))] if a.bf16 else []):
            with ctx:
                model(x, t)  # warm-up
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    out = model(x, t)
                    times.append(time.perf_counter() - t0)
                report[f"forward_seconds_{name}"] = round(sorted(times)[1], 2)  # median of 3
            assert torch.isfinite(out.float()).all()
    backbone = FeatureExtractor(cfg.backbone, cfg.image_size, pretrained=False)  # FLOPs need no weights
    report["backbone_tflop_per_image"] = count_flops(backbone, torch.rand(1, 3, cfg.image_size, cfg.image_size))[1] / 1e12
    report["scoring_tflop_per_image_s3"] = report["backbone_tflop_per_image"] + 3 * report["eps_tflop_per_image"]
    print(f"{cfg.model}: {report['params'] / 1e9:.3f} B parameters (built in {built:.0f} s)")
    print(f"one eps-evaluation: {report['eps_tflop_per_image']:.3f} TFLOP/image; backbone "
          f"{report['backbone_tflop_per_image'] * 1e3:.1f} GFLOP; scoring at S = 3: "
          f"{report['scoring_tflop_per_image_s3']:.2f} TFLOP/image")
    for k in ("fp32", "bf16"):
        if f"forward_seconds_{k}" in report:
            sec = report[f"forward_seconds_{k}"]
            print(f"forward pass, batch {a.batch}, {k}, {report['threads']} CPU threads: {sec} s "
                  f"(median of 3; {report['eps_tflop_per_image'] * a.batch / sec * 1e3:.0f} GFLOP/s)")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()

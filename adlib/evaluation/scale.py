"""Paper-scale arithmetic for notebook 02: parameters, FLOPs per eps-evaluation, training cost and memory.

Parameters are counted on a shapes-only build (`torch.device("meta")`: no memory, even for the 1.2 B DiT).
FLOPs of one forward pass of a token denoiser (EpsMLP, EpsDiT) on one image, P = grid^2 tokens, C channels,
hidden H, depth L, MLP width rH, a multiply-add counted as 2 FLOPs:

    time embedding   2 (256 H + H^2)                 proj_in, proj_out   2 P C H each
    per block        adaLN 2 H (k H)  (k = 6 with attention, 3 without)  +  MLP 4 P H (rH)
                     with attention: q, k, v, out projections 8 P H^2  +  scores QK^T and A V  4 P^2 H
    final adaLN      2 H (2 H)

torch.utils.flop_counter (adlib.evaluation.throughput.count_flops) counts the matmuls (`linear`) but not the CPU
scaled-dot-product attention kernel, so the `attention` term comes on top of what it reports.
Training costs about 3 forward passes per image (the backward pass runs two matmuls per forward matmul),
4 with gradient checkpointing (the blocks' forward runs again during backward).
"""
import json
import math
from pathlib import Path

import torch

from adlib.runs.memory import TRAIN_BYTES_PER_PARAM  # weights, gradients, AdamW moments, EMA: 20 bytes

# MVTec AD's training split: 3,629 normal images over 15 categories (Bergmann et al., CVPR 2019).
MVTEC_AD_TRAIN_IMAGES = 3629
# Where the CPU figures of `--recipe paper`'s DiT come from (docs/paper-scale.md).
MEASURED_CPU = dict(path="docs/bench/paper-model-cpu.json", date="2026-11-29",
                    command="python benchmarks/paper_model.py --bf16 --json docs/bench/paper-model-cpu.json")


def count_params(name: str, channels: int, grid: int, **overrides) -> int:
    """Parameters of preset `name` for C = channels, h = w = grid, built on the meta device (no memory)."""
    from adlib.models import build_model
    with torch.device("meta"):
        model = build_model(name, channels, grid, **overrides)
    return sum(p.numel() for p in model.parameters())


def token_denoiser_flops(channels: int, hidden: int, depth: int, heads: int = 0, mlp_ratio: float = 4.0,
                         grid: int = 16) -> dict:
    """FLOPs of one forward pass on one image (module docstring): {linear, attention, total}."""
    c, h, p, width = channels, hidden, grid * grid, int(hidden * mlp_ratio)
    block = 2 * h * (6 if heads else 3) * h + 4 * p * h * width + (8 * p * h * h if heads else 0)
    linear = 2 * (256 * h + h * h) + 4 * p * c * h + depth * block + 2 * h * 2 * h
    attention = depth * 4 * p * p * h if heads else 0
    return {"linear": linear, "attention": attention, "total": linear + attention}


def model_flops(name: str, channels: int, grid: int, **overrides) -> dict:
    """token_denoiser_flops for a preset of the MLP or DiT family (its config read off a meta build)."""
    from adlib.models import build_model
    with torch.device("meta"):
        model = build_model(name, channels, grid, **overrides)
    kind = type(model).__name__
    if kind not in ("EpsMLP", "EpsDiT"):
        raise ValueError(f"the FLOP formula covers the token denoisers (mlp, dit), not {kind}")
    cfg = model.config
    return token_denoiser_flops(channels, cfg.hidden, cfg.depth, cfg.get("heads", 0), cfg.mlp_ratio, grid)


def forward_passes_per_training_image(grad_checkpointing: bool) -> int:
    """Forward + backward ~ 3 forward passes; gradient checkpointing recomputes the forward once more."""
    return 4 if grad_checkpointing else 3


def training_flops(forward_flops: float, images_seen: float, grad_checkpointing: bool) -> float:
    """FLOPs of a training run that shows `images_seen` images to the eps-network (features are cached)."""
    return forward_flops * images_seen * forward_passes_per_training_image(grad_checkpointing)


def seconds_at(flops: float, tflops_per_second: float, utilisation: float = 1.0, devices: int = 1) -> float:
    """Time for `flops` on `devices` devices of a given peak, at a fraction `utilisation` of it (ideal scaling)."""
    return flops / (tflops_per_second * 1e12 * utilisation * devices)


def human_time(seconds: float) -> str:
    """1.2 s, 3.4 min, 5.6 h or 7.8 days."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def load_measured(root=None) -> dict:
    """The committed CPU measurement of the paper DiT (MEASURED_CPU) with its provenance, or {} if absent."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    path = root / MEASURED_CPU["path"]
    if not path.is_file():
        return {}
    return {**json.loads(path.read_text()), "source": MEASURED_CPU}


def paper_walkthrough(measured: dict, images: int = MVTEC_AD_TRAIN_IMAGES, epochs: int = 300, batch: int = 64,
                      gpu_tflops: float = 989.0, utilisation: float = 0.4, gpus=(1, 8)) -> list:
    """Rows (quantity, value, kind) for `--recipe paper`: kind is computed, measured or estimate, and each
    estimate's value shows its arithmetic. `measured`: load_measured() (the CPU rows are skipped without it)."""
    from adlib.features.backbone import BACKBONES
    from adlib.runs.config import recipe
    cfg = recipe("paper")
    channels, grid = BACKBONES[cfg.backbone]["channels"], cfg.image_size // 16
    params = count_params(cfg.model, channels, grid)
    fl = model_flops(cfg.model, channels, grid)
    seen = epochs * images
    passes = forward_passes_per_training_image(cfg.grad_checkpointing)
    total = training_flops(fl["total"], seen, cfg.grad_checkpointing)
    rows = [
        ("ε-network", f"`{cfg.model}`: DiT, hidden 2048, depth 16, 8 heads, patch 1, on {channels}×{grid}×{grid} "
                      f"EfficientNet-{cfg.backbone.upper()} features", "recipe"),
        ("parameters", f"{params / 1e9:.3f} B", "computed (meta build)"),
        ("FLOPs per ε-evaluation, one image", f"{fl['total'] / 1e12:.3f} TFLOP = {fl['linear'] / 1e12:.3f} "
                                              f"(matmuls) + {fl['attention'] / 1e12:.4f} (attention QKᵀ, AV)",
         "computed (formula)"),
        ("scoring one image at S = 3", f"3 × {fl['total'] / 1e12:.3f} = {3 * fl['total'] / 1e12:.2f} TFLOP "
                                       "+ the backbone", "computed"),
        ("300 epochs of MVTec AD", f"{epochs} × {images:,} images = {seen / 1e6:.2f} M images = "
                                   f"{math.ceil(seen / batch):,} iterations at batch {batch}", "computed"),
        ("training FLOPs", f"{fl['total'] / 1e12:.3f} TFLOP × {seen / 1e6:.2f} M × {passes} passes "
                           f"(forward, backward = 2, checkpoint recompute = 1) = {total / 1e18:.2f} EFLOP",
         "computed"),
        ("training memory (weights, grads, AdamW, EMA)", f"{params / 1e9:.3f} B × {TRAIN_BYTES_PER_PARAM} bytes = "
                                                          f"{params * TRAIN_BYTES_PER_PARAM / 2 ** 30:.0f} GiB "
                                                          "+ activations", "computed"),
    ]
    if measured:
        src = measured["source"]
        for key, name in (("forward_seconds_fp32", "float32"), ("forward_seconds_bf16", "bf16 autocast")):
            if key in measured:
                sec = measured[key]
                rows.append((f"CPU forward pass, batch 1, {name}, {measured['threads']} threads",
                             f"{sec} s ({measured['eps_tflop_per_image'] / sec * 1e3:.0f} GFLOP/s)",
                             f"measured {src['date']}"))
                rows.append((f"300 epochs on that CPU, {name}",
                             f"{sec} s × {passes} × {seen / 1e6:.2f} M = {human_time(sec * passes * seen)}",
                             "estimate"))
    for n in gpus:
        sec = seconds_at(total, gpu_tflops, utilisation, n)
        rows.append((f"300 epochs on {n} GPU{'s' if n > 1 else ''} of {gpu_tflops:g} TFLOP/s bf16 peak",
                     f"{total / 1e18:.2f} EFLOP / ({n} × {gpu_tflops:g} TFLOP/s × {utilisation:.0%} utilisation) "
                     f"= {human_time(sec)}" + (" (ideal scaling)" if n > 1 else ""), "estimate"))
    return rows


def rows_markdown(rows) -> str:
    """A markdown table of paper_walkthrough's rows."""
    return "| quantity | value | how we know |\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)

"""Scoring throughput: images/s of backbone + standardise + S-step DDIM inversion + NLL/Diff/norm map.

Timed honestly: `warmup` untimed batches first (they include torch.compile's compilation), the device
synchronised before each clock read (adlib.evaluation.timing's clock, the one bench uses too), and per-image time
= batch time / batch size (the paper's reference code logged per-batch time as per-image). Images are
random tensors already on the device, so file decoding is excluded here; `adlib evaluate` reports the
from-file figure. FLOPs are counted by torch.utils.flop_counter on one image (matmuls and convolutions;
the paper's DiT is ~1.3 TFLOP/image).
"""
from contextlib import nullcontext

import torch

from adlib.errors import AdlibError
from adlib.evaluation.timing import clock
from adlib.features.backbone import BACKBONES, FeatureExtractor
from adlib.features.standardize import standardize
from adlib.method import scoring
from adlib.method.inversion import invert, make_grid
from adlib.method.precision import backbone_autocast, resolve_precision
from adlib.models import build_model
from adlib.runs.train import pick_device


def pipeline(run_dir=None, model="mlp", backbone="lite0", image_size=256, device="cpu"):
    """(extractor, stats, eps-model, note): a trained run's, or an untrained preset (timing is the same)."""
    if run_dir is not None:
        from adlib.runs.run import Run
        run = Run(run_dir, device=device)
        extractor, stats, eps, note = run.extractor, run.stats, run.model, f"run {run_dir}"
    else:
        try:
            extractor, note = FeatureExtractor(backbone, image_size), f"untrained {model}"
        except AdlibError:  # b4 without its weight file: the same network with random weights times the same
            extractor, note = FeatureExtractor(backbone, image_size, pretrained=False), f"untrained {model}, random {backbone}"
        c = BACKBONES[backbone]["channels"]
        stats = {"mean": torch.zeros(1, c, 1, 1), "std": torch.ones(1, c, 1, 1)}
        eps = build_model(model, c, image_size // 16)
    return extractor.to(device).eval(), {k: v.to(device) for k, v in stats.items()}, eps.to(device).eval(), note


def measure(extractor, stats, eps, batch_size, steps=3, grid="paper", device="cpu", bf16=False,
            compile=False, warmup=2, batches=5, seed=0) -> dict:
    """Images/s of the whole scoring path and of the backbone alone, at one batch size."""
    points = make_grid(steps, grid)
    model = torch.compile(eps) if compile else eps
    autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()
    images = torch.rand(batch_size, 3, extractor.image_size, extractor.image_size,
                        generator=torch.Generator().manual_seed(seed)).to(device)

    @torch.no_grad()
    def score(with_inversion):
        with backbone_autocast(device, "bf16" if bf16 else "fp32"):  # fp32 (adlib/method/precision.py)
            z = extractor(images).float()
        if not with_inversion:
            return z
        with autocast:
            x = invert(model, standardize(z, stats), points)
        return scoring.latent_scores(x)  # the library's scoring, left on the device

    def seconds(with_inversion):
        for _ in range(warmup):
            score(with_inversion)
        t0 = clock(device)
        for _ in range(batches):
            score(with_inversion)
        return (clock(device) - t0) / batches

    full, alone = seconds(True), seconds(False)
    return {"batch_size": batch_size, "images_per_second": batch_size / full, "ms_per_image": 1e3 * full / batch_size,
            "ms_per_batch": 1e3 * full, "backbone_images_per_second": batch_size / alone,
            "steps": steps, "grid": grid, "device": device, "bf16": bf16, "compile": compile,
            "warmup_batches": warmup, "timed_batches": batches}


def count_flops(fn, *args):
    """(fn(*args), FLOPs it ran), counted by torch.utils.flop_counter.

    nn.MultiheadAttention's inference fast path is one fused op the counter does not see (it hid a third
    of the DiT's FLOPs), so it is switched off while counting."""
    from torch.utils.flop_counter import FlopCounterMode
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = fn(*args)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return out, counter.get_total_flops()


def flops_per_image(extractor, stats, eps, steps=3, grid="paper", device="cpu") -> dict:
    """FLOPs of one image: backbone and the S eps-evaluations, counted (not estimated) by torch."""
    image = torch.rand(1, 3, extractor.image_size, extractor.image_size, device=device)
    z, backbone = count_flops(extractor, image)
    _, inversion = count_flops(invert, eps, standardize(z, stats), make_grid(steps, grid))
    return {"backbone_gflop": backbone / 1e9, "inversion_gflop": inversion / 1e9,
            "eps_params_m": sum(p.numel() for p in eps.parameters()) / 1e6}


def throughput(run_dir=None, model="mlp", backbone="lite0", image_size=256, batch_sizes=(1, 64), steps=3,
               grid="paper", device="auto", precision=None, compile=False, warmup=2, batches=5, flops=True) -> dict:
    """precision: fp32 | bf16 (None: bf16 on CUDA, fp32 on the CPU); True / False are taken as bf16 / fp32."""
    device = pick_device(device)
    if isinstance(precision, bool):
        precision = "bf16" if precision else "fp32"
    bf16 = resolve_precision(precision, device) == "bf16"
    extractor, stats, eps, note = pipeline(run_dir, model, backbone, image_size, device)
    report = {"model": note, "backbone": extractor.backbone, "image_size": extractor.image_size,
              "torch": torch.__version__, "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "threads": torch.get_num_threads()}
    if flops:
        report.update(flops_per_image(extractor, stats, eps, steps, grid, device))
    report["rows"] = [measure(extractor, stats, eps, b, steps, grid, device, bf16, compile, warmup, batches)
                      for b in batch_sizes]
    return report


def format_report(r) -> str:
    head = (f"{r['model']} | backbone {r['backbone']} @ {r['image_size']} px | {r['device_name']} "
            f"({r['threads']} threads) | torch {r['torch']}")
    if "backbone_gflop" in r:
        head += (f"\nper image: backbone {r['backbone_gflop']:.2f} GFLOP + inversion {r['inversion_gflop']:.2f} GFLOP; "
                 f"eps-network {r['eps_params_m']:.2f} M parameters")
    lines = [head, f"{'batch':>5} {'images/s':>10} {'ms/image':>9} {'ms/batch':>9} {'backbone img/s':>15} {'ratio':>6}  setting"]
    for x in r["rows"]:
        lines.append(f"{x['batch_size']:>5} {x['images_per_second']:>10.1f} {x['ms_per_image']:>9.2f} "
                     f"{x['ms_per_batch']:>9.1f} {x['backbone_images_per_second']:>15.1f} "
                     f"{x['images_per_second'] / x['backbone_images_per_second']:>6.2f}  S={x['steps']} {x['grid']}"
                     f"{' bf16' if x['bf16'] else ''}{' compile' if x['compile'] else ''}")
    return "\n".join(lines)

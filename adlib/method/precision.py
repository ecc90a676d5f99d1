"""Numeric precision of scoring: the one rule every command follows (`--precision {fp32,bf16}`).

Default: bf16 on CUDA, fp32 on the CPU (where bf16 autocast is slower and only worth it to measure parity).
bf16 means torch.autocast(bfloat16) around the eps-network; the backbone runs in float32 (BF16_BACKBONE).
Measured (docs/bench/bf16-parity.md, benchmarks/bf16_parity.py): a bf16 backbone moves the anomaly maps'
ranks (pixel Spearman 0.989-0.998 against fp32, below the 0.999 target, for every model: the 8-bit mantissa
of its convolutions, amplified by whitening), while a bf16 eps-network over fp32 features keeps them
(>= 0.9999) and the image AUROC within 0.002. The backbone is a small share of a DiT's scoring FLOPs, so the
speed is the eps-network's. What is not a matmul or a convolution stays float32 under autocast, EpsGaussian's
C x C products switch autocast off (they stay in the buffers' float32). The feature cache keys bf16 features
apart from fp32 ones (adlib/features/cache.py), so the two would never be mixed.
"""
import os
from contextlib import nullcontext

import torch

from adlib.errors import AdlibError

PRECISIONS = ("fp32", "bf16")
BF16_BACKBONE = False  # bf16 scoring leaves the backbone in fp32 (module doc: the maps' parity needs it)
BF16_BACKBONE_ENV = "ADLIB_BF16_BACKBONE"  # =1: the backbone in bf16 too (speed over the maps' exact ranks)


def resolve_precision(precision, device) -> str:
    """The precision to score with: `precision` as asked (None or "auto": bf16 on CUDA, fp32 elsewhere)."""
    kind = torch.device(device).type
    if precision in (None, "auto"):
        return "bf16" if kind == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise AdlibError(f"unknown --precision {precision!r}: choose fp32 or bf16 (default: bf16 on CUDA, fp32 on CPU)")
    return precision


def autocast(device, precision: str):
    """The context to run the eps-network in: bf16 autocast, or nothing for fp32 (backbone: backbone_autocast)."""
    if precision == "fp32":
        return nullcontext()
    resolve_precision(precision, device)  # one line for an unknown name
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def backbone_precision(precision: str) -> str:
    """The precision the backbone runs in when scoring at `precision`: fp32 unless BF16_BACKBONE or
    $ADLIB_BF16_BACKBONE=1."""
    return precision if BF16_BACKBONE or os.environ.get(BF16_BACKBONE_ENV) == "1" else "fp32"


def backbone_autocast(device, precision: str):
    """The context to run the backbone in at `precision` (none: it stays fp32 under bf16 scoring)."""
    return autocast(device, backbone_precision(precision))

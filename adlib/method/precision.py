"""Numeric precision of scoring: the one rule every command follows (`--precision {fp32,bf16}`).

Default: bf16 on CUDA, fp32 on the CPU (where bf16 autocast is slower and only worth it to measure parity).
bf16 means torch.autocast(bfloat16) around the backbone and the eps-network; what is not a matmul or a
convolution stays float32 under autocast, EpsGaussian's C x C products switch autocast off (they stay in the
buffers' float32), and features leave the backbone as float32. The feature cache keys bf16 features apart
from fp32 ones (adlib/features/cache.py), so the two are never mixed.
"""
from contextlib import nullcontext

import torch

from adlib.errors import AdlibError

PRECISIONS = ("fp32", "bf16")


def resolve_precision(precision, device) -> str:
    """The precision to score with: `precision` as asked (None or "auto": bf16 on CUDA, fp32 elsewhere)."""
    kind = torch.device(device).type
    if precision in (None, "auto"):
        return "bf16" if kind == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise AdlibError(f"unknown --precision {precision!r}: choose fp32 or bf16 (default: bf16 on CUDA, fp32 on CPU)")
    return precision


def autocast(device, precision: str):
    """The context to run the backbone and the eps-network in: bf16 autocast, or nothing for fp32."""
    if precision == "fp32":
        return nullcontext()
    resolve_precision(precision, device)  # one line for an unknown name
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)

"""Feature standardisation fitted on the training features: z -> (z - mean) / std.

`channel`: one mean/std per channel (C); `position`: one per channel and position (C x h x w), which
tells even a per-position denoiser what is usual where; `none`: identity.
"""
import torch

from .errors import AdlibError

MODES = ("none", "channel", "position")


def fit_stats(z: torch.Tensor, mode: str) -> dict:
    if mode not in MODES:
        raise AdlibError(f"unknown --standardize {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "none":
        return {"mean": torch.zeros(1, z.shape[1], 1, 1), "std": torch.ones(1, z.shape[1], 1, 1)}
    dims = (0, 2, 3) if mode == "channel" else (0,)
    return {"mean": z.mean(dims, keepdim=True), "std": z.std(dims, keepdim=True).clamp_min(1e-6)}


def standardize(z: torch.Tensor, stats: dict) -> torch.Tensor:
    return (z - stats["mean"].to(z.device)) / stats["std"].to(z.device)

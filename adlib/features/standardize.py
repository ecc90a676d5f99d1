"""Feature standardisation fitted on the training features, applied before diffusion.

`channel`:  z -> (z - mean_c) / std_c, one mean/std per channel (C);
`position`: one mean/std per channel and position (C x h x w), which tells even a per-position
            denoiser what is usual where;
`whiten`:   z -> L_ij^-1 (z - mean_ij) with L_ij L_ij^T = Sigma_ij + eps I, the full per-position
            covariance (as PaDiM), so that an untrained denoiser's NLL is PaDiM's Mahalanobis sum;
`none`:     identity.
"""
import torch

from adlib.errors import AdlibError

MODES = ("none", "channel", "position", "whiten")


def fit_stats(z: torch.Tensor, mode: str, eps: float = 0.01) -> dict:
    if mode not in MODES:
        raise AdlibError(f"unknown --standardize {mode!r}: choose one of {', '.join(MODES)}")
    c = z.shape[1]
    if mode == "none":
        return {"mean": torch.zeros(1, c, 1, 1), "std": torch.ones(1, c, 1, 1)}
    if mode == "whiten":
        x = z.double().flatten(2).permute(2, 0, 1)  # positions x N x C
        mean = x.mean(1, keepdim=True)
        cov = (x - mean).transpose(1, 2) @ (x - mean) / max(1, x.shape[1] - 1)
        chol = torch.linalg.cholesky(cov + eps * torch.eye(c, dtype=cov.dtype))
        return {"mean": mean.float().contiguous(), "chol": chol.float().contiguous()}
    dims = (0, 2, 3) if mode == "channel" else (0,)
    return {"mean": z.mean(dims, keepdim=True), "std": z.std(dims, keepdim=True).clamp_min(1e-6)}


def standardize(z: torch.Tensor, stats: dict) -> torch.Tensor:
    if "chol" in stats:
        n, c, h, w = z.shape
        x = (z.flatten(2).permute(2, 1, 0) - stats["mean"].to(z.device).transpose(1, 2))  # positions x C x N
        y = torch.linalg.solve_triangular(stats["chol"].to(z.device), x, upper=False)
        return y.permute(2, 1, 0).reshape(n, c, h, w)
    return (z - stats["mean"].to(z.device)) / stats["std"].to(z.device)

"""Feature standardisation fitted on the training features, applied before diffusion.

`channel`:  z -> (z - mean_c) / std_c, one mean/std per channel (C);
`position`: one mean/std per channel and position (C x h x w), which tells even a per-position
            denoiser what is usual where;
`whiten`:   z -> L_ij^-1 (z - mean_ij) with L_ij L_ij^T = Sigma_ij + eps I, the full per-position
            covariance (as PaDiM), so that an untrained denoiser's NLL is PaDiM's Mahalanobis sum;
`auto`:     z -> L_ij^-1 (z - mean_ij) with L_ij L_ij^T the Gaussian chosen on held-out normal features
            (adlib/features/covariance.py `choose_gaussian`: per-position covariances shrunk toward the pooled
            one by rho in 0..1, or one Gaussian shared by all positions): never rank-deficient, also with
            fewer images than channels; the choice is kept in the stats (`choice_record`);
`none`:     identity.
"""
import torch
from torch.utils.weak import WeakTensorKeyDictionary

from adlib.errors import AdlibError

MODES = ("none", "channel", "position", "whiten", "auto")


def fit_stats(z: torch.Tensor, mode: str, eps: float = 0.01, choice: dict = None) -> dict:
    """The statistics of `mode` fitted to z. `auto` with a `choice` (a `choice_record`, e.g. a run's
    config.standardize_choice) refits that Gaussian instead of choosing again (cross-fitting folds, compact
    runs) and keeps that record."""
    if mode not in MODES:
        raise AdlibError(f"unknown --standardize {mode!r}: choose one of {', '.join(MODES)}")
    c = z.shape[1]
    if mode == "none":
        return {"mean": torch.zeros(1, c, 1, 1), "std": torch.ones(1, c, 1, 1)}
    if mode == "auto":
        from adlib.features.covariance import choose_gaussian, fit_gaussian
        ch = {**choice, **fit_gaussian(z, choice["rho"], choice["shared"])} if choice else choose_gaussian(z)
        return {"mean": ch["mean"][:, None, :].float().contiguous(), "chol": ch["chol"].float().contiguous(),
                "choice_rho": torch.tensor(ch["rho"]), "choice_shared": torch.tensor(float(ch["shared"])),
                "choice_nll": torch.tensor(list(ch["held_out_nll"].values()), dtype=torch.float64),
                "choice_n": torch.tensor([ch["n_fit"], ch["n_held_out"]])}
    if mode == "whiten":
        x = z.double().flatten(2).permute(2, 0, 1)  # positions x N x C
        mean = x.mean(1, keepdim=True)
        cov = (x - mean).transpose(1, 2) @ (x - mean) / max(1, x.shape[1] - 1)
        chol = torch.linalg.cholesky(cov + eps * torch.eye(c, dtype=cov.dtype))
        return {"mean": mean.float().contiguous(), "chol": chol.float().contiguous()}
    dims = (0, 2, 3) if mode == "channel" else (0,)
    return {"mean": z.mean(dims, keepdim=True), "std": z.std(dims, keepdim=True).clamp_min(1e-6)}


def choice_record(stats: dict) -> dict:
    """What `auto` chose, as plain data ({} for the other modes): chosen, rho, shared, held_out_nll per candidate."""
    if "choice_nll" not in stats:
        return {}
    from adlib.features.covariance import RHOS
    names = [f"rho={r:g}" for r in RHOS] + ["shared"]
    nll = dict(zip(names, [round(float(v), 3) for v in stats["choice_nll"]]))
    shared = bool(stats["choice_shared"])
    rho = round(float(stats["choice_rho"]), 6)
    n_fit, n_held = (int(v) for v in stats["choice_n"])
    return {"chosen": "shared" if shared else f"rho={rho:g}", "rho": rho, "shared": shared,
            "criterion": "held-out NLL (mean per image, nats)", "n_fit": n_fit, "n_held_out": n_held,
            "held_out_nll": nll}


_WHITENERS = WeakTensorKeyDictionary()  # chol -> {device: L^-1}, freed with the stats the factor belongs to


def _whitener(chol: torch.Tensor, device: str) -> torch.Tensor:
    """L^-1 per position (P x C x C), inverted once in float64: standardize multiplies by it (on contiguous
    features) instead of a batched triangular solve, ~1.1x faster as a whole (`benchmarks/whitening_speed.py`).
    Kept by the factor's identity for as long as the factor lives: a run's stats are loaded once and never changed
    in place, and cross-fitting's many fold fits leave nothing behind."""
    per_device = _WHITENERS.setdefault(chol, {})
    if device not in per_device:
        eye = torch.eye(chol.shape[-1], dtype=torch.float64).expand(chol.shape)
        per_device[device] = torch.linalg.solve_triangular(chol.double(), eye, upper=False).to(
            device, torch.float32).contiguous()
    return per_device[device]


def standardize(z: torch.Tensor, stats: dict) -> torch.Tensor:
    if "chol" in stats:
        n, c, h, w = z.shape
        x = (z.flatten(2).permute(2, 1, 0) - stats["mean"].to(z.device).transpose(1, 2))  # positions x C x N
        y = torch.bmm(_whitener(stats["chol"], str(z.device)), x.to(torch.float32).contiguous())  # contiguous: 1.5x
        return y.to(z.dtype).permute(2, 1, 0).reshape(n, c, h, w)
    return (z - stats["mean"].to(z.device)) / stats["std"].to(z.device)


def unstandardize(z: torch.Tensor, stats: dict) -> torch.Tensor:
    """The raw features back from standardised ones (the inverse of `standardize`), for baselines on raw features."""
    if "chol" in stats:
        n, c, h, w = z.shape
        y = torch.linalg.matmul(stats["chol"].to(z.device), z.flatten(2).permute(2, 1, 0))  # positions x C x N
        return (y + stats["mean"].to(z.device).transpose(1, 2)).permute(2, 1, 0).reshape(n, c, h, w)
    return z * stats["std"].to(z.device) + stats["mean"].to(z.device)

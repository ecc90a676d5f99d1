"""Gaussian statistics of feature maps, and the label-free choice of which Gaussian fits the data.

Features z are N x C x h x w (P = h * w positions). Everything is float64.

    moments(z, window)   per-position mean (P x C) and covariance (P x C x C); window k pools k x k neighbours
                         (k >= 2 * grid - 1: one mean and one covariance shared by every position)
    shrink(S, rho)       (1 - rho) S_ij + rho target + ridge I, target = the pooled (mean over positions) S
                         or tr(S_ij) / C * I

`choose_gaussian(z)`: which Gaussian to whiten with, chosen from the normal images alone. Candidates:
per-position means with Sigma_ij = (1 - rho) S_ij + rho S_pooled + ridge I for rho in 0, 0.1, ..., 1
(rho = 0 is PaDiM's per-position Gaussian, rho = 1 a pooled covariance around per-position means), and
`shared`: one mean and one covariance for all positions (a translation-invariant Gaussian). Each is fitted
on four fifths of the training features (a seeded split) and scored by the mean negative log-likelihood of
the held-out fifth; the lowest wins, and is then refitted on all of them.

Why held-out likelihood: it is the one criterion that needs no anomalies (only normal images, which is all a
user has), and it measures exactly what goes wrong: with N <= C images a per-position covariance has rank
N - 1, so a new normal image has a large Mahalanobis distance in the directions the training images never
spanned and gets a poor held-out likelihood; on aligned parts with many images the per-position Gaussian
describes each position better than any pooled one and wins. Scored images are all normal, so the choice
cannot look at a label. The ridge keeps every eigenvalue >= ridge > 0 whatever is chosen.
"""
import math

import torch
import torch.nn.functional as F

TARGETS = ("pooled", "identity")
RHOS = tuple(i / 10 for i in range(11))
HELD_OUT = 5  # one image in HELD_OUT is held out to score the candidates
MIN_IMAGES = 5
RIDGE = 0.01  # added to every candidate's covariance: each eigenvalue >= RIDGE


def moments(z: torch.Tensor, window: int = 1):
    """Per-position mean (P x C) and unbiased covariance (P x C x C) in float64, pooled over k x k windows."""
    n, c, h, w = z.shape
    x = z.double().flatten(2)                                   # N x C x P
    m1, m2 = x.mean(0).T, torch.einsum("ncp,ndp->pcd", x, x) / n
    count = torch.full((h * w, 1, 1), float(n), dtype=torch.float64)
    if window > 1:
        if window % 2 == 0:
            raise ValueError(f"window must be odd, got {window}")

        def pool(a):  # P x ... -> the mean over each position's window (clipped at the borders)
            maps = a.reshape(h, w, -1).permute(2, 0, 1)[None]
            out = F.avg_pool2d(maps, window, 1, window // 2, count_include_pad=False)
            return out[0].permute(1, 2, 0).reshape(a.shape)
        m1, m2 = pool(m1), pool(m2)
        count = n * _window_sizes(h, w, window)                 # samples behind each estimate
    cov = (m2 - m1[:, :, None] * m1[:, None, :]) * (count / (count - 1).clamp_min(1))
    return m1, cov


def _window_sizes(h, w, k):
    """How many positions each position's k x k window holds (P x 1 x 1)."""
    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    return (F.avg_pool2d(ones, k, 1, k // 2, count_include_pad=True) * k * k).reshape(h * w, 1, 1)


def shrink(cov: torch.Tensor, rho, target: str = "pooled", ridge: float = RIDGE) -> torch.Tensor:
    """(1 - rho) S + rho target + ridge I for P x C x C covariances; rho a number or one per position."""
    if target not in TARGETS:
        raise ValueError(f"unknown shrinkage target {target!r}: choose one of {', '.join(TARGETS)}")
    c = cov.shape[-1]
    eye = torch.eye(c, dtype=cov.dtype)
    if target == "pooled":
        goal = cov.mean(0, keepdim=True)
    else:
        goal = cov.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] * eye
    rho = torch.as_tensor(rho, dtype=cov.dtype).reshape(-1, 1, 1)
    return (1 - rho) * cov + rho * goal + ridge * eye


def gaussian_nll(z: torch.Tensor, mean: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """-log N(z; mu, L L^T) per image (N,), summed over positions: mean P x C, chol P x C x C (or 1 x C x C)."""
    d = (z.double().flatten(2).permute(2, 1, 0) - mean[:, :, None])          # P x C x N
    y = torch.linalg.solve_triangular(chol, d, upper=False)
    p, c = mean.shape
    logdet = 2 * chol.diagonal(dim1=1, dim2=2).log().sum() * (p // chol.shape[0])  # a 1 x C x C chol is shared
    return 0.5 * (y.pow(2).sum((0, 1)) + logdet + p * c * math.log(2 * math.pi))


def candidates(z: torch.Tensor, rhos=RHOS, ridge: float = RIDGE, shared: bool = True):
    """(name, mean P x C, Sigma P x C x C) of each candidate Gaussian fitted to z, one at a time (module docstring);
    the shared one's Sigma is 1 x C x C (it broadcasts)."""
    grid = z.shape[-1]
    if len(rhos):
        mean, cov = moments(z)
        for rho in rhos:
            yield f"rho={rho:g}", mean, shrink(cov, rho, "pooled", ridge)
        del cov
    if shared:  # all N * P vectors as one sample (what moments(z, 2 * grid - 1) gives, without pooling maps)
        x = z.double().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        m = x.mean(0)
        s = (x - m).T @ (x - m) / max(1, len(x) - 1)
        yield "shared", m.expand(grid * z.shape[-2], -1), (s + ridge * torch.eye(len(s), dtype=s.dtype))[None]


def choose_gaussian(z: torch.Tensor, rhos=RHOS, ridge: float = RIDGE, shared: bool = True, seed: int = 0) -> dict:
    """The candidate Gaussian most likely on a held-out fifth of z, refitted on all of z.

    Returns {"chosen": name, "rho": float (1.0 for shared), "shared": bool, "held_out_nll": {name: mean NLL
    per image of the held-out images}, "n_fit", "n_held_out", "mean": P x C, "chol": P x C x C}."""
    z = z.detach().cpu()
    if len(z) < MIN_IMAGES:
        raise ValueError(f"choosing a Gaussian needs at least {MIN_IMAGES} images, got {len(z)}")
    held = max(1, len(z) // HELD_OUT)
    order = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))
    table = {}
    for name, mean, sigma in candidates(z[order[held:]], rhos, ridge, shared):
        table[name] = gaussian_nll(z[order[:held]], mean, torch.linalg.cholesky(sigma)).mean().item()
    best = min(table, key=table.get)
    rho, shared = (1.0 if best == "shared" else float(best[4:])), best == "shared"
    return {"chosen": best, "rho": rho, "shared": shared, "held_out_nll": table, "n_fit": len(z) - held,
            "n_held_out": held, **fit_gaussian(z, rho, shared, ridge)}


def fit_gaussian(z: torch.Tensor, rho: float, shared: bool = False, ridge: float = RIDGE) -> dict:
    """{"mean": P x C, "chol": P x C x C} of one candidate (rho, or the shared Gaussian) fitted to all of z: what
    `choose_gaussian` refits once it has chosen, and what each cross-fitting fold refits with the run's choice."""
    z = z.detach().cpu()
    _, mean, sigma = next(candidates(z, [] if shared else [rho], ridge, shared))
    return {"mean": mean.contiguous(), "chol": torch.linalg.cholesky(sigma).expand(len(mean), -1, -1).contiguous()}

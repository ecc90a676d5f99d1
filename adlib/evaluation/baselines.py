"""Baselines on the same features, for side-by-side comparison. Each gives a B x h x w anomaly map;
the image score is its maximum.

- Reconstruction with the diffusion model's own weights: perturb z to t_r = r (T - 1), denoise in K DDIM
  steps, map = || z_hat - z || per position (accurate only with many steps: the contrast to InvAD).
  The noise is drawn on the features' device, per sample from a seed and the sample's index, so maps do
  not depend on the batch size.
- PaDiM-style: per-position Gaussian N(mu_ij, Sigma_ij + eps I), map = Mahalanobis distance. Sigma is
  inverted through its Cholesky factor (torch.linalg.inv of these near-singular matrices failed here).
- kNN patch memory (PatchCore-style): distance of each position's feature to its nearest neighbour
  among a seeded random subsample of all training positions.
"""
import torch

from adlib.method.inversion import sample
from adlib.schedule import T, add_noise


def map_to_image_score(maps: torch.Tensor):
    return maps.flatten(1).max(1).values.double().numpy()


def sample_noise(like: torch.Tensor, seed: int = 0, first: int = 0) -> torch.Tensor:
    """N(0, I) noise shaped like `like`, drawn on its device; sample i from its own generator seeded by
    (seed, first + i), so a sample's noise does not depend on the batch it comes in. The CPU generator keeps
    only 32 bits of a seed: seeds are spread over them by an odd multiplier (0x9E3779B1), not by a shift."""
    def one(i):
        g = torch.Generator(device=like.device).manual_seed((seed * 0x9E3779B1 + first + i) & 0xFFFFFFFF)
        return torch.randn(like.shape[1:], generator=g, device=like.device, dtype=like.dtype)
    return torch.stack([one(i) for i in range(len(like))]) if len(like) else torch.empty_like(like)


@torch.no_grad()
def reconstruct(model, z: torch.Tensor, r: float, k: int, seed: int = 0, first: int = 0) -> torch.Tensor:
    """z_hat: z noised to t_r = r (T - 1) with seeded noise, then K DDIM steps down to abar = 1.
    first: the index of z[0] among all samples scored with this seed (see `sample_noise`)."""
    t_r = max(1, int(round(r * (T - 1))))
    points = sorted({int(round(i * t_r / k)) for i in range(k + 1)})
    x = add_noise(z, torch.full((z.shape[0],), t_r, device=z.device), sample_noise(z, seed, first))
    return sample(model, x, points, clean=True)


def reconstruction_map(model, z: torch.Tensor, r: float, k: int, seed: int = 0, first: int = 0) -> torch.Tensor:
    """||z_hat - z|| per position, z_hat = `reconstruct(...)`."""
    return (reconstruct(model, z, r, k, seed, first) - z).norm(dim=1)


class PaDiM:
    def __init__(self, eps: float = 0.01):
        self.eps = eps

    def fit(self, z: torch.Tensor) -> "PaDiM":
        x = z.double().flatten(2).permute(2, 0, 1)  # positions x N x C
        self.mean = x.mean(1, keepdim=True)
        d = x - self.mean
        cov = d.transpose(1, 2) @ d / max(1, x.shape[1] - 1)
        cov = cov + self.eps * torch.eye(cov.shape[-1], dtype=cov.dtype)
        self.chol = torch.linalg.cholesky(cov)
        self.shape = z.shape[-2:]
        return self

    @torch.no_grad()
    def map(self, z: torch.Tensor) -> torch.Tensor:
        d = (z.double().flatten(2).permute(2, 0, 1) - self.mean).transpose(1, 2)  # positions x C x B
        y = torch.linalg.solve_triangular(self.chol, d, upper=False)  # Sigma^-1/2 (x - mu)
        return y.pow(2).sum(1).sqrt().T.reshape(z.shape[0], *self.shape).float()


class KNN:
    def __init__(self, fraction: float = 0.1, seed: int = 0):
        self.fraction, self.seed = fraction, seed

    def fit(self, z: torch.Tensor) -> "KNN":
        bank = z.flatten(2).transpose(1, 2).reshape(-1, z.shape[1])
        n = max(1, int(self.fraction * len(bank)))
        self.bank = bank[torch.randperm(len(bank), generator=torch.Generator().manual_seed(self.seed))[:n]]
        return self

    @torch.no_grad()
    def map(self, z: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        q = z.flatten(2).transpose(1, 2).reshape(-1, z.shape[1])
        d = torch.cat([torch.cdist(q[i:i + chunk], self.bank).min(1).values for i in range(0, len(q), chunk)])
        return d.reshape(z.shape[0], *z.shape[-2:])

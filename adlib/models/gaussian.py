"""EpsGaussian: the closed-form optimal eps for features distributed N(mu, Sigma) at each position.

For z ~ N(mu, Sigma) and x_t = sqrt(abar) z + sqrt(1 - abar) n, the best noise prediction is linear:

    eps*(x, t) = sqrt(1 - abar) (abar Sigma + (1 - abar) I)^-1 (x - sqrt(abar) mu)
               = U diag(sqrt(1 - abar) / (abar lam + 1 - abar)) U^T (x - sqrt(abar) mu),   Sigma = U diag(lam) U^T

(two C x C products per position; abar = 0, i.e. t = T, gives eps = x). The exact probability-flow map to
abar -> 0 whitens, x -> Sigma^-1/2 (x - mu) (DESIGN §6): the latent's NLL is then half the sum of squared
Mahalanobis distances and its norm map is PaDiM's distance map. Few DDIM steps whiten each eigen-direction
only up to a gain < 1 that depends on lam (derived in tests/test_gaussian_eps.py).

Fitting: no gradient steps; float64, batched over the P = h*w positions.

    S_ij   = sample covariance at position (i, j), or of all samples in its k x k window (`window` = k, odd;
             the mean is the window's too, and k >= 2 * grid - 1 makes one Gaussian shared by all positions)
    target = "pooled": the mean of S_ij over positions | "identity": tr(S_ij) / C * I
    Sigma  = (1 - rho) S_ij + rho target + ridge I,      rho = `shrinkage` in [0, 1]

or `shrinkage="auto"`: the rho in 0, 0.1, ..., 1 under which a held-out fifth of z (seeded split) is most
likely (`select_shrinkage`; DESIGN §6: choose it on held-out normal data, not by hand), then fitted on all z;
or `shrinkage="ledoit-wolf"`: rho per position by Ledoit & Wolf (2004) toward the scaled identity (the
coefficient of sklearn.covariance.ledoit_wolf_shrinkage). The rho used is kept in the buffer `rho` (P,).
The default, rho = 0 with ridge = 0.01, is PaDiM's Gaussian.
"""
import math
from contextlib import nullcontext

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from adlib.features.covariance import TARGETS, moments, shrink  # noqa: F401 (the statistics live a floor down)
from adlib.schedule import ABAR


def ledoit_wolf(z: torch.Tensor, cov: torch.Tensor = None) -> torch.Tensor:
    """Ledoit-Wolf shrinkage toward the scaled identity at each position (P,): sklearn's formula, batched.
    cov: the positions' unbiased covariances (`moments(z)[1]`) if already computed."""
    x = z.double().flatten(2).permute(2, 0, 1)                  # P x N x C
    x = x - x.mean(1, keepdim=True)
    n, p = x.shape[1:]
    emp = (moments(z)[1] if cov is None else cov) * ((n - 1) / n)   # biased covariance X^T X / n
    trace = emp.diagonal(dim1=1, dim2=2).sum(1)
    mu = trace / p
    beta_ = (x.pow(2).sum(2) ** 2).sum(1)                       # sum of the coefficients of X2^T X2
    delta_ = emp.pow(2).sum((1, 2))                             # sum of the squared coefficients of X^T X / n^2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * trace + p * mu ** 2) / p
    beta = torch.minimum(beta, delta)
    return torch.where(beta == 0, torch.zeros_like(beta), beta / delta)


class EpsGaussian(ModelMixin, ConfigMixin):
    """eps*(x, t) of a per-position Gaussian. A fresh one is N(0, I) everywhere; `fit_base(z)` fits it."""

    @register_to_config
    def __init__(self, channels: int = 192, grid: int = 16, shrinkage=0.0, target: str = "pooled",
                 ridge: float = 0.01, window: int = 1):
        super().__init__()
        p = grid * grid
        self.register_buffer("mean", torch.zeros(channels, grid, grid))        # mu, C x h x w
        self.register_buffer("eigvec", torch.eye(channels).repeat(p, 1, 1))   # U, P x C x C (columns)
        self.register_buffer("eigval", torch.ones(p, channels))               # lam, P x C
        self.register_buffer("rho", torch.zeros(p))                           # the shrinkage used, P

    @classmethod
    def fit(cls, z: torch.Tensor, dtype=torch.float32, **settings) -> "EpsGaussian":
        """A Gaussian eps fitted to features z (N x C x h x w); settings: shrinkage, target, ridge, window."""
        model = cls(channels=z.shape[1], grid=z.shape[-1], **settings)
        torch.nn.Module.to(model, dtype)  # (ModelMixin.to warns about float32 modules there are none of)
        return model.fit_base(z)

    @torch.no_grad()
    def fit_base(self, z: torch.Tensor) -> "EpsGaussian":
        """Fit mu, U, lam in place to features z with this model's settings (float64, then the buffers' dtype)."""
        cfg, z = self.config, z.detach().cpu()
        if tuple(z.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(f"features of shape {tuple(z.shape[1:])} do not fit a model for {tuple(self.mean.shape)}")
        mean, cov = moments(z, cfg.window)
        if cfg.shrinkage == "ledoit-wolf":
            if cfg.window > 1:
                raise ValueError("shrinkage='ledoit-wolf' is per position: use window=1")
            rho, target = ledoit_wolf(z, cov), "identity"
        elif cfg.shrinkage == "auto":  # chosen on a held-out fifth of z, then fitted on all of it
            held = max(1, len(z) // 5)
            order = torch.randperm(len(z), generator=torch.Generator().manual_seed(0))
            rho, target = select_shrinkage(z[order[held:]], z[order[:held]], None, cfg.target, cfg.ridge,
                                           cfg.window)[0], cfg.target
        elif isinstance(cfg.shrinkage, (int, float)) and 0 <= cfg.shrinkage <= 1:
            rho, target = float(cfg.shrinkage), cfg.target
        else:
            raise ValueError(f"shrinkage must be in [0, 1], 'auto' or 'ledoit-wolf', got {cfg.shrinkage!r}")
        lam, vec = torch.linalg.eigh(shrink(cov, rho, target, cfg.ridge))
        self.mean.copy_(mean.T.reshape(self.mean.shape))
        self.eigval.copy_(lam.clamp_min(0))
        self.eigvec.copy_(vec)
        self.rho.copy_(torch.as_tensor(rho).expand(self.rho.shape))
        return self

    def _rotate(self, x, mean_scale):
        """U^T (x - s mu) at each position: B x C x h x w -> B x C x P, in the buffers' dtype."""
        d = x.to(self.eigvec.dtype).flatten(2) - mean_scale * self.mean.flatten(1)
        return torch.einsum("pck,bcp->bkp", self.eigvec, d)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        kind = x.device.type  # autocast off, where the device has one: bf16 would round the C x C products
        with torch.autocast(kind, enabled=False) if torch.amp.is_autocast_available(kind) else nullcontext():
            t = torch.as_tensor(t, device=x.device).reshape(-1).long()
            abar = ABAR.to(x.device)[t].expand(x.shape[0])[:, None, None]    # B x 1 x 1, float64
            a, b = abar.to(self.eigval.dtype), (1 - abar).to(self.eigval.dtype)  # 1 - abar before rounding
            gain = b.sqrt() / (a * self.eigval.T + b)                           # B x C x P
            eps = torch.einsum("pck,bkp->bcp", self.eigvec, gain * self._rotate(x, a.sqrt()))
        return eps.reshape(x.shape)

    @torch.no_grad()
    def mahalanobis_map(self, z: torch.Tensor) -> torch.Tensor:
        """sqrt((x - mu)^T Sigma^-1 (x - mu)) at each position: B x h x w (PaDiM's distance map)."""
        u = self._rotate(z, 1.0)
        return (u ** 2 / self.eigval.T).sum(1).sqrt().reshape(z.shape[0], *z.shape[-2:])

    @torch.no_grad()
    def nll(self, z: torch.Tensor) -> torch.Tensor:
        """-log N(z; mu, Sigma) per image (B,): sum over positions of (maha^2 + log det Sigma + C log 2 pi) / 2."""
        maha2 = self.mahalanobis_map(z).double().pow(2).flatten(1).sum(1)
        logdet = self.eigval.double().log().sum()
        return 0.5 * (maha2 + logdet + self.eigval.numel() * math.log(2 * math.pi))


def select_shrinkage(z_train: torch.Tensor, z_val: torch.Tensor, rhos=None, target: str = "pooled",
                     ridge: float = 0.01, window: int = 1):
    """The rho whose Gaussian gives held-out normal features z_val the lowest mean NLL: (best, {rho: NLL})."""
    rhos = [i / 10 for i in range(11)] if rhos is None else rhos
    z_train, z_val = z_train.detach().cpu(), z_val.detach().cpu()
    mean, cov = moments(z_train, window)
    model = EpsGaussian(channels=z_train.shape[1], grid=z_train.shape[-1], target=target, ridge=ridge,
                        window=window).double()
    model.mean.copy_(mean.T.reshape(model.mean.shape))
    table = {}
    for rho in rhos:
        lam, vec = torch.linalg.eigh(shrink(cov, rho, target, ridge))
        model.eigval.copy_(lam.clamp_min(0)), model.eigvec.copy_(vec)
        table[rho] = model.nll(z_val).mean().item()
    return min(table, key=table.get), table

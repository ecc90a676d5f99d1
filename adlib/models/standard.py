"""EpsStandard: the closed-form eps of N(0, I), for features already whitened by the chosen Gaussian.

`--standardize auto` (adlib/features/covariance.py) whitens each position by the Gaussian most likely on held-out
normal features; in those coordinates normal features are N(0, I) under that Gaussian, whose optimal eps is

    eps*(x, t) = sqrt(1 - abar_t) x          (EpsGaussian with mu = 0, Sigma = I)

so S DDIM steps scale x by one global factor (DESIGN §6: rankings survive any S) and the norm map is the chosen
Gaussian's Mahalanobis distance map. Nothing is fitted here: refitting a per-position covariance in whitened
coordinates would bring back the rank deficiency (rank <= N - 1 < C) the choice avoided.
"""
import torch

from adlib.models.gaussian import EpsGaussian
from adlib.schedule import ABAR


class EpsStandard(EpsGaussian):
    """eps of the standard normal at every position; `fit_base` checks shapes and fits nothing. `forward` is
    EpsGaussian's with mu = 0, U = I, lam = 1 written out: one multiply instead of two P x C x C rotations a step
    (tests/test_models.py checks the two agree)."""

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        dev = self.mean.device  # the model's device: an input elsewhere is refused, as EpsGaussian refuses it
        t = torch.as_tensor(t, device=dev).reshape(-1).long()
        b = (1 - ABAR.to(dev)[t].expand(x.shape[0])).sqrt()  # float64, as EpsGaussian's gain
        return (b.to(torch.float32)[:, None, None, None] * x.float()).to(x.dtype)

    def eps_scale(self, t: int) -> float:
        """c_t of eps = c_t x (= sqrt(1 - abar_t)): lets `invert` fold the S steps into one multiply."""
        return float((1 - ABAR[int(t)]).sqrt())

    @torch.no_grad()
    def fit_base(self, z: torch.Tensor) -> "EpsStandard":
        if tuple(z.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(f"features of shape {tuple(z.shape[1:])} do not fit a model for {tuple(self.mean.shape)}")
        return self

"""EpsResidual: a Gaussian base plus a learned residual,  eps(x, t) = eps_gauss(x, t) + r_theta(x, t).

The base (EpsGaussian) is closed form and fitted, not trained: its statistics are buffers, saved in the
state dict with the residual's weights. r_theta is one of the eps-network families (mlp, conv, dit, unet)
with its output layer at zero, so a fresh model is the Gaussian's eps exactly and training learns only
what the Gaussian misses. Only r_theta (`model.net`) has parameters; the base is `model.base`.

`base_model="standard"` makes the base EpsStandard (eps of N(0, I), for `--standardize auto` features: the
chosen Gaussian is then the whitening, and the residual learns what that Gaussian misses; presets `standard+...`).
The base comes from `base=` (an EpsGaussian, or the folder of a saved one) or from `fit_base(z)`, the
hook a training loop calls with the training features before the first step. `denoising_loss` measures
base alone vs base + residual on held-out features: a residual that does not go below its base learned nothing.
"""
import os

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from adlib.models.conv import EpsConv
from adlib.models.dit import EpsDiT
from adlib.models.gaussian import EpsGaussian
from adlib.models.mlp import EpsMLP
from adlib.models.standard import EpsStandard
from adlib.models.unet import EpsUNet
from adlib.schedule import T, add_noise

RESIDUALS = {"mlp": EpsMLP, "conv": EpsConv, "dit": EpsDiT, "unet": EpsUNet}
BASES = {"gaussian": EpsGaussian, "standard": EpsStandard}


class EpsResidual(ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True  # reaches the residual's blocks (mlp, dit, unet)
    ignore_for_config = ["base"]  # the base's numbers live in the state dict, not in config.json

    @register_to_config
    def __init__(self, channels: int = 192, grid: int = 16, residual: str = "mlp", residual_kwargs: dict = None,
                 base_kwargs: dict = None, base=None, base_model: str = "gaussian"):
        super().__init__()
        if residual not in RESIDUALS:
            raise ValueError(f"unknown residual {residual!r}: choose one of {', '.join(RESIDUALS)}")
        if base_model not in BASES:
            raise ValueError(f"unknown base_model {base_model!r}: choose one of {', '.join(BASES)}")
        self.base = BASES[base_model](channels=channels, grid=grid, **(base_kwargs or {}))
        self.net = RESIDUALS[residual](channels=channels, grid=grid, **(residual_kwargs or {}))
        if residual == "unet":  # the other families start at eps = 0 already (adaLN-Zero)
            nn.init.zeros_(self.net.unet.conv_out.weight), nn.init.zeros_(self.net.unet.conv_out.bias)
        if base is not None:
            self.set_base(base)

    def set_base(self, base) -> "EpsResidual":
        """Take the statistics (and fit settings) of an EpsGaussian, or of the folder of a saved one."""
        if self.base.mean.is_meta:  # a shapes-only build (torch.device("meta")): nothing to copy
            return self
        if isinstance(base, (str, os.PathLike)):
            base = EpsGaussian.from_pretrained(base)
        self.base.load_state_dict(base.state_dict())
        settings = {k: base.config[k] for k in ("shrinkage", "target", "ridge", "window")}
        self.base.register_to_config(**settings)
        self.register_to_config(base_kwargs=settings)
        return self

    def fit_base(self, z: torch.Tensor) -> "EpsResidual":
        """Fit the Gaussian base to training features z (N x C x h x w) with its settings (base_kwargs)."""
        self.base.fit_base(z)
        return self

    def forward(self, x, t):
        return self.base(x, t) + self.net(x, t).float()


@torch.no_grad()
def denoising_loss(model, z: torch.Tensor, seed: int = 0, n_t: int = 8, batch_size: int = 64, t: int = None) -> float:
    """E ||n - eps(x_t, t)||^2 over z, n_t draws of (t ~ U{0..T-1}, n ~ N(0, I)) per feature map, all from `seed`:
    the same t and noise for every model, so e.g. `model.base` and `model` compare on equal terms.
    t given: that timestep for every draw (only the noise is drawn), the loss at one t."""
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(n_t):
        if t is None:
            steps = torch.randint(0, T, (len(z),), generator=g).to(z.device)
        else:
            steps = torch.full((len(z),), int(t), dtype=torch.long, device=z.device)
        noise = torch.randn(z.shape, generator=g, dtype=z.dtype).to(z.device)
        for i in range(0, len(z), batch_size):
            ti, ni = steps[i:i + batch_size], noise[i:i + batch_size]
            eps = model(add_noise(z[i:i + batch_size], ti, ni), ti).to(z.dtype)
            total += (eps - ni).pow(2).sum().item()
    return total / (n_t * z.numel())

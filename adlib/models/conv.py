"""EpsConv: a small convolutional eps-network in which each position also sees its k x k neighbours.

    h   = Conv1x1(x)
    h  <- h + g * Conv1x1(GELU(Conv_kxk(LN(h)(1 + s) + b))),   (b, s, g) = Linear(time(t)), zero-init
    eps = Conv1x1(h (1 + s') + b'),                           output layer zero-init

LN normalises the channels of each position. A fresh EpsConv is eps = 0 (adaLN-Zero), so as the residual
of a Gaussian base (EpsResidual) it starts as that base exactly. No final LayerNorm (see blocks.py).
"""
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from adlib.models.blocks import TimeEmbed


def _layer_norm(x):
    """LayerNorm over the channels at each position of a B x C x h x w map, without affine."""
    return F.layer_norm(x.transpose(1, -1), x.shape[1:2], eps=1e-6).transpose(1, -1)


class ConvBlock(nn.Module):
    def __init__(self, dim: int, kernel: int = 3, mlp_ratio: float = 2.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.body = nn.Sequential(nn.Conv2d(dim, hidden, kernel, padding=kernel // 2), nn.GELU(approximate="tanh"),
                                  nn.Conv2d(hidden, dim, 1))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        nn.init.zeros_(self.ada[1].weight), nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, c):
        b, s, g = self.ada(c)[:, :, None, None].chunk(3, dim=1)
        return x + g * self.body(_layer_norm(x) * (1 + s) + b)


class EpsConv(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, channels: int = 192, hidden: int = 128, depth: int = 2, kernel: int = 3,
                 mlp_ratio: float = 2.0, grid: int = 16):
        super().__init__()
        self.proj_in = nn.Conv2d(channels, hidden, 1)
        self.time = TimeEmbed(hidden)
        self.blocks = nn.ModuleList(ConvBlock(hidden, kernel, mlp_ratio) for _ in range(depth))
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.proj_out = nn.Conv2d(hidden, channels, 1)
        for layer in (self.ada_out[1], self.proj_out):  # start as eps = 0
            nn.init.zeros_(layer.weight), nn.init.zeros_(layer.bias)

    def forward(self, x, t):
        h = self.proj_in(x.to(self.proj_in.weight.dtype))
        c = self.time(t)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada_out(c)[:, :, None, None].chunk(2, dim=1)
        return self.proj_out(h * (1 + scale) + shift)

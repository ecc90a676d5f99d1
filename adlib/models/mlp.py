"""EpsMLP: the paper's cheapest eps-network, a per-position MLP with adaLN timestep conditioning.

Each of the h*w positions is denoised on its own (optionally told where it is by a position embedding):
eps_ij = MLP(x_ij, t [, pos_ij]).
"""
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from adlib.models.blocks import _TokenDenoiser


class EpsMLP(_TokenDenoiser, ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, channels: int = 192, hidden: int = 128, depth: int = 4, mlp_ratio: float = 4.0,
                 grid: int = 16, pos_embed: str = "none", final_norm: bool = False):
        super().__init__()
        self._build(channels, hidden, depth, 0, mlp_ratio, grid, pos_embed, final_norm)

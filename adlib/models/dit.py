"""EpsDiT: the adaLN-Zero blocks of EpsMLP with self-attention across the h*w positions (a DiT, patch 1)."""
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from adlib.models.blocks import _TokenDenoiser


class EpsDiT(_TokenDenoiser, ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, channels: int = 192, hidden: int = 256, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 4.0, grid: int = 16, pos_embed: str = "sincos", final_norm: bool = False):
        super().__init__()
        self._build(channels, hidden, depth, heads, mlp_ratio, grid, pos_embed, final_norm)

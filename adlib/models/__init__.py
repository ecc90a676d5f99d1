"""epsilon-networks eps_theta(x_t, t) on C x h x w feature maps, as diffusers ModelMixin/ConfigMixin.

All three are saved and loaded with `save_pretrained` / `from_pretrained` (safetensors):
- EpsMLP: the paper's cheapest model, a per-position MLP with adaLN timestep conditioning; each of the
  h*w positions is denoised on its own (optionally told where it is by a learned position embedding).
- EpsDiT: the same adaLN-Zero blocks with self-attention across positions (a DiT with patch size 1).
- EpsUNet: diffusers' UNet2DModel on the feature map.
"""
import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import Timesteps, TimestepEmbedding, get_2d_sincos_pos_embed
from torch import nn


class TimeEmbed(nn.Module):
    """Sinusoidal features of t, then an MLP: t -> c in R^dim."""

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freqs = Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.mlp = TimestepEmbedding(freq_dim, dim)

    def forward(self, t):
        return self.mlp(self.freqs(t).to(self.mlp.linear_1.weight.dtype))


class AdaLNBlock(nn.Module):
    """x + g1 * Attn(LN(x)(1 + s1) + b1); x + g2 * MLP(LN(x)(1 + s2) + b2); (b, s, g) = Linear(c), zero-init."""

    def __init__(self, dim: int, heads: int = 0, mlp_ratio: float = 4.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True) if heads else None
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6) if heads else None
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, (6 if heads else 3) * dim))
        nn.init.zeros_(self.ada[1].weight), nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, c):
        mods = self.ada(c).unsqueeze(1).chunk(6 if self.attn else 3, dim=-1)
        if self.attn is not None:
            b1, s1, g1 = mods[3:]
            h = self.norm1(x) * (1 + s1) + b1
            x = x + g1 * self.attn(h, h, h, need_weights=False)[0]
        b2, s2, g2 = mods[:3]
        return x + g2 * self.mlp(self.norm2(x) * (1 + s2) + b2)


class _TokenDenoiser:  # a mixin listed first, so nn.Module's forward does not shadow ours
    """Shared body: B x C x h x w -> h*w tokens -> adaLN blocks -> B x C x h x w."""

    def _build(self, channels, hidden, depth, heads, mlp_ratio, grid, pos_embed, final_norm):
        self.proj_in = nn.Linear(channels, hidden)
        self.time = TimeEmbed(hidden)
        if pos_embed == "learned":
            self.pos = nn.Parameter(torch.zeros(1, grid * grid, hidden))
        elif pos_embed == "sincos":
            self.register_buffer("pos", get_2d_sincos_pos_embed(hidden, grid, output_type="pt").float()[None])
        else:
            self.pos = None
        self.blocks = nn.ModuleList(AdaLNBlock(hidden, heads, mlp_ratio) for _ in range(depth))
        self.gradient_checkpointing = False  # diffusers' enable_gradient_checkpointing() turns it on
        # DiT ends with a LayerNorm, which makes |eps| at each position independent of |x|: an input far
        # outside the training distribution then gets an ordinary-sized eps and its anomaly is lost.
        # Without it the residual stream (which carries proj_in(x) linearly) reaches the output.
        self.norm_out = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6) if final_norm else nn.Identity()
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.proj_out = nn.Linear(hidden, channels)
        for layer in (self.ada_out[1], self.proj_out):  # start as eps = 0: adaLN-Zero
            nn.init.zeros_(layer.weight), nn.init.zeros_(layer.bias)

    def forward(self, x, t):
        B, C, H, W = x.shape
        h = self.proj_in(x.flatten(2).transpose(1, 2).to(self.proj_in.weight.dtype))
        if self.pos is not None:
            h = h + self.pos
        c = self.time(t)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                h = self._gradient_checkpointing_func(block, h, c)  # recomputed in backward: saves memory
            else:
                h = block(h, c)
        shift, scale = self.ada_out(c).unsqueeze(1).chunk(2, dim=-1)
        out = self.proj_out(self.norm_out(h) * (1 + scale) + shift)
        return out.transpose(1, 2).reshape(B, C, H, W)


class EpsMLP(_TokenDenoiser, ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, channels: int = 192, hidden: int = 128, depth: int = 4, mlp_ratio: float = 4.0,
                 grid: int = 16, pos_embed: str = "none", final_norm: bool = False):
        super().__init__()
        self._build(channels, hidden, depth, 0, mlp_ratio, grid, pos_embed, final_norm)


class EpsDiT(_TokenDenoiser, ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, channels: int = 192, hidden: int = 256, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 4.0, grid: int = 16, pos_embed: str = "sincos", final_norm: bool = False):
        super().__init__()
        self._build(channels, hidden, depth, heads, mlp_ratio, grid, pos_embed, final_norm)


class EpsUNet(ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True  # UNet2DModel's blocks carry the switch

    @register_to_config
    def __init__(self, channels: int = 192, grid: int = 16, widths: tuple = (128, 256), layers_per_block: int = 1):
        super().__init__()
        n = len(widths)
        self.unet = UNet2DModel(
            sample_size=grid, in_channels=channels, out_channels=channels, block_out_channels=tuple(widths),
            layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) + ("AttnDownBlock2D",) * (n - 1),
            up_block_types=("AttnUpBlock2D",) * (n - 1) + ("UpBlock2D",), norm_num_groups=32)

    def forward(self, x, t):
        return self.unet(x.to(self.unet.conv_in.weight.dtype), t).sample


MODELS = {"mlp": EpsMLP, "dit": EpsDiT, "unet": EpsUNet}
PRESETS = {  # name -> (class, kwargs); "dit-paper" is the paper's 1.2 B-parameter DiT (a GPU model)
    "mlp": ("mlp", {}),
    "mlp-pos": ("mlp", dict(pos_embed="learned")),
    "dit": ("dit", {}),
    "unet": ("unet", {}),
    "dit-paper": ("dit", dict(hidden=2048, depth=16, heads=8)),
}


def build_model(name: str, channels: int, grid: int, **overrides) -> ModelMixin:
    """A fresh eps-network from a preset name (see PRESETS) for C = channels, h = w = grid."""
    from .errors import AdlibError
    if name not in PRESETS:
        raise AdlibError(f"unknown --model {name!r}: choose one of {', '.join(PRESETS)}")
    kind, kwargs = PRESETS[name]
    return MODELS[kind](channels=channels, grid=grid, **{**kwargs, **overrides})


def load_model(path) -> ModelMixin:
    """Load any saved eps-network: the class is read from its config.json."""
    import json
    from pathlib import Path
    cls_name = json.loads((Path(path) / "config.json").read_text())["_class_name"]
    return {c.__name__: c for c in MODELS.values()}[cls_name].from_pretrained(path)

"""Pieces shared by the token denoisers (EpsMLP, EpsDiT) and the conv residual (EpsConv).

- TimeEmbed: t -> c in R^dim (sinusoidal features, then an MLP).
- SelfAttention: multi-head self-attention through F.scaled_dot_product_attention (fused kernels), with
  nn.MultiheadAttention's parameter names, so checkpoints saved before it load unchanged.
- AdaLNBlock: a transformer block whose LayerNorms are modulated by c (adaLN-Zero, DiT).
- _TokenDenoiser: B x C x h x w -> h*w tokens -> adaLN blocks -> B x C x h x w, starting at eps = 0.
"""
import torch
import torch.nn.functional as F
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


class SelfAttention(nn.Module):
    """softmax(q k^T / sqrt(d)) v per head, fused by F.scaled_dot_product_attention (flash / memory-efficient
    kernels on CUDA, bf16 under autocast). Parameters as nn.MultiheadAttention names and initialises them
    (in_proj_weight 3D x D, in_proj_bias, out_proj), drawn in its order: old state dicts and seeds carry over."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.out_proj = nn.Linear(dim, dim)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        nn.init.xavier_uniform_(self.in_proj_weight), nn.init.zeros_(self.out_proj.bias)

    def forward(self, x):
        B, N, D = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(B, N, 3, self.heads, D // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                       # each B x heads x N x D/heads
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(y.transpose(1, 2).reshape(B, N, D))


class AdaLNBlock(nn.Module):
    """x + g1 * Attn(LN(x)(1 + s1) + b1); x + g2 * MLP(LN(x)(1 + s2) + b2); (b, s, g) = Linear(c), zero-init."""

    def __init__(self, dim: int, heads: int = 0, mlp_ratio: float = 4.0):
        super().__init__()
        self.attn = SelfAttention(dim, heads) if heads else None
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
            x = x + g1 * self.attn(h)
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

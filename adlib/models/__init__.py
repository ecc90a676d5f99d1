"""Models, floor 3: epsilon-networks eps_theta(x_t, t) on C x h x w feature maps, as diffusers ModelMixin/ConfigMixin.

One family per file, all saved and loaded with `save_pretrained` / `from_pretrained` (safetensors):
- mlp.py      EpsMLP: the paper's cheapest model, a per-position MLP with adaLN timestep conditioning.
- dit.py      EpsDiT: the same adaLN-Zero blocks with self-attention across positions (DiT, patch 1).
- unet.py     EpsUNet: diffusers' UNet2DModel on the feature map.
- conv.py     EpsConv: a small 3 x 3 conv network (each position sees its neighbours).
- gaussian.py EpsGaussian: the closed-form eps of a per-position Gaussian (fitted, not trained; DESIGN §6).
- standard.py EpsStandard: eps of N(0, I), for features whitened by the chosen Gaussian (`--standardize auto`).
- residual.py EpsResidual: a Gaussian base plus a learned residual of one of the families above.
blocks.py holds the pieces the token denoisers share (TimeEmbed, AdaLNBlock, _TokenDenoiser); controls.py what a
trained model is measured against (eps = 0, the zero residual, the untrained network).

Models with a Gaussian part (`gaussian`, `gaussian+...` presets) have `fit_base(z)`: fit it to the
training features before training (or pass `base=` an EpsGaussian or a saved one's folder).
"""
from diffusers import ModelMixin

from adlib.models.blocks import AdaLNBlock, TimeEmbed, _TokenDenoiser
from adlib.models.conv import EpsConv
from adlib.models.dit import EpsDiT
from adlib.models.gaussian import EpsGaussian, select_shrinkage
from adlib.models.mlp import EpsMLP
from adlib.models.residual import EpsResidual, denoising_loss
from adlib.models.standard import EpsStandard
from adlib.models.unet import EpsUNet

__all__ = ["MODELS", "PRESETS", "build_model", "load_model", "EpsMLP", "EpsDiT", "EpsUNet", "EpsConv", "EpsGaussian",
           "EpsStandard", "EpsResidual", "TimeEmbed", "AdaLNBlock", "select_shrinkage", "denoising_loss"]

MODELS = {"mlp": EpsMLP, "dit": EpsDiT, "unet": EpsUNet, "conv": EpsConv, "gaussian": EpsGaussian,
          "standard": EpsStandard, "residual": EpsResidual}
PRESETS = {  # name -> (class, kwargs); "dit-paper" is the paper's 1.2 B-parameter DiT (a GPU model)
    "mlp": ("mlp", {}),
    "mlp-pos": ("mlp", dict(pos_embed="learned")),
    "dit": ("dit", {}),
    "unet": ("unet", {}),
    "dit-paper": ("dit", dict(hidden=2048, depth=16, heads=8)),
    "conv": ("conv", {}),
    "gaussian": ("gaussian", {}),  # the closed-form eps alone: fit_base(z), no training
    "standard": ("standard", {}),  # eps of N(0, I): after `--standardize auto` (the chosen Gaussian's whitening)
    "gaussian+mlp": ("residual", dict(residual="mlp")),
    "gaussian+conv": ("residual", dict(residual="conv")),
    "gaussian+dit": ("residual", dict(residual="dit", residual_kwargs=dict(hidden=128, depth=3))),
    # a learned residual over N(0, I) on `--standardize auto` features (the chosen Gaussian is the whitening)
    "standard+conv": ("residual", dict(residual="conv", base_model="standard")),
    "standard+dit": ("residual", dict(residual="dit", base_model="standard", residual_kwargs=dict(hidden=128, depth=3))),
}


def build_model(name: str, channels: int, grid: int, **overrides) -> ModelMixin:
    """A fresh eps-network from a preset name (see PRESETS) for C = channels, h = w = grid."""
    from adlib.errors import AdlibError
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

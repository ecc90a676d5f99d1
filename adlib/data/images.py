"""Decoding images and masks into tensors, whatever their mode (gray, RGB, RGBA, 16-bit, float, palette).

Bit depth. 8-bit files are always divided by 255. Deeper data (PIL modes I;16*, I and float F) is
scaled by one number per dataset, `bit_depth`, found by `infer_bit_depth(train paths)`:
    N in 1..32  ->  value / (2^N - 1), clipped to [0, 1]   (12-bit camera data in a 16-bit PNG: N = 12)
    0           ->  float images are already in [0, 1] (clipped); integer files use the rule for None
    None        ->  per image: floats in [0, 1] kept, otherwise N = the smallest of 8, 10, 12, 14, 16
                    covering the image's own maximum (a fallback, so that single images load).
Orientation. The EXIF orientation tag is applied (images and masks), as a viewer would.
Aspect. Images are resized to size x size (the backbone's feature grid is square); a non-square
image is squashed, not cropped, and the first one of a process says so in a warning.
Decompression bombs. Images over PIL's pixel limit are refused; $ADLIB_MAX_IMAGE_PIXELS raises the
limit (0 = none) for trusted files.
"""
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from adlib.errors import AdlibError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # integer data that may be deeper than 8 bits
BIT_DEPTHS = (8, 10, 12, 14, 16)
MAX_PIXELS_ENV = "ADLIB_MAX_IMAGE_PIXELS"
NEAR_CONSTANT = 0.01  # an image whose values span less than this fraction of the scale gets a warning
_aspect_warned = False  # the squashing warning is given once per process


def _max_pixels():
    """PIL's decompression-bomb limit, raised by $ADLIB_MAX_IMAGE_PIXELS when set (0 = no limit)."""
    value = os.environ.get(MAX_PIXELS_ENV)
    if value is None:
        return Image.MAX_IMAGE_PIXELS
    try:
        n = int(value)
    except ValueError:
        raise AdlibError(f"{MAX_PIXELS_ENV}={value!r} is not a whole number of pixels: set it to e.g. "
                         f"300000000, or 0 for no limit") from None
    return n or None


def open_image(path, what: str = "image") -> Image.Image:
    """The decoded image, turned upright by its EXIF orientation; undecodable or oversized -> AdlibError."""
    Image.MAX_IMAGE_PIXELS = _max_pixels()
    fix = "replace or remove it, or pass --skip-bad to skip undecodable images" if what == "image" else "replace it"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # 1x..2x the limit: refuse too
            with Image.open(path) as img:
                img.load()
                return ImageOps.exif_transpose(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        n = re.search(r"\((\d+) pixels\)", str(e))
        raise AdlibError(f"{what} {path} has {n.group(1) + ' pixels' if n else 'too many pixels'}, over the "
                         f"limit of {Image.MAX_IMAGE_PIXELS} (a guard against decompression bombs): if you "
                         f"trust the file set {MAX_PIXELS_ENV} to a larger count (0 = no limit), or {fix}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise AdlibError(f"cannot decode {what} {path} ({e.__class__.__name__}): {fix}") from None


def _covering_depth(hi: float) -> int:
    """The smallest of 8, 10, 12, 14, 16 bits whose range 0..2^N - 1 holds `hi` (more bits beyond 16)."""
    for n in BIT_DEPTHS:
        if hi <= 2 ** n - 1:
            return n
    return min(32, int(math.ceil(hi)).bit_length())


def _check_depth(bit_depth):
    if bit_depth is not None and (isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer))
                                  or not 0 <= bit_depth <= 32):
        raise AdlibError(f"--bit-depth {bit_depth!r}: use a whole number of bits 1..32 (e.g. 12 for 12-bit "
                         f"camera data), 0 for float images in [0, 1], or leave it unset to infer it")


def scaled_array(img: Image.Image, bit_depth, path) -> np.ndarray:
    """Deep or float gray: H x W float32 in [0, 1]; 8-bit: H x W x 3 uint8 (/255 after resizing)."""
    if img.mode in DEEP_MODES or img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if not np.isfinite(a).all():
            raise AdlibError(f"image {path} has NaN/inf pixel values: replace or remove it, or pass --skip-bad "
                             f"to skip undecodable images")
        if img.mode == "F" and (bit_depth == 0 or (bit_depth is None and a.min() >= 0 and a.max() <= 1)):
            return np.clip(a, 0, 1).astype(np.float32)  # float data in [0, 1]
        n = bit_depth or _covering_depth(max(float(a.max()), 0.0))
        return np.clip(a / (2 ** n - 1), 0, 1).astype(np.float32)
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)  # transparent pixels become white
    return np.asarray(img.convert("RGB"))  # gray is repeated to 3 channels: the backbone's stem is RGB


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    """size x size x 3 float32 in [0, 1], resized bilinearly (antialiased); deep data is resized as floats."""
    if a.dtype == np.uint8:
        return np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
    img = Image.fromarray(a.astype(np.float32)).resize((size, size), Image.BILINEAR)  # mode F
    return np.repeat(np.clip(np.asarray(img), 0, 1)[..., None], 3, axis=2)


def load_image(path, size: int, bit_depth=None) -> torch.Tensor:
    """3 x size x size float tensor in [0, 1], resized bilinearly (antialiased).

    `bit_depth` scales data deeper than 8 bits (see the module docstring; None infers it per image).
    The image is turned upright by its EXIF orientation, then resized to a square: a non-square image
    loses its aspect ratio (said once per process in a warning). A nearly constant image (value range
    under 1 % of the scale: a blank frame, or a wrong bit depth) gets a warning naming it.
    """
    global _aspect_warned
    _check_depth(bit_depth)
    img = open_image(path)
    a = scaled_array(img, bit_depth, path)
    lo, hi = (float(v) / (255 if a.dtype == np.uint8 else 1) for v in (a.min(), a.max()))
    if hi - lo < NEAR_CONSTANT:
        warnings.warn(f"image {path} is nearly constant (values {lo:.3g}..{hi:.3g} of 0..1): "
                      f"a blank frame, or the wrong --bit-depth?", stacklevel=2)
    w, h = img.size
    if w != h and not _aspect_warned:
        _aspect_warned = True
        g = math.gcd(w, h)
        warnings.warn(f"images are resized to {size}×{size}; aspect ratio {w // g}:{h // g} is not kept "
                      f"(first seen in {path})", stacklevel=2)
    return torch.from_numpy(_resize(a, size)).permute(2, 0, 1).contiguous()


def infer_bit_depth(paths, sample: int = 64):
    """The dataset's bit depth for `load_image`, from at most `sample` evenly spaced images.

    >8-bit integer images: the smallest of 8, 10, 12, 14, 16 bits covering the largest value seen;
    float images all in [0, 1]: 0; only 8-bit images: None. Undecodable files are passed over.
    """
    paths = list(paths)
    picks = sorted(set(np.linspace(0, len(paths) - 1, min(len(paths), sample)).round().astype(int).tolist()))
    deep_hi, float_lo, float_hi, first = None, math.inf, -math.inf, {}
    for i in picks:
        try:
            img = open_image(paths[i])
        except AdlibError:
            continue
        if img.mode in DEEP_MODES:
            deep_hi = max(deep_hi or 0.0, float(np.asarray(img).max()))
            first.setdefault("deep", paths[i])
        elif img.mode == "F":
            a = np.asarray(img)
            float_lo, float_hi = min(float_lo, float(a.min())), max(float_hi, float(a.max()))
            first.setdefault("float", paths[i])
    if "float" in first and (float_lo < 0 or float_hi > 1):
        raise AdlibError(f"float images such as {first['float']} hold values in [{float_lo:.4g}, {float_hi:.4g}], "
                         f"not [0, 1]: pass an explicit --bit-depth N (values are divided by 2^N - 1)")
    if "float" in first and deep_hi is not None:
        raise AdlibError(f"the images mix float ({first['float']}) and >8-bit integer ({first['deep']}) files: "
                         f"convert them to one type, or pass an explicit --bit-depth")
    if deep_hi is not None:
        return _covering_depth(deep_hi)
    return 0 if "float" in first else None


def upright_size(path) -> tuple:
    """(width, height) of an image as `load_image` sees it (after EXIF orientation), without decoding it."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            return (h, w) if img.getexif().get(0x0112) in (5, 6, 7, 8) else (w, h)  # 90° turns swap them
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise AdlibError(f"cannot decode image {path} ({e.__class__.__name__}): replace or remove it") from None


def read_mask(path) -> np.ndarray:
    """Full-size bool mask, upright by its EXIF orientation: any nonzero pixel (0/1 or 0/255) is anomalous."""
    m = open_image(path, "mask")
    if m.mode in ("1", "L", "F") or m.mode in DEEP_MODES:
        return np.asarray(m) > 0
    return np.asarray(m.convert("RGB")).max(axis=2) > 0  # colour / palette masks: any nonzero channel


def load_mask(path, image_path, size: int) -> torch.Tensor:
    """size x size bool tensor (nearest resize); the mask must have its image's size (both upright)."""
    m = read_mask(path)
    w, h = upright_size(image_path)
    if (m.shape[1], m.shape[0]) != (w, h):
        raise AdlibError(f"mask {path} is {m.shape[1]}x{m.shape[0]} but its image {image_path} is "
                         f"{w}x{h}: masks must match their image's size")
    small = Image.fromarray(m.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return torch.from_numpy(np.asarray(small) > 0)


def list_images(folder: Path) -> list:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_masks(samples, size: int) -> np.ndarray:
    """N x size x size bool masks of the samples; normal images (no mask) get an empty one."""
    return np.stack([load_mask(s.mask, s.path, size).numpy() if s.mask else np.zeros((size, size), bool)
                     for s in samples])

"""Deterministic mini dataset in the MVTec AD folder layout, with pixel masks.

Used by tests, CI and anyone without MVTec AD. A category folder gets
``train/good``, ``test/good``, ``test/<defect>`` and ``ground_truth/<defect>``
(masks named ``<stem>_mask.png``, 8-bit 0/255) for the defects scratch, spot
and hole, plus a README.txt. Normal images share one procedural texture
("weave", "grain" or "tiles") with random phase, brightness jitter and noise;
defects are drawn on an otherwise normal image, stay at least 8 px from the
border and cover roughly 0.5-4% of it; ``strength`` < 1 blends them in faintly
(every method scores 1.000 on the full-strength ones). Everything comes from
``numpy.random.default_rng(seed)``, so the same seed gives byte-identical files.
"""
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from adlib.errors import AdlibError
from adlib.files import current_umask

TEXTURES = ("weave", "grain", "tiles")
DEFECTS = ("scratch", "spot", "hole")
MARGIN = 8  # defect pixels stay at least this far from the border
_TINT = {"weave": (0.62, 0.52, 0.40), "grain": (0.60, 0.45, 0.30), "tiles": (0.50, 0.56, 0.62)}
_PALETTE = np.array([(0.9, 0.1, 0.1), (0.1, 0.75, 0.15), (0.1, 0.2, 0.9), (0.95, 0.9, 0.1), (0.9, 0.2, 0.9)])


def _background(rng, texture, size):
    """A clean normal image, float RGB in [0, 1], shape (size, size, 3)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    period = size / 8
    if texture == "weave":  # crossed sinusoidal stripes
        ox, oy = rng.uniform(0, period, 2)
        pat = 0.5 * (np.sin(2 * np.pi * (xx + ox) / period) + np.sin(2 * np.pi * (yy + oy) / period))
    elif texture == "grain":  # smoothed noise, streaked along x
        noise = gaussian_filter(rng.normal(size=(size, size)), sigma=(size / 64, size / 16), mode="wrap")
        pat = np.clip(noise / (2.5 * noise.std()), -1, 1)
    elif texture == "tiles":  # square tiles with darker grout lines
        p, grout = int(period), max(2, int(period) // 8)
        ox, oy = rng.integers(0, p, 2)
        is_grout = ((xx + ox) % p < grout) | ((yy + oy) % p < grout)
        pat = np.where(is_grout, -1.0, 0.3)
    else:
        raise AdlibError(f"unknown texture {texture!r}; choose one of {', '.join(TEXTURES)}")
    img = np.asarray(_TINT[texture]) + 0.15 * pat[..., None] + rng.uniform(-0.04, 0.04)
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)


def _place(rng, size, half):
    """A random centre such that a shape of half-extent `half` keeps MARGIN px from the border."""
    lo, hi = MARGIN + half + 1, size - 1 - MARGIN - half - 1
    return rng.uniform(lo, hi, 2)


def _add_defect(img, kind, rng):
    """Draw one defect on a copy of `img`; return (image, bool mask)."""
    size = img.shape[0]
    img = img.copy()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    if kind == "scratch":  # thin line, slightly curved (quadratic Bezier)
        length, angle = rng.uniform(0.2, 0.4) * size, rng.uniform(0, np.pi)
        width = rng.choice([2.0, 3.0]) * max(1.0, size / 128)  # 2-3 px at the default size
        end = length * np.array([np.cos(angle), np.sin(angle)])
        ctrl = end / 2 + rng.uniform(-0.2, 0.2) * np.array([-end[1], end[0]])  # sideways bend
        t = np.linspace(0, 1, int(2 * length) + 2)[:, None]
        pts = 2 * (1 - t) * t * ctrl + t**2 * end
        pts -= (pts.min(0) + pts.max(0)) / 2
        pts += _place(rng, size, np.abs(pts).max() + width)
        dist = np.full((size, size), np.inf)
        for x, y in pts:
            dist = np.minimum(dist, (xx - x) ** 2 + (yy - y) ** 2)
        mask = dist < (width / 2) ** 2
        img[mask] = 0.05 if rng.random() < 0.5 else 0.97
    elif kind == "spot":  # filled ellipse of a clearly different colour
        a, b = rng.uniform(0.06, 0.1, 2) * size
        cx, cy = _place(rng, size, max(a, b))
        th = rng.uniform(0, np.pi)
        u, v = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th), -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        mask = (u / a) ** 2 + (v / b) ** 2 <= 1
        far = np.argsort(-np.linalg.norm(_PALETTE - img[mask].mean(0), axis=1))[:2]
        img[mask] = _PALETTE[far[rng.integers(2)]] + rng.normal(0, 0.02, (mask.sum(), 3))
    elif kind == "hole":  # dark disc with a slightly lighter rim
        r = rng.uniform(0.06, 0.09) * size
        cx, cy = _place(rng, size, r)
        d = np.hypot(xx - cx, yy - cy)
        mask = d <= r
        img[mask] = 0.04 + rng.normal(0, 0.01, (mask.sum(), 3))
        img[mask & (d > r - max(1.0, 0.2 * r))] = 0.2
    else:
        raise AdlibError(f"unknown defect {kind!r}; choose one of {', '.join(DEFECTS)}")
    return np.clip(img, 0, 1), mask


def _anomalous_sample(rng, texture, size, kind, strength=1.0):
    """(defective image, mask, clean background) -- the clean image is what tests compare against.
    strength < 1 blends the defect in: clean + strength * (defective - clean) (a faint defect, same mask)."""
    clean = _background(rng, texture, size)
    img, mask = _add_defect(clean, kind, rng)
    return (img if strength == 1 else clean + strength * (img - clean)), mask, clean


def _save(arr, path):
    if arr.dtype == bool:
        Image.fromarray(np.where(arr, 255, 0).astype(np.uint8), mode="L").save(path)
    else:
        Image.fromarray(np.round(arr * 255).astype(np.uint8), mode="RGB").save(path)


def make_mini_mvtec(path, seed=0, size=128, n_train=40, n_test_good=12, n_test_per_defect=6,
                    texture="weave", overwrite=False, strength=1.0) -> Path:
    """Write one mini MVTec-style category to `path` (atomically) and return the path.
    strength in (0, 1]: the defects' opacity over the clean image (1: as drawn; e.g. 0.3: faint, for a harder set)."""
    path = Path(path)
    if not 0 < strength <= 1:
        raise AdlibError(f"strength={strength}: the defects' opacity must lie in (0, 1]")
    if texture not in TEXTURES:
        raise AdlibError(f"unknown texture {texture!r}; choose one of {', '.join(TEXTURES)}")
    if size < 48:
        raise AdlibError(f"size={size} is too small for the mini dataset; use size >= 48")
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise AdlibError(f"{path} exists and is not empty; pass overwrite=True / --overwrite or choose an empty folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # not mkdtemp's 0700: the dataset is for everyone who reads it
    try:
        rng = np.random.default_rng(seed)
        for split, n in (("train", n_train), ("test", n_test_good)):
            (tmp / split / "good").mkdir(parents=True)
            for i in range(n):
                _save(_background(rng, texture, size), tmp / split / "good" / f"{i:03d}.png")
        for kind in DEFECTS:
            (tmp / "test" / kind).mkdir(parents=True)
            (tmp / "ground_truth" / kind).mkdir(parents=True)
            for i in range(n_test_per_defect):
                img, mask, _ = _anomalous_sample(rng, texture, size, kind, strength)
                _save(img, tmp / "test" / kind / f"{i:03d}.png")
                _save(mask, tmp / "ground_truth" / kind / f"{i:03d}_mask.png")
        (tmp / "README.txt").write_text(
            f"Synthetic mini anomaly-detection category in the MVTec AD layout, made by "
            f"adlib.data.mini.make_mini_mvtec with texture={texture!r}, seed={seed}, size={size}"
            f"{'' if strength == 1 else f', strength={strength:g}'}: "
            f"{n_train} normal training images, {n_test_good} normal test images and "
            f"{n_test_per_defect} test images per defect ({', '.join(DEFECTS)}) with 0/255 pixel masks "
            f"in ground_truth/. The same seed reproduces byte-identical files. It is for tests and "
            f"demos, not a benchmark.\n")
        if path.exists():  # overwrite (or empty folder): move the old one aside, then swap
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            path.rename(old / "x") if path.is_dir() else path.replace(old / "x")
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def make_mini_root(root, categories=("weave", "grain", "tiles"), seed=0, **kw) -> Path:
    """Write one category per name under `root`; the name selects the texture. Returns `root`."""
    root = Path(root)
    for i, name in enumerate(categories):
        if name not in TEXTURES:
            raise AdlibError(f"unknown category {name!r}; names select the texture, choose from {', '.join(TEXTURES)}")
        make_mini_mvtec(root / name, seed=1000 * seed + i, texture=name, **kw)
    return root

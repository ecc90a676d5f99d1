"""The development suite for choosing a default: aligned parts, textures, several products, few images.

    python benchmarks/dev_suite.py --root /tmp/adlib-suite      # writes the generated sets, prints the suite

Every data set is a development set (designs may be chosen on it); none of it is a reported test set.
scikit-image's bundled photographs (brick, grass, gravel) are deliberately not used: they are held out.

Data sets (`suite(root)` -> {name: SPEC}):
- `elpv-mono`, `elpv-poly`, `elpv-all`: the embedded ELPV cells, `:dev` halves (aligned parts, image labels only);
- `mini-weave`, `mini-grain`, `mini-tiles`, `mini-unified`: adlib.data.mini's three textures and their root
  (several products, one model);
- `tex-fibre`, `tex-cloud`: stationary random-phase textures (white noise filtered by an oriented band-pass /
  an isotropic 1/f^2 spectrum, coloured) with scratches, stains and foreign patches, with masks;
- `part-shift`, `part-rot`: one object (a plate with two holes and a notch) at a random shift and small
  rotation / any rotation, on a noisy background; a missing corner, a scratch, a stain or an extra hole on it;
- `mini-faint-*`, `part-shift-faint`: the same generators with the defects blended in at FAINT opacity. At full
  strength the miniature and `part-shift` gave 1.000 to every method (SATURATED: a comparison that says nothing);
  the opacity was set where PaDiM as its authors define it (raw features) scores ~0.70-0.94, before any other
  method was run on them (mini 0.1: weave 0.944, grain 0.704, tiles 0.898; part-shift 0.3: 0.843).
Each also has a few-shot version, `NAME@20`: the same test images, 20 seeded normal images in all (`few_shot` of
train and validation together, which is what cross-fitted calibration uses). Generated images are 128 px (the
backbone resizes them to 256); each generated test set holds 50 good and 15 images per defect kind.
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from adlib.data.mini import make_mini_root

SIZE, N_TRAIN, N_GOOD, N_PER_DEFECT = 128, 60, 50, 15  # 50 good + 45-60 anomalous test images: AUROC se ~0.01
FAINT = {"mini": 0.1, "part-shift": 0.3}  # defect opacity of the faint versions (see the module docstring)
SATURATED = ("mini-weave", "mini-grain", "mini-tiles", "mini-unified", "part-shift")  # 1.000 for every method
ELPV = {"elpv-mono": "elpv:mono:dev", "elpv-poly": "elpv:poly:dev", "elpv-all": "elpv:all:dev"}
FEW = 20


def _texture(rng, kind, size=SIZE):
    """A stationary random-phase texture, float RGB in [0, 1]."""
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    if kind == "fibre":  # oriented band-pass: streaks along 30 degrees, about 10 px apart
        a = np.deg2rad(30)
        u, v = fx * np.cos(a) + fy * np.sin(a), -fx * np.sin(a) + fy * np.cos(a)
        amp = np.exp(-((np.abs(v) - 0.1) ** 2) / (2 * 0.02 ** 2) - u ** 2 / (2 * 0.015 ** 2))
        lo, hi = np.array([0.55, 0.38, 0.22]), np.array([0.85, 0.66, 0.42])
    else:  # cloud: isotropic, power ~ 1 / f^2 above a cut-off
        amp = 1 / np.maximum(np.hypot(fx, fy), 2 / size)
        lo, hi = np.array([0.35, 0.40, 0.45]), np.array([0.75, 0.78, 0.72])
    field = np.real(np.fft.ifft2(amp * np.exp(2j * np.pi * rng.uniform(size=(size, size)))))
    t = np.clip(0.5 + field / (4 * field.std()), 0, 1)[..., None]
    img = lo + (hi - lo) * t + rng.uniform(-0.03, 0.03)
    return np.clip(img + rng.normal(0, 0.015, img.shape), 0, 1)


def _blob(size, cy, cx, ry, rx, angle):
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return (u / rx) ** 2 + (v / ry) ** 2


def _line(size, rng, cy, cx, length, width):
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    a = rng.uniform(0, np.pi)
    u, v = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a), -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
    return (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)


def _texture_defect(img, kind, rng, foreign):
    """(image, mask) with one defect: scratch, stain or foreign patch, 28 px or more from the border.
    foreign(rng): an image of the same size the foreign patch is cut from (drawn where the patch needs it)."""
    size = img.shape[0]
    cy, cx = rng.uniform(28, size - 28, 2)
    out = img.copy()
    if kind == "scratch":
        mask = _line(size, rng, cy, cx, rng.uniform(24, 44), rng.uniform(1.5, 2.5))
        out[mask] = np.clip(out[mask] + rng.choice([-1, 1]) * rng.uniform(0.25, 0.35), 0, 1)
    elif kind == "stain":
        d = _blob(size, cy, cx, rng.uniform(6, 11), rng.uniform(6, 11), rng.uniform(0, np.pi))
        w = np.exp(-d * 1.5)[..., None]
        out = np.clip(out * (1 - 0.45 * w) + 0.45 * w * np.array([0.25, 0.3, 0.15]), 0, 1)
        mask = w[..., 0] > 0.25
    else:  # a patch of the other texture
        other = foreign(rng)
        mask = _blob(size, cy, cx, rng.uniform(8, 13), rng.uniform(8, 13), rng.uniform(0, np.pi)) <= 1
        out[mask] = other[mask]
    return out, mask


def _part(rng, rotation, size=SIZE):
    """(image, object mask, pose): a plate with two holes and a notch at a random pose, on a noisy background."""
    angle = rng.uniform(-np.pi, np.pi) if rotation == "any" else np.deg2rad(rng.uniform(-12, 12))
    shift = rng.uniform(-6, 6, 2) if rotation == "any" else rng.uniform(-12, 12, 2)
    cy, cx = size / 2 + shift
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c       # object coordinates
    plate = (np.abs(u) <= 34) & (np.abs(v) <= 20)
    holes = (np.hypot(u + 18, v) <= 6) | (np.hypot(u - 18, v) <= 6)
    notch = (u >= 26) & (np.abs(v) <= 4)
    obj = plate & ~holes & ~notch
    img = np.full((size, size, 3), 0.18) + rng.normal(0, 0.02, (size, size, 3))
    shade = 0.62 + 0.06 * (u / 34)[..., None]                                     # a brushed-metal gradient
    img = np.where(obj[..., None], shade * np.array([1.0, 0.97, 0.9]), img)
    img = gaussian_filter(img, sigma=(0.7, 0.7, 0)) + rng.normal(0, 0.01, img.shape)
    return np.clip(img, 0, 1), obj, (u, v)


def _part_defect(rng, rotation, kind, strength=1.0):
    """(image, mask) of the part with one defect, blended in at `strength` (1: as drawn)."""
    img, obj, (u, v) = _part(rng, rotation)
    clean, size = img.copy(), img.shape[0]
    if kind == "corner":  # a missing corner: background shows through
        su, sv = rng.choice([-1, 1], 2)
        mask = obj & (su * u > 34 - rng.uniform(8, 12)) & (sv * v > 20 - rng.uniform(7, 10))
        img[mask] = 0.18 + rng.normal(0, 0.02, (mask.sum(), 3))
    elif kind == "scratch":
        ys, xs = np.nonzero(obj & (np.abs(u) < 14) & (np.abs(v) < 12))
        i = rng.integers(len(ys))
        mask = obj & _line(size, rng, ys[i], xs[i], rng.uniform(16, 26), 1.8)
        img[mask] = np.clip(img[mask] - 0.3, 0, 1)
    elif kind == "stain":
        ys, xs = np.nonzero(obj & (np.abs(u) < 24) & (np.abs(v) < 12))
        i = rng.integers(len(ys))
        w = np.exp(-_blob(size, ys[i], xs[i], 5, 7, rng.uniform(0, np.pi)) * 1.5)[..., None] * obj[..., None]
        img = np.clip(img * (1 - 0.5 * w) + 0.5 * w * np.array([0.55, 0.3, 0.1]), 0, 1)
        mask = w[..., 0] > 0.25
    else:  # an extra hole
        mask = obj & (np.hypot(u, v - rng.choice([-1, 1]) * 9) <= 4.5)
        img[mask] = 0.18
    return (img if strength == 1 else clean + strength * (img - clean)), mask


TEXTURE_DEFECTS, PART_DEFECTS = ("scratch", "stain", "foreign"), ("corner", "scratch", "stain", "hole")


def _save(arr, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.dtype == bool:
        Image.fromarray(np.where(arr, 255, 0).astype(np.uint8), mode="L").save(path)
    else:
        Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8), mode="RGB").save(path)


def make_category(path: Path, normal, defect, defects, seed):
    """An MVTec-layout category: N_TRAIN + N_GOOD normal images, N_PER_DEFECT per defect with masks."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", N_TRAIN), ("test", N_GOOD)):
        for i in range(n):
            _save(normal(rng), path / split / "good" / f"{i:03d}.png")
    for kind in defects:
        for i in range(N_PER_DEFECT):
            img, mask = defect(rng, kind)
            _save(img, path / "test" / kind / f"{i:03d}.png")
            _save(mask, path / "ground_truth" / kind / f"{i:03d}_mask.png")


def build(root) -> dict:
    """Write the generated sets under root (skipping those already there); return the suite {name: SPEC}."""
    root = Path(root)
    if not (root / "mini").is_dir():
        make_mini_root(root / "mini", seed=0, size=SIZE)
    if not (root / "mini-faint").is_dir():
        make_mini_root(root / "mini-faint", seed=0, size=SIZE, n_train=N_TRAIN, n_test_good=N_GOOD,
                       n_test_per_defect=N_PER_DEFECT, strength=FAINT["mini"])
    for i, kind in enumerate(("fibre", "cloud")):
        if not (root / f"tex-{kind}").is_dir():
            make_category(root / f"tex-{kind}", lambda rng, k=kind: _texture(rng, k),
                          lambda rng, d, k=kind: _texture_defect(
                              _texture(rng, k), d, rng, lambda r, o="cloud" if k == "fibre" else "fibre": _texture(r, o)), TEXTURE_DEFECTS, 10 + i)
    for i, (name, rotation, strength) in enumerate((("part-shift", "small", 1.0), ("part-rot", "any", 1.0),
                                                      ("part-shift-faint", "small", FAINT["part-shift"]))):
        if not (root / name).is_dir():
            make_category(root / name, lambda rng, r=rotation: _part(rng, r)[0],
                          lambda rng, d, r=rotation, s=strength: _part_defect(rng, r, d, s), PART_DEFECTS, 20 + i % 2)
    return suite(root)


def suite(root) -> dict:
    root = Path(root)
    out = dict(ELPV)
    out.update({f"mini-{t}": f"mvtec:{root / 'mini' / t}" for t in ("weave", "grain", "tiles")})
    out["mini-unified"] = f"mvtec-root:{root / 'mini'}"
    out.update({n: f"mvtec:{root / n}" for n in ("tex-fibre", "tex-cloud", "part-shift", "part-rot")})
    out.update({f"mini-faint-{t}": f"mvtec:{root / 'mini-faint' / t}" for t in ("weave", "grain", "tiles")})
    out["mini-faint-unified"] = f"mvtec-root:{root / 'mini-faint'}"
    out["part-shift-faint"] = f"mvtec:{root / 'part-shift-faint'}"
    return out


def few_shot(z_train, n=FEW, seed=0):
    """A seeded subset of n normal features (the few-shot version of a data set)."""
    import torch
    return z_train[torch.randperm(len(z_train), generator=torch.Generator().manual_seed(seed))[:n]]


def each_set(root, only: str = ""):
    """(NAME or NAME@20, normals, test features, test labels, test masks) of every set of the suite (or of those named
    in the comma-separated `only`): all its normal images (train and validation), then FEW of them."""
    import torch
    from feature_sets import suite_parts
    for name, _, (z_tr, z_va, z_te, labels, masks) in suite_parts(build(root), only):
        normals = torch.cat([z_tr, z_va])
        yield name, normals, z_te, labels, masks
        yield f"{name}@{FEW}", few_shot(normals), z_te, labels, masks


def default_out_of_fold(normals, z_te, synthetic: bool = False) -> tuple:
    """(cfg, fold ids, out-of-fold raw scores of the normals, raw scores of the test features) of the cpu default
    (`RunConfig()`) as `adlib train` fits it: the Gaussian chosen once on all normals, the folds refitting it."""
    from adlib.features.standardize import standardize
    from adlib.method import calibration, scoring
    from adlib.method.inversion import invert, make_grid
    from adlib.runs import crossfit
    from adlib.runs.config import RunConfig
    cfg, stats = crossfit.with_choice(RunConfig(), normals)
    ids = calibration.fold_ids(len(normals), cfg.folds, cfg.split_seed)
    oof = crossfit.out_of_fold(cfg, normals, ids, cfg.steps, cfg.grid, synthetic=synthetic)
    _, model = crossfit.fit_normals(cfg, normals, stats)
    test = scoring.raw_scores(invert(model, standardize(z_te, stats), make_grid(cfg.steps, cfg.grid)))
    return cfg, ids, oof, test


def append_line(path, line: dict):
    """One JSON line appended to path (a benchmark's raw rows)."""
    import json
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/adlib-suite")
    for name, spec in build(ap.parse_args().root).items():
        print(f"{name:<14} {spec}")

"""Judging only: the frozen default on textures cut from scikit-image's photographs (brick, grass, gravel).

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/held_out.py --root /tmp/adlib-held-out \
        --out docs/bench/held-out.jsonl
    python benchmarks/default_suite.py --table docs/bench/held-out.jsonl

These photographs are held out from development (issue 19): no design of the kit was chosen on them, and this
script is run once per frozen default, never to tune it. Each category: 128-px crops of one 512 x 512 grey
photograph at random places (60 normal training crops, 6 held for validation by the loader; 50 good test crops),
and 15 test crops per defect kind with masks — a scratch (a bright or dark line), a stain (a coloured blob) and a
foreign patch (a blob cut from another of the three photographs) — drawn like benchmarks/dev_suite.py's texture
defects. Every method as in benchmarks/default_suite.py (`evaluate`), on the same normals; `@20`: 20 normals.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from default_suite import evaluate  # noqa: E402
from dev_suite import FEW, SIZE, _blob, _line, _save, few_shot  # noqa: E402
from feature_sets import suite_parts  # noqa: E402

PHOTOS = ("brick", "grass", "gravel")
N_TRAIN, N_GOOD, N_PER_DEFECT, DEFECTS = 60, 50, 15, ("scratch", "stain", "foreign")


def photo(name: str) -> np.ndarray:
    import skimage.data
    grey = getattr(skimage.data, name)().astype(float) / 255.0
    return np.repeat(grey[..., None], 3, axis=2)


def crop(img, rng, size=SIZE):
    y, x = rng.integers(0, img.shape[0] - size + 1, 2)
    return img[y:y + size, x:x + size].copy()


def defect(img, kind, rng, other):
    """(image, mask): one defect 28 px or more from the border."""
    size = img.shape[0]
    cy, cx = rng.uniform(28, size - 28, 2)
    out = img.copy()
    if kind == "scratch":
        mask = _line(size, rng, cy, cx, rng.uniform(24, 44), rng.uniform(1.5, 2.5))
        out[mask] = np.clip(out[mask] + rng.choice([-1, 1]) * rng.uniform(0.25, 0.35), 0, 1)
    elif kind == "stain":
        w = np.exp(-_blob(size, cy, cx, rng.uniform(6, 11), rng.uniform(6, 11), rng.uniform(0, np.pi)) * 1.5)[..., None]
        out = np.clip(out * (1 - 0.45 * w) + 0.45 * w * np.array([0.25, 0.3, 0.15]), 0, 1)
        mask = w[..., 0] > 0.25
    else:
        patch = crop(other, rng, size)
        mask = _blob(size, cy, cx, rng.uniform(8, 13), rng.uniform(8, 13), rng.uniform(0, np.pi)) <= 1
        out[mask] = patch[mask]
    return out, mask


def build(root: Path) -> dict:
    for i, name in enumerate(PHOTOS):
        path = root / name
        if path.is_dir():
            continue
        rng, img = np.random.default_rng(100 + i), photo(name)
        others = [photo(o) for o in PHOTOS if o != name]
        for split, n in (("train", N_TRAIN), ("test", N_GOOD)):
            for j in range(n):
                _save(crop(img, rng), path / split / "good" / f"{j:03d}.png")
        for kind in DEFECTS:
            for j in range(N_PER_DEFECT):
                out, mask = defect(crop(img, rng), kind, rng, others[j % 2])
                _save(out, path / "test" / kind / f"{j:03d}.png")
                _save(mask, path / "ground_truth" / kind / f"{j:03d}_mask.png")
    return {f"photo-{name}": f"mvtec:{root / name}" for name in PHOTOS}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/adlib-held-out"))
    ap.add_argument("--out", default="docs/bench/held-out.jsonl")
    a = ap.parse_args()
    for name, spec, (z_tr, z_va, z_te, labels, masks) in suite_parts(build(a.root)):
        for few in (False, True):
            t0 = time.perf_counter()
            normals = torch.cat([z_tr, z_va])
            normals = few_shot(normals) if few else normals
            rows, info = evaluate(normals, z_te, labels, masks)
            line = {"data": name + (f"@{FEW}" if few else ""), "spec": spec, "n_normals": len(normals),
                    "n_test": len(z_te), "n_anomalous": int(labels.sum()), "methods": rows, "choice": info,
                    "seconds": round(time.perf_counter() - t0, 1)}
            with open(a.out, "a") as f:
                f.write(json.dumps(line) + "\n")
            print(line["data"], {k: round(v["image_auroc"], 4) for k, v in rows.items()}, info["chosen"], flush=True)


if __name__ == "__main__":
    main()

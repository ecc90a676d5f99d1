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
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from default_suite import run_suite  # noqa: E402
from dev_suite import SIZE, _save, _texture_defect  # noqa: E402

PHOTOS = ("brick", "grass", "gravel")
N_TRAIN, N_GOOD, N_PER_DEFECT, DEFECTS = 60, 50, 15, ("scratch", "stain", "foreign")


def photo(name: str) -> np.ndarray:
    import skimage.data
    grey = getattr(skimage.data, name)().astype(float) / 255.0
    return np.repeat(grey[..., None], 3, axis=2)


def crop(img, rng, size=SIZE):
    y, x = rng.integers(0, img.shape[0] - size + 1, 2)
    return img[y:y + size, x:x + size].copy()


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
                out, mask = _texture_defect(crop(img, rng), kind, rng, lambda r, o=others[j % 2]: crop(o, r))
                _save(out, path / "test" / kind / f"{j:03d}.png")
                _save(mask, path / "ground_truth" / kind / f"{j:03d}_mask.png")
    return {f"photo-{name}": f"mvtec:{root / name}" for name in PHOTOS}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/adlib-held-out"))
    ap.add_argument("--out", default="docs/bench/held-out.jsonl")
    a = ap.parse_args()
    run_suite(build(a.root), a.out)

if __name__ == "__main__":
    main()

"""bf16 vs fp32 scoring parity (issue 21): does bf16 autocast change what a run finds?

For each RUN=SPEC pair the run scores the test part of SPEC end to end under fp32 and under bf16, once per
bf16 scope asked (`--scope`): `all` = backbone and eps-network under bf16 autocast, `eps` = the backbone in
fp32 and the eps-network under bf16 autocast. Each pass fits its own calibration on the validation normals.
Printed per pair and scope: image AUROC under fp32 and bf16 and their difference; the Spearman correlation of
the anomaly maps four ways: pooled over every pixel of every test image after the bilinear upsampling that
pixel AUROC and `pixel_map` use (`pixel_spearman`, the target's metric), pooled over the 16 x 16 maps
(`map_spearman`), and per image at 16 x 16 (`image_map_spearman_median` / `_min`, the strictest); pixel
AUROC of both where the data has masks; and the largest feature difference relative to the features' spread.
Targets: |dAUROC| <= 0.002, pixel_spearman >= 0.999. On the CPU bf16 runs through CPU autocast (slower than
fp32 there; this measures numbers, not speed); `--device cuda` runs the same on a GPU.

    python benchmarks/bf16_parity.py /tmp/bf16/run-mono=elpv:mono:dev /tmp/bf16/run-mini=mvtec:/tmp/bf16/mini \
        --scope all eps
"""
import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from adlib.data import load_spec
from adlib.data.images import load_masks
from adlib.evaluation.metrics import image_metrics, pixel_metrics
from adlib.features.cache import extract
from adlib.features.standardize import standardize
from adlib.method import calibration, scoring
from adlib.method.precision import autocast
from adlib.runs.run import Run

TARGET_AUROC, TARGET_SPEARMAN = 0.002, 0.999
SCOPES = {"all": ("bf16", "bf16"), "eps": ("fp32", "bf16"), "fp32": ("fp32", "fp32")}  # (backbone, eps-network)


def features(run, samples, desc, backbone_precision):
    """Standardised features with the backbone run in `backbone_precision` (explicitly, whatever the run's rule)."""
    z, kept = extract(run.extractor, samples, desc=desc, device=run.device, bit_depth=run.bit_depth,
                      precision=backbone_precision)
    return standardize(z, run.stats), z, kept


def raw_scores(run, z, eps_precision, batch_size=64):
    """Run.scores with the eps-network under `eps_precision` (explicitly)."""
    from adlib.method.inversion import invert, make_grid
    points = make_grid(run.cfg.steps, run.cfg.grid)
    with autocast(run.device, eps_precision):
        x = torch.cat([invert(run.model, z[i:i + batch_size].to(run.device), points).cpu()
                       for i in range(0, len(z), batch_size)])
    return scoring.raw_scores(x)


def score_once(run, data, scope):
    """(image scores, 16 x 16 maps, labels, raw test features) of one run under one scope."""
    bb, eps = SCOPES[scope]
    z_val, _, _ = features(run, data.val, f"val {scope}", bb)
    z_test, raw_test, test = features(run, data.test, f"test {scope}", bb)
    record = calibration.fit(raw_scores(run, z_val, eps), run.cfg.score, seed=run.cfg.split_seed)
    raw = raw_scores(run, z_test, eps)
    values = scoring.image_score(raw, run.cfg.score, scoring.Normalizer(**record["normalizer"]))
    return np.asarray(values), raw["map"], np.array([s.label for s in test]), raw_test, test


def _rho(a, b) -> float:
    return float(spearmanr(np.asarray(a).ravel(), np.asarray(b).ravel())[0])


def compare(ref, other, run, masks) -> dict:
    (s32, m32, labels, z32, _), (s16, m16, labels16, z16, _) = ref, other
    assert (labels == labels16).all()
    a32, a16 = (image_metrics(labels, s)["image_auroc"] for s in (s32, s16))
    size = run.cfg.image_size
    p32, p16 = (scoring.pixel_map(m, size).numpy() for m in (m32, m16))
    per_image = [_rho(x, y) for x, y in zip(m32.flatten(1).numpy(), m16.flatten(1).numpy())]
    out = {"auroc_fp32": a32, "auroc_bf16": a16, "d_auroc": a16 - a32,
           "pixel_spearman": _rho(p32, p16), "map_spearman": _rho(m32, m16),
           "image_map_spearman_median": float(np.median(per_image)), "image_map_spearman_min": float(min(per_image)),
           "score_spearman": _rho(s32, s16), "feature_max_rel_diff": float((z16 - z32).abs().max() / z32.std())}
    if masks is not None and masks.any():
        pa32, pa16 = (pixel_metrics(masks, p)["pixel_auroc"] for p in (p32, p16))
        out.update(pixel_auroc_fp32=pa32, pixel_auroc_bf16=pa16, d_pixel_auroc=pa16 - pa32)
    return out


def parity(path, spec, device="cpu", scopes=("all", "eps")) -> list:
    t0 = time.perf_counter()
    run = Run(path, device=device, precision="fp32")
    data = load_spec(spec, run.cfg.split_seed)
    ref = score_once(run, data, "fp32")
    masks = load_masks(ref[4], run.cfg.image_size) if any(s.mask for s in ref[4]) else None
    rows = []
    for scope in scopes:
        r = compare(ref, score_once(run, data, scope), run, masks)
        rows.append({"run": str(path), "data": spec, "model": run.cfg.model, "standardize": run.cfg.standardize,
                     "score": run.cfg.score, "steps": run.cfg.steps, "scope": scope, "device": device,
                     "n_test": len(ref[2]), "n_anomalous": int(ref[2].sum()), **r,
                     "meets": abs(r["d_auroc"]) <= TARGET_AUROC and r["pixel_spearman"] >= TARGET_SPEARMAN,
                     "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "seconds": round(time.perf_counter() - t0, 1)})
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("pairs", nargs="+", metavar="RUN=SPEC")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--scope", nargs="+", default=["all", "eps"], choices=["all", "eps"],
                   help="all: backbone and eps-network in bf16; eps: fp32 backbone, bf16 eps-network")
    p.add_argument("--json", help="append one JSON line per pair and scope here")
    a = p.parse_args()
    for pair in a.pairs:
        path, spec = pair.split("=", 1)
        for r in parity(path, spec, a.device, a.scope):
            pix = f"; pixel AUROC d {r['d_pixel_auroc']:+.4f}" if "d_pixel_auroc" in r else ""
            print(f"{r['data']} ({r['model']}, {r['standardize']}, {r['score']}, S={r['steps']}, {r['n_test']} test "
                  f"images, {a.device}) bf16 scope {r['scope']}: image AUROC fp32 {r['auroc_fp32']:.4f} bf16 "
                  f"{r['auroc_bf16']:.4f} (d {r['d_auroc']:+.4f}); Spearman pixels {r['pixel_spearman']:.5f}, "
                  f"16x16 maps {r['map_spearman']:.5f}, per image median {r['image_map_spearman_median']:.5f} min "
                  f"{r['image_map_spearman_min']:.5f}, image scores {r['score_spearman']:.5f}{pix}; max feature "
                  f"diff {r['feature_max_rel_diff']:.3g} std; {'meets' if r['meets'] else 'MISSES'} the targets "
                  f"[{r['seconds']} s]", flush=True)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()

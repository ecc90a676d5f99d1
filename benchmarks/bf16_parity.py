"""bf16 vs fp32 scoring parity (issue 21): does bf16 autocast change what a run finds?

For each RUN=SPEC pair the run scores the test part of SPEC twice, end to end, once per precision: backbone
features (bf16 ones are cached apart from fp32 ones), the S-step inversion, and a calibration fitted under that
precision on the validation normals. Printed per pair: image AUROC of the run's score under fp32 and bf16 and
their difference, the Spearman correlation of the anomaly maps (all test positions pooled) and of the image
scores, and the largest feature difference relative to the features' spread. Targets: |dAUROC| <= 0.002,
maps Spearman >= 0.999. On the CPU bf16 runs through CPU autocast (slower than fp32 there; this measures
numbers, not speed); `--device cuda` runs the same on a GPU.

    python benchmarks/bf16_parity.py /tmp/bf16/run-mono=elpv:mono:dev /tmp/bf16/run-mini=mvtec:/tmp/bf16/mini
"""
import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from adlib.data import load_spec
from adlib.evaluation.metrics import image_metrics
from adlib.method import calibration, scoring
from adlib.runs.run import Run

TARGET_AUROC, TARGET_SPEARMAN = 0.002, 0.999


def score_once(path, spec, device, precision):
    """(image scores, norm maps, labels, raw test features, run) of one run under one precision."""
    run = Run(path, device=device, precision=precision)
    data = load_spec(spec, run.cfg.split_seed)
    z_val, _ = run.features(data.val, f"val {precision}")
    z_test, test = run.features(data.test, f"test {precision}")
    record = calibration.fit(run.scores(z_val), run.cfg.score, seed=run.cfg.split_seed)
    raw = run.scores(z_test)
    values = scoring.image_score(raw, run.cfg.score, scoring.Normalizer(**record["normalizer"]))
    return np.asarray(values), raw["map"], np.array([s.label for s in test]), z_test, run


def parity(path, spec, device="cpu") -> dict:
    t0 = time.perf_counter()
    s32, m32, labels, z32, run = score_once(path, spec, device, "fp32")
    s16, m16, labels16, z16, _ = score_once(path, spec, device, "bf16")
    assert (labels == labels16).all()
    a32, a16 = (image_metrics(labels, s)["image_auroc"] for s in (s32, s16))
    return {"run": str(path), "data": spec, "model": run.cfg.model, "score": run.cfg.score, "steps": run.cfg.steps,
            "device": device, "n_test": len(labels), "n_anomalous": int(labels.sum()),
            "auroc_fp32": a32, "auroc_bf16": a16, "d_auroc": a16 - a32,
            "map_spearman": float(spearmanr(m32.flatten().numpy(), m16.flatten().numpy())[0]),
            "score_spearman": float(spearmanr(s32, s16)[0]),
            "feature_max_rel_diff": float((z16 - z32).abs().max() / z32.std()),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "seconds": round(time.perf_counter() - t0, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("pairs", nargs="+", metavar="RUN=SPEC")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--json", help="append one JSON line per pair here")
    a = p.parse_args()
    for pair in a.pairs:
        path, spec = pair.split("=", 1)
        r = parity(path, spec, a.device)
        ok = abs(r["d_auroc"]) <= TARGET_AUROC and r["map_spearman"] >= TARGET_SPEARMAN
        print(f"{r['data']} ({r['model']}, {r['score']}, S={r['steps']}, {r['n_test']} test images, {a.device}): "
              f"image AUROC fp32 {r['auroc_fp32']:.4f} bf16 {r['auroc_bf16']:.4f} (d {r['d_auroc']:+.4f}); "
              f"Spearman maps {r['map_spearman']:.5f}, image scores {r['score_spearman']:.5f}; "
              f"max feature diff {r['feature_max_rel_diff']:.3g} std; {'meets' if ok else 'MISSES'} the targets "
              f"(|dAUROC| <= {TARGET_AUROC}, Spearman >= {TARGET_SPEARMAN}) [{r['seconds']} s]", flush=True)
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()

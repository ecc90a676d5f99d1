"""Ablation on one dataset: which denoiser / standardisation / training length makes InvAD work.

    python benchmarks/ablation.py --data elpv:mono --variants mlp-channel mlp-position --iters 400

Each variant trains into OUT/<variant> (reused if present) and reports image AUROC of InvAD for
S in 1, 2, 3, 5 and each score, plus PaDiM and kNN on the same features, as one JSON line per variant.
Variants ending in -ln keep DiT's final LayerNorm (final_norm=True); see docs/bench/ablation-elpv-mono.md.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from adlib import Run, RunConfig, train_run
from adlib.data import load_spec
from adlib.evaluation.baselines import KNN, PaDiM, map_to_image_score
from adlib.evaluation.bench import invad_scorer
from adlib.evaluation.metrics import image_metrics

SMALL = dict(hidden=128, depth=4)
VARIANTS = {
    "mlp-position-ln": dict(model="mlp", standardize="position", model_kwargs=dict(SMALL, final_norm=True)),
    "mlp-channel-ln": dict(model="mlp", standardize="channel", model_kwargs=dict(SMALL, final_norm=True)),
    "mlp-channel": dict(model="mlp", standardize="channel", model_kwargs=SMALL),
    "mlp-whiten": dict(model="mlp", standardize="whiten", model_kwargs=SMALL),
    "mlp-position": dict(model="mlp", standardize="position", model_kwargs=SMALL),
    "mlppos-channel": dict(model="mlp-pos", standardize="channel", model_kwargs=SMALL),
    "mlppos-position": dict(model="mlp-pos", standardize="position", model_kwargs=SMALL),
    "mlp256-position": dict(model="mlp", standardize="position", model_kwargs=dict(hidden=256, depth=4)),
    "mlp256-channel": dict(model="mlp", standardize="channel", model_kwargs=dict(hidden=256)),
    "mlp256-channel-ln": dict(model="mlp", standardize="channel", model_kwargs=dict(hidden=256, final_norm=True)),
    "dit-channel": dict(model="dit", standardize="channel", model_kwargs=dict(hidden=128, depth=3)),
    "dit-position": dict(model="dit", standardize="position", model_kwargs=dict(hidden=128, depth=3)),
    "unet-channel": dict(model="unet", standardize="channel"),
    "unet-position": dict(model="unet", standardize="position"),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="elpv:mono")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--t-focus", type=float, default=0.0)
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--grid", default="paper")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3, 5])
    p.add_argument("--weights", nargs="+", default=["ema"])
    a = p.parse_args()
    data = load_spec(a.data)
    for name in a.variants:
        out = Path(a.out) / a.data.replace(":", "-") / f"{name}-i{a.iters}-b{a.batch_size}-lr{a.lr:g}-f{a.t_focus:g}"
        cfg = RunConfig(data=a.data, iters=a.iters, batch_size=a.batch_size, lr=a.lr, t_focus=a.t_focus,
                        **VARIANTS[name])
        t0 = time.time()
        run = Run(out) if (out / "ema").is_dir() else train_run(cfg, out, progress=False)
        train_s = time.time() - t0
        z_tr, _ = run.features(data.train)
        z_val, _ = run.features(data.val)
        z_te, test = run.features(data.test)
        y = np.array([s.label for s in test])
        row = {"variant": name, "data": a.data, "iters": a.iters, "t_focus": a.t_focus, "train_s": round(train_s, 1)}
        for weights in a.weights:
            r = Run(out, weights)
            for s in a.steps:
                res = invad_scorer(r.model, s, a.grid, z_val)(z_te)
                for k in ("nll", "diff", "combined"):
                    row[f"{weights}/S{s}/{k}"] = round(image_metrics(y, res[k])["image_auroc"], 4)
        row["padim"] = round(image_metrics(y, map_to_image_score(PaDiM().fit(z_tr).map(z_te)))["image_auroc"], 4)
        row["knn"] = round(image_metrics(y, map_to_image_score(KNN().fit(z_tr).map(z_te)))["image_auroc"], 4)
        print("\n" + json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

"""Is ELPV's conservative few-image threshold the local-top normaliser's doing? The default against a normaliser
whose per-position mean and std down-weight outlying normal maps, on development data only.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/robust_normaliser.py --sizes 10 20 50 --draws 10 --c 3 2

Why: one outlying normal cell's out-of-fold map inflates the std of every fold normaliser fitted with it (session
11, docs/bench/few-shot.md: 1.53 against 1.14 in the fold without it). Robust variant (`--c`): each normal map's
mean squared deviation from the per-position median, r_i; with m = median(r), s = 1.4826 MAD(r), a map with
r_i > m + c s gets weight c s / (r_i - m) (Huber's weight on the excess), the others 1; the weighted per-position
mean and variance then go through `scoring.position_stats`'s shrinkage and pooling unchanged. It replaces
`position_stats` everywhere (every fold's normaliser and the deployed one), so calibration stays symmetric.

Per draw of N good ELPV poly cells (few_shot.py's draws, seed 1000 N + d): image AUROC on `elpv:poly:dev`
(designs are chosen there, never on `:test`), kNN beside it, and the realised false-positive rate on the pool's
unseen normals against the promise. One JSON line per draw.
"""
import argparse
import json
import sys

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, "benchmarks")
from feature_sets import raw_features  # noqa: E402
from few_shot import test_scores  # noqa: E402

from adlib.evaluation.baselines import KNN, map_to_image_score  # noqa: E402
from adlib.features.standardize import standardize  # noqa: E402
from adlib.method import scoring  # noqa: E402
from adlib.runs import crossfit  # noqa: E402
from adlib.runs.config import recipe  # noqa: E402

POSITION_STATS = scoring.position_stats


def robust_position_stats(c: float):
    """position_stats with each normal map weighted by how far its mean squared deviation from the per-position
    median, r_i, lies out: w_i = c s / (r_i - m) beyond m + c s (m, s: median and 1.4826 MAD of r), else 1."""
    def stats(maps, prior=scoring.PRIOR_IMAGES, pool=0.0, pool_mean=None):
        pool_mean = pool if pool_mean is None else pool_mean
        a = maps.double().flatten(1)
        n = len(a)
        if n < 6:
            return POSITION_STATS(maps, prior, pool, pool_mean)
        r = (a - a.median(0).values).pow(2).mean(1).numpy()
        m = np.median(r)
        s = 1.4826 * np.median(np.abs(r - m))
        w = np.ones(n)
        big = r > m + c * s
        w[big] = c * s / (r[big] - m)
        w = torch.as_tensor(w / w.sum())
        mean = (w[:, None] * a).sum(0)
        var = (w[:, None] * (a - mean) ** 2).sum(0) / (1 - (w ** 2).sum())
        var = ((n - 1) * var + prior * var.mean()) / (n - 1 + prior)
        mean, var = (1 - pool_mean) * mean + pool_mean * mean.mean(), (1 - pool) * var + pool * var.mean()
        return mean.tolist(), var.sqrt().clamp_min(1e-6).tolist()
    return stats

def one(cfg, z, z_dev, y, unseen) -> dict:
    cfg, stats = crossfit.with_choice(cfg, z)
    stats, model = crossfit.fit_normals(cfg, z, stats)
    cal = crossfit.calibrate(cfg, z, cfg.steps, cfg.grid, cfg.score, 0.05)
    norm = scoring.Normalizer(**cal["normalizer"])
    s, u = test_scores(cfg, stats, model, z_dev, norm), test_scores(cfg, stats, model, unseen, norm)
    zs, zt = standardize(z, stats), standardize(z_dev, stats)
    knn = roc_auc_score(y, map_to_image_score(KNN(seed=0).fit(zs).map(zt)))
    return {"auroc": float(roc_auc_score(y, s)), "knn": float(knn), "unseen_fpr": float((u > cal["threshold"]).mean()),
            "promised": cal["fpr_guaranteed"], "rho": cfg.standardize_choice["chosen"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[20])
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--c", type=float, nargs="+", default=[3.0], help="Huber cut-offs (robust MAD units) to try")
    a = p.parse_args()
    raw = raw_features("elpv:poly:dev")
    pool = torch.cat([raw["train"][0], raw["val"][0]])
    z_dev, y = raw["test"][0], np.array([s.label for s in raw["test"][1]])
    for n in a.sizes:
        for d in range(a.first, a.first + a.draws):
            pick = np.sort(np.random.default_rng(1000 * n + d).choice(len(pool), n, replace=False))
            z, unseen = pool[torch.as_tensor(pick)], pool[torch.as_tensor(np.setdiff1d(np.arange(len(pool)), pick))]
            row = {"n": n, "draw": d}
            for c in [None, *a.c]:
                scoring.position_stats = POSITION_STATS if c is None else robust_position_stats(c)
                row["default" if c is None else f"robust{c:g}"] = one(recipe("cpu"), z, z_dev, y, unseen)
            print(json.dumps(row), flush=True)
    scoring.position_stats = POSITION_STATS


if __name__ == "__main__":
    main()

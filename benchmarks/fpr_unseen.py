"""Is the cross-fitted threshold conservative because the deployed model saw all N normals? The realised
false-positive rate on the pool's unseen normals, scored two ways, over seeded draws of N good ELPV poly cells.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/fpr_unseen.py [--n 20] [--draws 10]

Per draw (the same draws as few_shot.py: seed 1000 N + d): the `cpu` default chooses its Gaussian on the N,
cross-fits its calibration (adlib/runs/crossfit.py), and every pool normal not drawn is scored
- deployed: by the model and normaliser of all N (what `adlib predict` does);
- fold-wise: by each fold's model and normaliser, i.e. exactly as the out-of-fold scores the threshold rests on
  (a CV+-style comparison, no image in its own model).
If only the deployed rate were low, the extra images of the deployed model would be the cause.
"""
import argparse
import sys

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from feature_sets import raw_features  # noqa: E402

from adlib.features.standardize import standardize  # noqa: E402
from adlib.method import calibration, scoring  # noqa: E402
from adlib.method.inversion import invert, make_grid  # noqa: E402
from adlib.runs import crossfit  # noqa: E402
from adlib.runs.config import recipe  # noqa: E402


def one(cfg0, pool, n: int, d: int) -> tuple:
    pick = np.sort(np.random.default_rng(1000 * n + d).choice(len(pool), n, replace=False))
    z, unseen = pool[torch.as_tensor(pick)], pool[torch.as_tensor(np.setdiff1d(np.arange(len(pool)), pick))]
    cfg, _ = crossfit.with_choice(cfg0, z)
    points, ids = make_grid(cfg.steps, cfg.grid), calibration.fold_ids(len(z), cfg.folds, cfg.split_seed)
    oof = crossfit.out_of_fold(cfg, z, ids, cfg.steps, cfg.grid)
    rec = calibration.fit_cross(oof, ids, cfg.score, 0.05, cfg.map_pool)

    def score(zfit, norm):  # the unseen normals under the model fitted to zfit, on norm's scale
        stats, model = crossfit.fit_normals(cfg, zfit)
        return scoring.image_score(scoring.raw_scores(invert(model, standardize(unseen, stats), points)), cfg.score, norm)

    fold_wise = np.concatenate([score(z[torch.as_tensor(np.flatnonzero(ids != f))],
                                      scoring.Normalizer.fit(scoring.subset(oof, np.flatnonzero(ids != f)), cfg.map_pool))
                                for f in range(int(ids.max()) + 1)])
    deployed = score(z, scoring.Normalizer(**rec["normalizer"]))
    return float((fold_wise > rec["threshold"]).mean()), float((deployed > rec["threshold"]).mean()), rec["fpr_guaranteed"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--draws", type=int, default=10)
    a = p.parse_args()
    raw = raw_features("elpv:poly:test")
    pool = torch.cat([raw["train"][0], raw["val"][0]])
    rows = []
    for d in range(a.draws):
        rows.append(one(recipe("cpu"), pool, a.n, d))
        print(f"draw {d}: realised FPR fold-wise {rows[-1][0]:.2%}, deployed {rows[-1][1]:.2%} "
              f"({len(pool) - a.n} unseen normals; promised {rows[-1][2]:.2%})", flush=True)
    fw, dep = np.array(rows)[:, 0], np.array(rows)[:, 1]
    print(f"N = {a.n}, {a.draws} draws: mean realised FPR fold-wise {fw.mean():.2%} (sd {fw.std():.2%}), deployed "
          f"{dep.mean():.2%} (sd {dep.std():.2%}); promised {rows[0][2]:.2%}")


if __name__ == "__main__":
    main()

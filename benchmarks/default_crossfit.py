"""Does `local-top` with cross-fitted per-position statistics rescue `--standardize auto` on moving parts?

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=2 python benchmarks/default_crossfit.py part-rot part-shift [--few]

The `auto` Gaussian is chosen on the training features (as the default); local-top's per-position mean and std
are then fitted (a) on the first calibration half of the validation normals (as in default_suite.py), or (b) on
out-of-fold maps of every normal image (train + validation, 5 seeded folds; each fold's Gaussian refitted with
the chosen rho, not re-chosen), the way cross-fitted calibration sees them. Also the plain maximum of the map.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from default_suite import local_top_auroc  # noqa: E402
from dev_suite import build, few_shot  # noqa: E402
from feature_sets import raw_features  # noqa: E402

from adlib.features.covariance import candidates, choose_gaussian  # noqa: E402
from adlib.features.standardize import standardize  # noqa: E402
from adlib.method import calibration  # noqa: E402


def whiten_with(z, rho, shared):
    _, mean, sigma = next(candidates(z, [] if shared else [rho], shared=shared))
    return {"mean": mean[:, None, :].float(), "chol": torch.linalg.cholesky(sigma).expand(len(mean), -1, -1).float()}


ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("names", nargs="+")
ap.add_argument("--few", action="store_true")
a = ap.parse_args()
sets = build("/tmp/adlib-suite")
for name in a.names:
    raw = raw_features(sets[name])
    (z_tr, _), (z_va, _), (z_te, test) = raw["train"], raw["val"], raw["test"]
    z_tr = few_shot(z_tr) if a.few else z_tr
    y = np.array([s.label for s in test])
    ch = choose_gaussian(z_tr)
    st = {"mean": ch["mean"][:, None, :].float(), "chol": ch["chol"].float()}
    m_te = standardize(z_te, st).norm(dim=1)
    part = calibration.parts(len(z_va), 0)[0]
    normals = torch.cat([z_tr, z_va])
    folds = np.array_split(np.random.default_rng(0).permutation(len(normals)), 5)
    oof = torch.cat([standardize(normals[f], whiten_with(normals[np.setdiff1d(np.arange(len(normals)), f)],
                                                         ch["rho"], ch["shared"])).norm(dim=1) for f in folds])
    print(f"{name}{'@20' if a.few else ''} ({ch['chosen']}): max {roc_auc_score(y, m_te.flatten(1).max(1).values):.4f}"
          f"  local-top, {len(part)} val normals {local_top_auroc(m_te, standardize(z_va[part], st).norm(dim=1), y):.4f}"
          f"  local-top, {len(normals)} out-of-fold normals {local_top_auroc(m_te, oof, y):.4f}", flush=True)

"""What does an eps-network learn beyond the Gaussian? One design on cached features, beside its controls.

    OMP_NUM_THREADS=1 python benchmarks/beyond_gaussian.py --data elpv:poly:dev --standardize whiten \
        --model gaussian+conv --iters 1000 --seed 0

Same features as the kit (EfficientNet-Lite0, 256 px, the run's --standardize fitted on the training
normals). Prints one JSON line with, at each S:
- image AUROC of every InvAD score (nll, diff, combined, local-max, local-top; normalisers fitted on one
  seeded half of the validation normals, as `adlib compare`),
- the same for its control: the Gaussian base alone for `gaussian+...` models (the zero residual), the
  untrained network (eps = 0) for the others,
- PaDiM (max of the Mahalanobis map) and kNN on the same standardised features,
- the denoising loss E||n - eps(x_t, t)||^2 on the validation normals, model vs control (same t and noise):
  a residual that does not go below its base learned nothing, whatever the AUROC says.
Choose designs with `:dev` data; `:test` is for the final table only.
"""
import argparse
import json
import time

import torch
from sklearn.metrics import roc_auc_score

from adlib import models
from adlib.evaluation.baselines import KNN, PaDiM, map_to_image_score
from adlib.evaluation.scorers import invad_scorer
from adlib.method import calibration
from adlib.method.scoring import SCORES
from adlib.runs.config import RunConfig
from adlib.runs.train import fit
from feature_sets import raw_features, standardized, test_labels


def features(spec: str, how: str, split_seed: int = 0):
    raw = raw_features(spec, split_seed)
    first = "position" if how == "pwhiten" else how  # pwhiten: whiten after position (a ridge relative to each variance)
    z, _ = standardized(raw, first)
    if how == "pwhiten":
        z, _ = standardized({part: (zk, None) for part, zk in z.items()}, "whiten")
    return z, test_labels(raw)


def control_of(model, preset, kwargs, z_train, seed):
    """The Gaussian base of a residual model (zero residual), else the untrained network."""
    if isinstance(model, models.EpsResidual):
        return model.base
    torch.manual_seed(seed)
    fresh = models.build_model(preset, z_train.shape[1], z_train.shape[-1], **kwargs).eval()
    return fresh.fit_base(z_train) if hasattr(fresh, "fit_base") else fresh


def aurocs(model, steps, z_norm, z_test, y) -> dict:
    out = invad_scorer(model, steps, "paper", z_norm)(z_test)
    return {k: round(roc_auc_score(y, out[k]), 4) for k in SCORES}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="elpv:poly:dev")
    p.add_argument("--standardize", default="whiten", choices=("position", "whiten", "pwhiten"))
    p.add_argument("--model", default="gaussian+conv", help="a preset of adlib.models.PRESETS")
    p.add_argument("--model-kwargs", type=json.loads, default={}, help='JSON, e.g. \'{"residual_kwargs": {"depth": 3}}\'')
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--lr", type=float, default=RunConfig.lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, nargs="+", default=[2, 3, 5])
    p.add_argument("--baselines", action="store_true", help="also PaDiM and kNN (the same for every model)")
    a = p.parse_args()
    z, y = features(a.data, a.standardize)
    z_norm = z["val"][calibration.parts(len(z["val"]), 0)[0]]
    cfg = RunConfig(data=a.data, model=a.model, model_kwargs=a.model_kwargs, iters=a.iters, seed=a.seed, lr=a.lr,
                    device="cpu", snapshots=False, checkpoint_every=10 ** 9, standardize=a.standardize)
    import tempfile
    from pathlib import Path
    t0 = time.time()
    with tempfile.TemporaryDirectory() as out:
        _, ema, losses, _ = fit(cfg, z["train"], Path(out), progress=False)
    train_s = time.time() - t0
    control = control_of(ema, a.model, a.model_kwargs, z["train"], a.seed)
    row = {"data": a.data, "standardize": a.standardize, "model": a.model, "model_kwargs": a.model_kwargs,
           "iters": a.iters if losses else 0, "seed": a.seed, "lr": a.lr, "train_s": round(train_s, 1),
           "params": sum(q.numel() for q in ema.parameters() if q.requires_grad),
           "val_loss": round(models.denoising_loss(ema, z["val"]), 5),
           "control_val_loss": round(models.denoising_loss(control, z["val"]), 5)}
    for s in a.steps:
        row[f"S{s}"] = aurocs(ema, s, z_norm, z["test"], y)
        row[f"control_S{s}"] = aurocs(control, s, z_norm, z["test"], y)
    if a.baselines:
        for name, method in (("padim", PaDiM()), ("knn", KNN(seed=a.seed))):
            row[name] = round(roc_auc_score(y, map_to_image_score(method.fit(z["train"]).map(z["test"]))), 4)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

"""Label-free choice of the number of steps S (and of the weights): no anomaly labels are used.

Synthetic anomalies are made from the normal validation features themselves (feature-space
CutPaste): in each copy a random k x k patch of positions is replaced either by the features of
another validation image at another place, or by the original plus N(0, 1) noise (in standardised
units). Each candidate setting is scored by the AUROC of the validation normals against their
corrupted copies; the best one is chosen. How close this comes to the best S chosen with test labels
is measured by `benchmarks/ablation.py` and reported in the README.
"""
import numpy as np
import torch

from adlib.evaluation.metrics import image_metrics
from adlib.evaluation.scorers import invad_scorer
from adlib.method.scoring import synthetic_anomalies  # noqa: F401 (moved there; imported from here too)


def rank_settings(model, z_val, steps=(1, 2, 3, 5), grids=("paper",), scores=("nll", "diff", "combined"),
                  seed: int = 0, precision: str = "fp32") -> list:
    """[(auroc on synthetic anomalies, steps, grid, score)], best first."""
    fake = synthetic_anomalies(z_val, seed)
    labels = np.r_[np.zeros(len(z_val)), np.ones(len(fake))]
    rows = []
    for grid in grids:
        for s in steps:
            scorer = invad_scorer(model, s, grid, z_val, precision=precision)
            normal, bad = scorer(z_val), scorer(fake)
            for k in scores:
                auroc = image_metrics(labels, np.r_[normal[k], bad[k]])["image_auroc"]
                rows.append((auroc, s, grid, k))
    return sorted(rows, key=lambda r: -r[0])


def select_run(run_path, steps=(1, 2, 3, 5), grids=("paper",), seed: int = 0, progress: bool = True,
               device: str = None, precision: str = None) -> dict:
    """Rank every saved weight set (final EMA and the snapshots) x S x score on synthetic anomalies."""
    from pathlib import Path

    from tqdm.auto import tqdm

    from adlib.data import load_spec
    from adlib.runs.run import Run
    run = Run(run_path, device=device, precision=precision)
    z_val, _ = run.features(load_spec(run.cfg.data, run.cfg.split_seed).val, "val features")
    snaps = sorted(p.relative_to(run.path).as_posix() for p in (Path(run_path) / "snapshots").glob("iter_*"))
    rows = []
    for weights in tqdm(["ema"] + snaps, desc="select", disable=not progress):
        model = run.model if weights == "ema" else Run(run_path, weights, run.device).model
        rows += [dict(weights=weights, steps=s, grid=g, score=k, synthetic_auroc=a)
                 for a, s, g, k in rank_settings(model, z_val, steps, grids, seed=seed, precision=run.precision)]
    rows.sort(key=lambda r: -r["synthetic_auroc"])
    return {"run": str(run_path), "chosen": rows[0], "ranking": rows, "precision": run.precision}

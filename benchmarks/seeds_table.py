"""Trained runs (one per seed) beside their controls and the baselines, on one dataset: the seeds table.

    OMP_NUM_THREADS=1 python benchmarks/seeds_table.py --data elpv:poly:test runs/issue11/poly-s0 runs/issue11/poly-s1 runs/issue11/poly-s2

For each run: image AUROC of every InvAD score at S (default the run's) for the trained model and for its
control (the fitted Gaussian base alone for Gaussian + residual models, the untrained network otherwise:
`adlib.models.controls.control_model`), with normalisers fitted on the validation half `adlib compare` uses; then
PaDiM and kNN on the same features (the first run's). Prints one JSON line per run and one summary line
with the mean and spread (max - min) over the runs of the run's own score. Score `:test` data once.
"""
import argparse
import json
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

from adlib.data import load_masks, load_spec
from adlib.evaluation.baselines import KNN, PaDiM, map_to_image_score
from adlib.evaluation.metrics import pixel_metrics
from adlib.evaluation.scorers import invad_scorer
from adlib.method import calibration
from adlib.method.scoring import SCORES
from adlib.method.scoring import pixel_map
from adlib.models.controls import control_model
from adlib.runs.run import Run


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int)
    a = p.parse_args()
    rows = []
    for i, path in enumerate(a.runs):
        run = Run(path)
        data = load_spec(a.data, run.cfg.split_seed)
        z_train, _ = run.features(data.train, "train")
        z_val, _ = run.features(data.val, "val")
        z_test, test = run.features(data.test, "test")
        y = np.array([s.label for s in test])
        z_norm = z_val[calibration.parts(len(z_val), run.cfg.split_seed)[0]]
        steps = a.steps or run.cfg.steps
        name, control = control_model(run.model, run.cfg.seed)
        row = {"run": path, "data": a.data, "seed": run.cfg.seed, "model": run.cfg.model,
               "standardize": run.cfg.standardize, "steps": steps, "score": run.cfg.score, "control": name,
               "n_test": len(test), "n_anomalous": int(y.sum())}
        timing = run.path / "timing.json"
        if timing.is_file():
            row["train_seconds"] = json.loads(timing.read_text())["train_seconds"]
        masks = load_masks(test, run.cfg.image_size) if data.has_masks else None

        def pixels(maps):  # pixel AUROC and AUPRO of B x h x w maps, where the data has masks
            m = pixel_metrics(masks, pixel_map(maps, run.cfg.image_size).numpy())
            return {k: round(m[k], 4) for k in ("pixel_auroc", "aupro")}
        for key, model in (("trained", run.model), (name, control)):
            out = invad_scorer(model, steps, run.cfg.grid, z_norm)(z_test)
            row[key] = {k: round(roc_auc_score(y, out[k]), 4) for k in SCORES}
            if masks is not None:
                row[key].update(pixels(out["map"]))
        if i == 0:
            for base, method in (("padim", PaDiM()), ("knn", KNN(seed=run.cfg.seed))):
                maps = method.fit(z_train).map(z_test)
                row[base] = {"image_auroc": round(roc_auc_score(y, map_to_image_score(maps)), 4),
                             **(pixels(maps) if masks is not None else {})}
        rows.append(row)
        print(json.dumps(row), flush=True)
    own = [r["trained"][r["score"]] for r in rows]
    ctl = [r[r["control"]][r["score"]] for r in rows]
    print(json.dumps({"data": a.data, "score": rows[0]["score"], "seeds": len(rows),
                      "trained_mean": round(float(np.mean(own)), 4), "trained_spread": round(max(own) - min(own), 4),
                      "control_mean": round(float(np.mean(ctl)), 4), "control_spread": round(max(ctl) - min(ctl), 4),
                      "padim": rows[0].get("padim"), "knn": rows[0].get("knn")}), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

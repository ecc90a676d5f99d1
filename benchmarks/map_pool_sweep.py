"""Is it the Gaussian's pooling or the score's? The default's chosen Gaussian kept, local-top's per-position map
statistics pooled by lambda = 0, 0.2, 0.5 and the chosen rho (what the default ties lambda to), development suite.

    export ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=2
    python benchmarks/map_pool_sweep.py --only mini-faint-weave,mini-faint-tiles,mini-faint-grain,tex-cloud --out docs/bench/map-pool-sweep.jsonl
    python benchmarks/map_pool_sweep.py --only part-rot,part-shift-faint,mini-faint-unified,elpv-mono --out docs/bench/map-pool-sweep.jsonl

Per set and its @20 version: the cpu default (`RunConfig()`: Gaussian chosen by held-out NLL, `standard` eps,
cross-fitted calibration) with only the normaliser's pool lambda changed (calibration.fit_cross); test image
AUROC of local-top for each lambda, and beside it the label-free synthetic-anomaly AUROC (crossfit.choose_score's
criterion: out-of-fold normals against their feature-space CutPaste copies, each lambda).
The committed rows (session 11) pooled the map's mean and std by lambda alike; since session 12 the normaliser
pools the mean only where the content moves (scoring.mean_pool), so a rerun sweeps the std's pool with that rule.
"""
import argparse
import sys
from pathlib import Path

from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from dev_suite import append_line, default_out_of_fold, each_set  # noqa: E402

from adlib.method import calibration, scoring  # noqa: E402
from adlib.runs import crossfit  # noqa: E402


def sweep(normals, z_te, labels) -> dict:
    cfg, ids, raw, test = default_out_of_fold(normals, z_te, synthetic=True)
    real = {k: raw[k] for k in ("nll", "diff", "map")}
    rows = []
    for pool in sorted({0.0, 0.2, 0.5, cfg.map_pool}):
        record = calibration.fit_cross(real, ids, "local-top", 0.05, pool)
        score = scoring.image_score(test, "local-top", scoring.Normalizer(**record["normalizer"]))
        synthetic = crossfit.choose_score(raw, ids, ("local-top",), pool)["synthetic_auroc"]["local-top"]
        rows.append({"map_pool": pool, "image_auroc": round(float(roc_auc_score(labels, score)), 4),
                     "synthetic_auroc": synthetic})
    return {"chosen": cfg.standardize_choice["chosen"], "rho": cfg.map_pool, "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/adlib-suite")
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="docs/bench/map-pool-sweep.jsonl")
    a = ap.parse_args()
    for name, normals, z_te, labels, _ in each_set(a.root, a.only):
        line = {"data": name, **sweep(normals, z_te, labels)}
        append_line(a.out, line)
        print(name, line["chosen"], [(r["map_pool"], r["image_auroc"], round(r["synthetic_auroc"], 3)) for r in line["rows"]],
              flush=True)


if __name__ == "__main__":
    main()

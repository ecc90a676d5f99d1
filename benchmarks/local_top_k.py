"""How many positions should `local-top` average? The Gaussian base alone (no training), on ELPV's dev halves.

    OMP_NUM_THREADS=1 python benchmarks/local_top_k.py [--data elpv:poly:dev elpv:mono:dev]

For each k in 1..32: image AUROC of local-top (mean of the k largest per-position standardised norm-map
values) at S = 3 with the closed-form Gaussian eps fitted to whitened features, beside PaDiM, combined
and Diff on the same features. One JSON line per data and feature transform. Never run it on `:test`.
"""
import argparse
import json
import sys
from pathlib import Path

from sklearn.metrics import roc_auc_score

from adlib import models
from adlib.evaluation.baselines import PaDiM, map_to_image_score
from adlib.evaluation.scorers import invad_scorer
from adlib.method import calibration, scoring

sys.path.insert(0, str(Path(__file__).parent))
from beyond_gaussian import features  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", default=["elpv:poly:dev", "elpv:mono:dev"])
    p.add_argument("--standardize", nargs="+", default=["whiten", "pwhiten"])
    a = p.parse_args()
    for spec in a.data:
        if spec.endswith(":test"):
            raise SystemExit("choose k on :dev data; :test is scored once, for the final table")
        for how in a.standardize:
            z, y = features(spec, how)
            z_norm = z["val"][calibration.parts(len(z["val"]), 0)[0]]
            base = models.EpsGaussian.fit(z["train"])
            padim = map_to_image_score(PaDiM().fit(z["train"]).map(z["test"]))
            row = {"data": spec, "standardize": how, "padim": round(roc_auc_score(y, padim), 4)}
            default_k = scoring.TOP_K
            for k in (1, 2, 4, 8, 16, 32):
                scoring.TOP_K = k
                out = invad_scorer(base, 3, "paper", z_norm)(z["test"])
                row[f"top{k}"] = round(roc_auc_score(y, out["local-top"]), 4)
            scoring.TOP_K = default_k
            row.update({k: round(roc_auc_score(y, out[k]), 4) for k in ("combined", "diff")})
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

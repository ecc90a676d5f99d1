"""Can a few-image threshold realise the false-positive rate it promises? Full (transductive) conformal against the
kit's cross-fitted threshold, on development data only, and what it costs per judged image.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/full_conformal.py --n 20 --draws 10 \
        > docs/bench/full-conformal.jsonl
    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/full_conformal.py --dataset cloud --n 20 \
        --draws 10 > docs/bench/full-conformal-cloud.jsonl
    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/full_conformal.py --n 10 --draws 10 \
        > docs/bench/full-conformal-n10.jsonl
    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/full_conformal.py --n 50 --draws 10 \
        --unseen 300 > docs/bench/full-conformal-n50.jsonl
    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/full_conformal.py --judge test --n 20 \
        --draws 10 > docs/bench/full-conformal-test-n20.jsonl       # the fixed test set, as few_shot.py

Full conformal (adlib/runs/full_conformal.py): a new image u is judged by the `cpu` default refitted on the N
normals plus u, all N + 1 scored in-sample, u flagged when p(u) = #{i in N + 1 : s_i >= s_u} / (N + 1) <= the
rate promised (the kit's rule, full_conformal.flags: fpr, or 1/(N + 1) when N + 1 < 1/fpr); a normal u
exchangeable with the N is flagged with probability 1/21 = 4.76 % at N = 20, fpr 0.05, the rate the cross-fitted
threshold promises. `adlib predict` decides this way below 50 normals (kit_decides in each line). Its price: one
refit per judged image (closed form: Woodbury, one C x C Cholesky), and no fixed threshold on the deployed score
(a report's threshold line would not decide).

Per draw of N good ELPV poly cells (few_shot.py's draws, seed 1000 N + d, from `elpv:poly:dev`'s pool as
robust_normaliser.py; or, `--dataset cloud`, of the generated tex-cloud texture's 60 normals, its test part's
anomalous images beside them): on the pool's unseen normals (exchangeable with the N) and on `:dev`'s anomalous cells
(all, or seeded subsamples: --unseen, --anomalous), the rate flagged by the kit's cross-fitted threshold (deployed
model of all N) and by full conformal, and full conformal's seconds per judged image (this machine, 1 thread).
`--judge test` judges the fixed test set few_shot.py reports instead (the same draws).
One JSON line per draw, then the means.
"""
import argparse
import json
import sys
import time

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from feature_sets import raw_features  # noqa: E402
from few_shot import load, test_scores  # noqa: E402

from adlib.method import scoring  # noqa: E402
from adlib.runs import crossfit, full_conformal  # noqa: E402
from adlib.runs.config import recipe  # noqa: E402

FPR = 0.05


def one(cfg0, z: torch.Tensor, normals: torch.Tensor, anomalous: torch.Tensor) -> dict:
    cfg, stats = crossfit.with_choice(cfg0, z)
    stats, model = crossfit.fit_normals(cfg, z, stats)
    cal = full_conformal.mark(cfg, crossfit.calibrate(cfg, z, cfg.steps, cfg.grid, cfg.score, FPR))
    norm = scoring.Normalizer(**cal["normalizer"])
    t0 = time.perf_counter()
    p = {k: full_conformal.p_values(cfg, cal, z, imgs) for k, imgs in (("normal", normals), ("anomalous", anomalous))}
    seconds = (time.perf_counter() - t0) / (len(normals) + len(anomalous))
    flag = {k: test_scores(cfg, stats, model, imgs, norm) > cal["threshold"]
            for k, imgs in (("normal", normals), ("anomalous", anomalous))}
    full = {k: full_conformal.flags(cal, v) for k, v in p.items()}  # p <= promised, as predict flags
    return {"promised": cal["fpr_guaranteed"], "rho": cfg.standardize_choice["chosen"], "kit_decides": cal["decision"],
            "fpr_cross_fit": float(flag["normal"].mean()), "fpr_full": float(full["normal"].mean()),
            "tpr_cross_fit": float(flag["anomalous"].mean()), "tpr_full": float(full["anomalous"].mean()),
            "seconds_per_image_full": round(seconds, 3), "normals": len(normals), "anomalous": len(anomalous)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--first", type=int, default=0, help="first draw (to split the draws over processes)")
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--unseen", type=int, default=0, help="unseen pool normals judged per draw (a seeded subsample; 0: all)")
    p.add_argument("--anomalous", type=int, default=0, help="`:dev` anomalous cells judged per draw (a seeded subsample; 0: all)")
    p.add_argument("--dataset", choices=("elpv", "cloud"), default="elpv",
                   help="elpv: poly's pool, `:dev`'s anomalous cells; cloud: few_shot.py's tex-cloud (60 normals)")
    p.add_argument("--judge", choices=("unseen", "test"), default="unseen",
                   help="unseen: the pool's undrawn normals and the anomalous images above; test: the fixed test set "
                        "few_shot.py reports (elpv: `poly:test`, 92 normals + 201 anomalous; cloud: 50 + 45), once "
                        "the design is fixed")
    a = p.parse_args()
    if a.dataset == "elpv":
        raw = raw_features("elpv:poly:dev")
        pool, z_test, y = torch.cat([raw["train"][0], raw["val"][0]]), raw["test"][0], [s.label for s in raw["test"][1]]
        if a.judge == "test":
            held = raw_features("elpv:poly:test")["test"]
            z_test, y = held[0], [s.label for s in held[1]]
    else:
        pool, z_test, y, _ = load("cloud")
    bad = z_test[torch.as_tensor(np.asarray(y) == 1)]
    fixed = z_test[torch.as_tensor(np.asarray(y) == 0)]  # --judge test: the test set's normals
    rows = []
    for d in range(a.first, a.first + a.draws):
        rng = np.random.default_rng(1000 * a.n + d)  # few_shot.py's draw, then the subsamples from the same stream
        pick = np.sort(rng.choice(len(pool), a.n, replace=False))
        rest = rng.choice(np.setdiff1d(np.arange(len(pool)), pick), min(a.unseen or len(pool), len(pool) - a.n), replace=False)
        anom = rng.choice(len(bad), min(a.anomalous or len(bad), len(bad)), replace=False)
        normals = fixed if a.judge == "test" else pool[torch.as_tensor(np.sort(rest))]
        rows.append({"n": a.n, "draw": d, "judged": a.judge,
                     **one(recipe("cpu"), pool[torch.as_tensor(pick)], normals, bad[torch.as_tensor(np.sort(anom))])})
        print(json.dumps(rows[-1]), flush=True)
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0] if k.startswith(("fpr", "tpr", "seconds"))}
    sd = {k: round(float(np.std([r[k] for r in rows])), 4) for k in mean}
    print(json.dumps({"n": a.n, "draws": a.draws, "promised": rows[0]["promised"], "mean": mean, "sd": sd}), flush=True)


if __name__ == "__main__":
    main()

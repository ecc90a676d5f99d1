"""One default for every kind of data: the cpu default and the baselines on the development suite (issue 19).

    export ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1
    python benchmarks/dev_suite.py --root /tmp/adlib-suite
    python benchmarks/default_suite.py --root /tmp/adlib-suite --out docs/bench/default-suite.jsonl [--only part-rot]
    python benchmarks/default_suite.py --table docs/bench/default-suite.jsonl

Per data set of benchmarks/dev_suite.py, and its `@20` version (20 seeded normal images in all), every method is
fitted on the same normal images — train and validation together, as cross-fitted calibration uses them — and
scores the same cached features of the test part (lite0 at 256 px, all four stages; `--backbone`, `--image-size`
and `--stages` change them for every method alike: benchmarks/feature_sweep.py):
- `default`: what `adlib train` + `adlib evaluate` give with the cpu recipe (`RunConfig()`: standardize auto,
  model standard, local-top whose per-position spread is pooled by the chosen rho and mean too where the content
  moves (scoring.mean_pool), cross-fitted calibration);
  also its test false-positive rate at the calibrated threshold (fpr 0.05) and its Hanley-McNeil standard error;
- `default (max)`: the same run scored by the plain maximum of its map (PaDiM's image score);
- `previous`: standardize whiten + per-position gaussian + local-top, the cpu recipe until 2026-12-05;
- `padim (raw)` / `knn (raw)`: as their authors define them, on the raw backbone features (PaDiM: per-position
  mean and covariance + 0.01 I, max of the Mahalanobis map; kNN: nearest of a seeded 10 % of the training
  patches, max over positions); `(standardised)`: the same on the default's whitened features.
Designs are chosen on these development sets only; scikit-image's photographs are held out for judging.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from dev_suite import FEW, SATURATED, build, few_shot  # noqa: E402
from feature_sets import channels, suite_parts  # noqa: E402

from adlib.evaluation.baselines import KNN, PaDiM  # noqa: E402
from adlib.evaluation.scorers import map_scorer  # noqa: E402
from adlib.features.standardize import standardize  # noqa: E402
from adlib.method import scoring  # noqa: E402
from adlib.method.inversion import invert, make_grid  # noqa: E402
from adlib.runs import crossfit  # noqa: E402
from adlib.runs.config import RunConfig  # noqa: E402
from adlib.teach.verdicts import auroc_standard_error  # noqa: E402

PREVIOUS = RunConfig(standardize="whiten", model="gaussian", score="local-top")
BASELINES = ("padim (raw)", "padim (standardised)", "knn (raw)", "knn (standardised)")


def auroc_row(labels, scores, masks=None, maps=None) -> dict:
    row = {"image_auroc": float(roc_auc_score(labels, scores))}
    if masks is not None:
        row["pixel_auroc"] = float(roc_auc_score(masks.ravel(), scoring.pixel_map(maps, masks.shape[-1]).numpy().ravel()))
    return row


def pipeline(cfg, normals, z_te, labels, masks) -> tuple:
    """({score: row}, stats, record) of `adlib train` (cross-fitted) + `adlib evaluate` for a closed-form cfg."""
    t0 = time.perf_counter()
    cfg, stats = crossfit.with_choice(cfg, normals)
    record = crossfit.calibrate(cfg, normals, cfg.steps, cfg.grid, cfg.score)
    _, model = crossfit.fit_normals(cfg, normals, stats)
    z = standardize(z_te, stats)
    points = make_grid(cfg.steps, cfg.grid)
    test = scoring.raw_scores(torch.cat([invert(model, z[i:i + 64], points) for i in range(0, len(z), 64)]))
    norm = scoring.Normalizer(**record["normalizer"])
    rows = {}
    for score in (cfg.score, "max"):
        values = scoring.image_score(test, score, norm)
        rows[score] = auroc_row(labels, values, masks, test["map"])
        if score == cfg.score:
            rows[score]["test_fpr"] = float(np.mean(values[labels == 0] > record["threshold"]))
            rows[score]["fpr_promised"] = record["fpr_guaranteed"]
    info = {"chosen": cfg.standardize_choice.get("chosen"), "map_pool": cfg.map_pool, "folds": record["folds"],
            **{k: record["normalizer"].get(k) for k in ("map_mean_pool", "map_moving")},
            "fit_seconds": round(time.perf_counter() - t0, 1)}
    return rows, stats, info


def evaluate(normals, z_te, labels, masks, seed=0) -> tuple:
    rows = {}
    d, stats, info = pipeline(RunConfig(), normals, z_te, labels, masks)
    se = auroc_standard_error(d["local-top"]["image_auroc"], int(labels.sum()), int((labels == 0).sum()))
    rows["default"] = {**d["local-top"], "se": round(float(se), 4)}
    rows["default (max)"] = d["max"]
    rows["previous"] = pipeline(PREVIOUS, normals, z_te, labels, masks)[0]["local-top"]
    w, w_te = standardize(normals, stats), standardize(z_te, stats)
    for name, (fit_on, test_on) in {"padim (raw)": (normals, z_te), "padim (standardised)": (w, w_te)}.items():
        out = map_scorer(PaDiM().fit(fit_on).map)(test_on)
        rows[name] = auroc_row(labels, out["max"], masks, out["map"])
    for name, (fit_on, test_on) in {"knn (raw)": (normals, z_te), "knn (standardised)": (w, w_te)}.items():
        out = map_scorer(KNN(seed=seed).fit(fit_on).map)(test_on)
        rows[name] = auroc_row(labels, out["max"], masks, out["map"])
    return rows, info


def cell(m):
    return f"{m['image_auroc']:.3f}" + (f" ({m['pixel_auroc']:.3f})" if "pixel_auroc" in m else "")


def verdict(m) -> tuple:
    """(within 0.005 of the best baseline, strictly ahead of every baseline)."""
    best = max(m[c]["image_auroc"] for c in BASELINES)
    return m["default"]["image_auroc"] >= best - 0.005, m["default"]["image_auroc"] > best


def pools(choice: dict) -> str:
    """The pool of local-top's spread, and of its mean where that differs (rows made before it had its own: none)."""
    spread, mean = choice["map_pool"], choice.get("map_mean_pool")
    return f"{spread:g}" + ("" if mean is None or mean == spread else f"; mean {mean:g}")


def table(paths, skip=()) -> str:
    """A markdown table of the JSON lines in paths: image (pixel) AUROC per method, the choice, the targets.
    skip: set names left out, with their @20 versions (e.g. dev_suite.SATURATED)."""
    rows = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines()]
    rows = [r for r in rows if r["data"].split("@")[0] not in skip]
    cols = ("default", "default (max)", "previous") + BASELINES
    lines = ["| data | normals | " + " | ".join(cols) + " | ± se | chosen (pool) | test FPR (promised) | ≥ best − 0.005 | ahead |",
             "|" + "---|" * (len(cols) + 7)]
    for r in rows:
        m, d = r["methods"], r["methods"]["default"]
        ok, ahead = verdict(m)
        lines.append(f"| {r['data']} | {r['n_normals']} | " + " | ".join(cell(m[c]) for c in cols) +
                     f" | {d['se']:.3f} | {r['choice']['chosen']} ({pools(r['choice'])}) | "
                     f"{d['test_fpr']:.1%} ({d['fpr_promised']:.1%}) | {'yes' if ok else '**no**'} | {'yes' if ahead else ''} |")
    ok = [verdict(r["methods"]) for r in rows]
    lines.append(f"\n{sum(o for o, _ in ok)} of {len(ok)} sets within 0.005 of the best baseline; strictly ahead of "
                 f"every baseline on {sum(a for _, a in ok)}; ties at 1.000 on "
                 f"{sum(r['methods']['default']['image_auroc'] == 1.0 for r in rows)}.")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/adlib-suite")
    ap.add_argument("--out", default="docs/bench/default-suite.jsonl")
    ap.add_argument("--only", default="", help="comma-separated set names (benchmarks/dev_suite.py)")
    ap.add_argument("--backbone", default="lite0", help="adlib.features.backbone.BACKBONES (all methods use it)")
    ap.add_argument("--image-size", type=int, default=256, help="backbone input size in pixels (all methods)")
    ap.add_argument("--stages", default="s2+s4+s8+s16", help="lite0 stages kept (benchmarks/feature_sweep.py)")
    ap.add_argument("--table", nargs="*", help="print the markdown table of these JSON-lines files and stop")
    ap.add_argument("--informative", action="store_true",
                    help="with --table: leave out the sets on which every method scored 1.000 (dev_suite.SATURATED)")
    a = ap.parse_args()
    if a.table:
        return print(table(a.table, SATURATED if a.informative else ()))
    run_suite(build(a.root), a.out, a.only, a.backbone, a.image_size, a.stages)


def run_suite(sets: dict, out: str, only: str = "", backbone: str = "lite0", image_size: int = 256,
              stages: str = "s2+s4+s8+s16"):
    """`evaluate` on each set of {name: SPEC} (all normals, then FEW of them), one JSON line each appended to out."""
    for name, spec, (z_tr, z_va, z_te, labels, masks) in suite_parts(sets, only, backbone, image_size):
        for few in (False, True):
            t0 = time.perf_counter()
            normals = channels(torch.cat([z_tr, z_va]), backbone, stages)
            normals = few_shot(normals) if few else normals
            rows, info = evaluate(normals, channels(z_te, backbone, stages), labels, masks)
            line = {"data": name + (f"@{FEW}" if few else ""), "spec": spec, "backbone": backbone,
                    "image_size": image_size, "stages": stages, "n_normals": len(normals), "n_test": len(z_te), "n_anomalous": int(labels.sum()), "methods": rows, "choice": info,
                    "seconds": round(time.perf_counter() - t0, 1)}
            with open(out, "a") as f:
                f.write(json.dumps(line) + "\n")
            print(line["data"], {k: round(v["image_auroc"], 4) for k, v in rows.items()}, info["chosen"],
                  f"{line['seconds']} s", flush=True)

if __name__ == "__main__":
    main()

"""Few good images: what the kit's default model and its cross-fitted calibration give from N normals.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/few_shot.py --dataset elpv \
        --sizes 10 20 50 100 --draws 10 --out docs/bench/few-shot-elpv.json
    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/few_shot.py --dataset texture \
        --sizes 10 20 50 100 --draws 10 --out docs/bench/few-shot-texture.json
    python benchmarks/few_shot.py --summarize docs/bench/few-shot-elpv.json   # -> adlib/method/few_shot.json
    python benchmarks/few_shot.py --table docs/bench/few-shot-elpv.json docs/bench/few-shot-cloud.json

For each N and draw d, N good images are drawn (seeded by N and d) from the training pool: ELPV poly's train +
validation normals, or the generated texture's train/good (`make_mini_mvtec`, weave, 256 px; not a scikit-image
texture). With the `cpu` recipe's model, standardisation and score, fitted on cached features exactly as
`adlib train` fits them (adlib/runs/crossfit.py):
- the calibration is cross-fitted on the N images (`--folds`, 0 = the kit's automatic K), as a run does;
- the model of all N scores the fixed held-out test set (ELPV `poly:test`, normals and anomalous; the texture's
  test part): image AUROC, and the realised false-positive rate on its normals at the calibrated threshold
  against the promise (`fpr_guaranteed`, target fpr 0.05);
- the realised false-positive rate on the pool's normals *not* drawn (`unseen_fpr`): exchangeable with the N, so
  the one the conformal promise speaks of, and measured on hundreds of images (ELPV) instead of the test set's 92;
- PaDiM and kNN (adlib/evaluation/baselines.py) fitted on the same N standardised features, same test set.
The full-data row fits and cross-fits the model on the whole pool, the same way. One JSON file: every draw, then means and spreads per N.
`--summarize FILE` writes the AUROC lost against the full-data model per N (what the train-time warning quotes)
into adlib/method/few_shot.json.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from adlib.evaluation.baselines import KNN, PaDiM, map_to_image_score
from adlib.features.standardize import standardize
from adlib.files import write_json
from adlib.method import calibration, scoring
from adlib.method.inversion import invert, make_grid
from adlib.runs import crossfit
from adlib.runs.config import recipe
from feature_sets import raw_features

ROOT = Path(__file__).resolve().parent.parent
TEXTURE = Path("/tmp/adlib-few-shot-texture")


def load(dataset: str):
    """(pool of raw normal features, raw test features, test labels, data description)."""
    if dataset == "elpv":
        raw, spec = raw_features("elpv:poly:test"), "ELPV poly (pool: train + val normals; test: poly:test)"
    elif dataset == "cloud":  # 60 normals: sizes up to 50
        root = Path("/tmp/adlib-suite")
        if not (root / "tex-cloud").is_dir():
            from dev_suite import build
            build(root)
        raw, spec = raw_features(f"mvtec:{root / 'tex-cloud'}"), "generated tex-cloud texture (benchmarks/dev_suite.py)"
    else:
        from adlib.data import make_mini_mvtec
        if not TEXTURE.is_dir():
            make_mini_mvtec(TEXTURE, seed=0, size=256, n_train=160, n_test_good=60, n_test_per_defect=20)
        raw, spec = raw_features(f"mvtec:{TEXTURE}"), "generated weave texture (make_mini_mvtec seed 0, 256 px)"
    pool = torch.cat([raw["train"][0], raw["val"][0]])
    return pool, raw["test"][0], np.array([s.label for s in raw["test"][1]]), spec


@torch.no_grad()
def test_scores(cfg, stats, model, z_test, normalizer) -> np.ndarray:
    x = invert(model, standardize(z_test, stats), make_grid(cfg.steps, cfg.grid))
    return scoring.image_score(scoring.raw_scores(x), cfg.score, normalizer)


def one(cfg, z, z_test, y, unseen=None) -> dict:
    """Fit on normals z, calibrate by cross-fitting (as `adlib train`), score the test set; baselines beside.
    unseen: the pool's normals not drawn, exchangeable with z: the realised false-positive rate on them is what the
    conformal promise is about (the fixed test set's normals are one sample of ~50-90 images: ~3 points of se)."""
    t0 = time.time()
    cfg, stats = crossfit.with_choice(cfg, z)  # `--standardize auto` chooses on the N images, as `adlib train` does
    stats, model = crossfit.fit_normals(cfg, z, stats)
    row = {"n": len(z)}
    cal = crossfit.calibrate(cfg, z, cfg.steps, cfg.grid, cfg.score, 0.05)
    s = test_scores(cfg, stats, model, z_test, scoring.Normalizer(**cal["normalizer"]))
    row.update(folds=cal["folds"], fpr_guaranteed=cal["fpr_guaranteed"],
               test_fpr=float((s[y == 0] > cal["threshold"]).mean()),
               test_tpr=float((s[y == 1] > cal["threshold"]).mean()))
    if unseen is not None and len(unseen):
        u = test_scores(cfg, stats, model, unseen, scoring.Normalizer(**cal["normalizer"]))
        row.update(unseen_fpr=float((u > cal["threshold"]).mean()), n_unseen=len(unseen))
    row["auroc"] = float(roc_auc_score(y, s))
    zs, zt = standardize(z, stats), standardize(z_test, stats)
    for name, method in (("padim", PaDiM()), ("knn", KNN(seed=0))):
        row[name] = float(roc_auc_score(y, map_to_image_score(method.fit(zs).map(zt))))
    row["seconds"] = round(time.time() - t0, 1)
    return row


def summarize(rows: list, full: dict) -> dict:
    out = {}
    for n in sorted({r["n"] for r in rows}):
        rs = [r for r in rows if r["n"] == n]
        stat = lambda k: {"mean": round(float(np.mean([r[k] for r in rs])), 4), "sd": round(float(np.std([r[k] for r in rs])), 4)}
        keys = ("auroc", "padim", "knn", "test_fpr", "fpr_guaranteed") + (("unseen_fpr",) if "unseen_fpr" in rs[0] else ())
        out[n] = {"draws": len(rs), **{k: stat(k) for k in keys},
                  "auroc_vs_full": round(float(np.mean([r["auroc"] for r in rs])) / full["auroc"], 4),
                  "auroc_minus_knn_worst": round(min(r["auroc"] - r["knn"] for r in rs), 4),
                  "fpr_gap_points": round(100 * float(np.mean([r["test_fpr"] - r["fpr_guaranteed"] for r in rs])), 2)}
        if "unseen_fpr" in rs[0]:
            out[n]["unseen_fpr_gap_points"] = round(100 * float(np.mean([r["unseen_fpr"] - r["fpr_guaranteed"] for r in rs])), 2)
    return out


def write_measured(path: Path):
    """adlib/method/few_shot.json: the AUROC lost against the full-data model per N, from a benchmark file."""
    res = json.loads(path.read_text())
    loss = {str(n): round(res["full"]["auroc"] - s["auroc"]["mean"], 4) for n, s in res["summary"].items()}
    write_json({"data": res["data"], "model": res["model"], "auroc_loss": loss,
                "doc": "docs/bench/few-shot.md", "source": str(Path(path).resolve().relative_to(ROOT))}, calibration.MEASURED)
    print(f"wrote {calibration.MEASURED}: {loss}")


def table(paths) -> str:
    """The markdown table of benchmark files: per N, AUROC against the full data and the baselines, the promise and
    the rates realised on the test set's normals and on the pool's unseen ones."""
    pct = lambda s: f"{100 * s['mean']:.1f}% ± {100 * s['sd']:.1f}%"  # noqa: E731
    out = ["| data | N | image AUROC (mean ± sd) | of full data | PaDiM | kNN | worst draw − kNN | promised FPR | "
           "realised test FPR | realised FPR on unseen normals |", "|" + "---|" * 10]
    for path in paths:
        res = json.loads(Path(path).read_text())
        full, name = res["full"], res["data"].split(" (")[0]
        out.append(f"| {name} | {res['pool']} (all) | {full['auroc']:.3f} | | {full['padim']:.3f} | "
                   f"{full['knn']:.3f} | – | {full['fpr_guaranteed']:.1%} | {full['test_fpr']:.1%} | – |")
        for n, s in res["summary"].items():
            out.append(f"| {name} | {n} | {s['auroc']['mean']:.3f} ± {s['auroc']['sd']:.3f} | "
                       f"{s['auroc_vs_full']:.1%} | {s['padim']['mean']:.3f} | {s['knn']['mean']:.3f} | "
                       f"{s['auroc_minus_knn_worst']:+.4f} | {s['fpr_guaranteed']['mean']:.1%} | {pct(s['test_fpr'])} | "
                       + (pct(s["unseen_fpr"]) if "unseen_fpr" in s else "–") + " |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=("elpv", "texture", "cloud"), default="elpv")
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 50, 100])
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--folds", type=int, default=0, help="cross-fitting folds (0: the kit's automatic K)")
    p.add_argument("--out", type=Path)
    p.add_argument("--summarize", type=Path, help="write adlib/method/few_shot.json from this benchmark file")
    p.add_argument("--table", type=Path, nargs="*", help="print the markdown table of these benchmark files and stop")
    a = p.parse_args()
    if a.table:
        return print(table(a.table))
    if a.summarize:
        return write_measured(a.summarize)
    cfg = recipe("cpu", folds=a.folds)
    pool, z_test, y, spec = load(a.dataset)
    model = {"model": cfg.model, "model_kwargs": cfg.model_kwargs, "standardize": cfg.standardize, "score": cfg.score,
             "steps": cfg.steps, "grid": cfg.grid}
    full = one(cfg, pool, z_test, y)  # the full-data model, calibrated the same way
    print(json.dumps({"full": full}), flush=True)
    rows = []
    for n in a.sizes:
        for d in range(a.draws):
            pick = np.sort(np.random.default_rng(1000 * n + d).choice(len(pool), n, replace=False))
            rest = np.setdiff1d(np.arange(len(pool)), pick)
            rows.append({"draw": d, **one(cfg, pool[torch.as_tensor(pick)], z_test, y, pool[torch.as_tensor(rest)])})
            print(json.dumps(rows[-1]), flush=True)
    res = {"data": spec, "model": f"{cfg.model} on {cfg.standardize} features, {cfg.score}, S = {cfg.steps}",
           "settings": model, "pool": len(pool), "test_normals": int((y == 0).sum()), "test_anomalous": int(y.sum()),
           "fpr_target": 0.05, "folds": a.folds, "full": full, "summary": summarize(rows, full), "rows": rows}
    if a.out:
        write_json(res, a.out)
    print(json.dumps(res["summary"], indent=1))


if __name__ == "__main__":
    main()

"""One default for every kind of data: the candidates and the baselines on the development suite.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=2 python benchmarks/default_suite.py --root /tmp/adlib-suite \
        --out docs/bench/default-suite.jsonl [--only tex-fibre,part-rot] [--few-only] [--with-channel]

Per data set of benchmarks/dev_suite.py (full training set, and its `@20` few-shot version), every method scores
the same cached lite0 features (256 px) of the test part. InvAD rows are what `adlib train` + `adlib evaluate`
produce for a closed-form model (adlib/runs/crossfit.py): S = 3 on the paper grid, standardisation and model
fitted on every normal (train + validation), the normaliser of the local scores fitted on out-of-fold maps of
all of them (10 folds), and `--score auto` chosen from synthetic anomalies of those folds (`choose_score`):
- `default (auto)`: standardise=auto (whiten by the Gaussian chosen on held-out normal features,
  adlib/features/covariance.py), eps = the standard normal's (after that whitening nothing is left to fit),
  score auto; `default (local-top)` / `default (max)` the same run with each score forced;
- `channel+gaussian-auto`: channel standardisation, eps = the closed-form eps of the same chosen Gaussian
  (no whitening: the S-step gains differ per eigen-direction, DESIGN §6);
- `today`: standardise=whiten + per-position `gaussian`, local-top (the cpu recipe), cross-fitted the same way;
- `padim (raw)` / `knn (raw)`: the authors' definitions on the raw backbone features (PaDiM: per-position
  mean and covariance + 0.01 I, max of the Mahalanobis map; kNN: nearest training patch, max over positions);
  `padim (standardised)` / `knn (standardised)`: the same on the default's whitened features.
Also per data set: which candidate the held-out likelihood chose, and the candidate whose test image AUROC is
highest through local-top on validation statistics (what the labels would have chosen; `--reuse` takes those and
the PaDiM / kNN rows from an earlier file: the pipeline change does not touch them).
`--split-calibration` gives the InvAD rows as before cross-fitting (local-top on half the validation normals).
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
from dev_suite import build, few_shot  # noqa: E402
from feature_sets import suite_parts  # noqa: E402

from adlib.evaluation.baselines import KNN, PaDiM  # noqa: E402
from adlib.evaluation.scorers import invad_scorer, map_scorer  # noqa: E402
from adlib.features.covariance import candidates, choose_gaussian  # noqa: E402
from adlib.features.standardize import choice_record, fit_stats, standardize  # noqa: E402
from adlib.method import calibration, scoring  # noqa: E402
from adlib.method.inversion import invert, make_grid  # noqa: E402
from adlib.runs import crossfit  # noqa: E402
from adlib.runs.config import RunConfig  # noqa: E402
from adlib.models import EpsGaussian  # noqa: E402


def gaussian_from(mean, sigma, grid):
    """An EpsGaussian holding a given mean (P x C) and covariance (P x C x C)."""
    m = EpsGaussian(channels=mean.shape[1], grid=grid)
    lam, vec = torch.linalg.eigh(sigma)
    m.mean.copy_(mean.T.reshape(m.mean.shape)), m.eigval.copy_(lam.clamp_min(0)), m.eigvec.copy_(vec)
    return m


def whitening(mean, sigma):
    return {"mean": mean[:, None, :].float(), "chol": torch.linalg.cholesky(sigma).float()}


def local_top_auroc(maps, val_maps, labels):
    """Image AUROC of local-top on maps, normalised on the validation maps (a global scale cancels)."""
    norm = scoring.Normalizer.fit({"nll": np.zeros(len(val_maps)), "diff": np.arange(len(val_maps)), "map": val_maps})
    return float(roc_auc_score(labels, norm.local(maps, "local-top")))


def pipeline(cfg, normals, z_te, labels, masks, score_auto=False) -> dict:
    """What `adlib train` (cross-fitted calibration) + `adlib evaluate` give for a closed-form cfg on these normals:
    test image AUROC of every score (and pixel AUROC), and the `--score auto` choice when asked."""
    ids = calibration.fold_ids(len(normals), cfg.folds, cfg.split_seed)
    raw = crossfit.out_of_fold(cfg, normals, ids, cfg.steps, cfg.grid, synthetic=score_auto)
    norm = scoring.Normalizer.fit(raw)  # fit_cross's deployed normaliser: out-of-fold maps of all n
    stats, model = crossfit.fit_normals(cfg, normals)
    z = standardize(z_te, stats)
    test = scoring.raw_scores(torch.cat([invert(model, z[i:i + 64], make_grid(cfg.steps, cfg.grid))
                                         for i in range(0, len(z), 64)]))
    out = {"image_auroc_by_score": {k: round(float(roc_auc_score(labels, scoring.image_score(test, k, norm))), 4)
                                    for k in ("local-top", "max", "local-max", "nll", "combined")}}
    if masks is not None:
        pm = scoring.pixel_map(test["map"], masks.shape[-1]).numpy()
        out["pixel_auroc"] = float(roc_auc_score(masks.ravel(), pm.ravel()))
    if score_auto:
        out["score_choice"] = crossfit.choose_score(raw, ids)
    out["standardize_choice"] = choice_record(stats).get("chosen")
    return out


def invad_rows(z_tr, z_va, z_te, labels, masks, today=True):
    """The InvAD rows as the pipeline makes them now (cross-fitted), and the score-choice record."""
    normals, rows = torch.cat([z_tr, z_va]), {}
    base = RunConfig(model="standard", standardize="auto", score="auto")
    d = pipeline(base, normals, z_te, labels, masks, score_auto=True)
    chosen = d["score_choice"]["chosen"]
    for name, k in (("default (auto)", chosen), ("default (local-top)", "local-top"), ("default (max)", "max")):
        rows[name] = {"image_auroc": d["image_auroc_by_score"][k], **({"pixel_auroc": d["pixel_auroc"]}
                                                                       if "pixel_auroc" in d else {})}
    if today:
        t = pipeline(RunConfig(model="gaussian", standardize="whiten"), normals, z_te, labels, masks)
        rows["today (whiten+gaussian)"] = {"image_auroc": t["image_auroc_by_score"]["local-top"],
                                           **({"pixel_auroc": t["pixel_auroc"]} if "pixel_auroc" in t else {})}
    by = d["image_auroc_by_score"]
    best = max(by["local-top"], by["max"])
    record = {**d["score_choice"], "auroc_by_score": by, "standardize_chosen_on_normals": d["standardize_choice"],
              "best_by_labels": [k for k in ("local-top", "max") if by[k] >= best - 1e-9]}
    return rows, record


def evaluate(z_tr, z_va, z_te, labels, masks, seed=0, with_channel=False):
    """{method: {image_auroc, pixel_auroc}} and the choice record on one (train, val, test) of raw features."""
    grid, rows = z_tr.shape[-1], {}
    part = calibration.parts(len(z_va), seed)[0]

    def add(name, out):
        row = {"image_auroc": float(roc_auc_score(labels, out["local-top" if "local-top" in out else "max"]))}
        if masks is not None:
            pm = scoring.pixel_map(out["map"], masks.shape[-1]).numpy()
            row["pixel_auroc"] = float(roc_auc_score(masks.ravel(), pm.ravel()))
        rows[name] = row

    def invad(model, tr, va, te):
        return invad_scorer(model, 3, "paper", va[part])(te)

    t0 = time.perf_counter()
    choice = choose_gaussian(z_tr)
    fit_s = time.perf_counter() - t0
    st = {"mean": choice["mean"][:, None, :].float(), "chol": choice["chol"].float()}
    w_tr, w_va, w_te = (standardize(z, st) for z in (z_tr, z_va, z_te))
    add("default (auto)", invad(EpsGaussian(channels=z_tr.shape[1], grid=grid), w_tr, w_va, w_te))
    if with_channel:
        cs = fit_stats(z_tr, "channel")
        c_tr, c_va, c_te = (standardize(z, cs) for z in (z_tr, z_va, z_te))
        ch = choose_gaussian(c_tr)  # chosen again in channel units (the ridge is 0.01 of each channel's variance)
        sigma = ch["chol"] @ ch["chol"].transpose(1, 2)
        add("channel+gaussian-auto", invad(gaussian_from(ch["mean"], sigma, grid), c_tr, c_va, c_te))
    ts = fit_stats(z_tr, "whiten")
    o_tr, o_va, o_te = (standardize(z, ts) for z in (z_tr, z_va, z_te))
    add("today (whiten+gaussian)", invad(EpsGaussian.fit(o_tr), o_tr, o_va, o_te))
    add("padim (raw)", map_scorer(PaDiM().fit(z_tr).map)(z_te))
    add("padim (standardised)", map_scorer(PaDiM().fit(w_tr).map)(w_te))
    add("knn (raw)", map_scorer(KNN(seed=seed).fit(z_tr).map)(z_te))
    add("knn (standardised)", map_scorer(KNN(seed=seed).fit(w_tr).map)(w_te))
    # what the labels would have chosen among the same candidates, through the default's pipeline
    oracle = {}
    for name, mean, sig in candidates(z_tr):
        pad = PaDiM()
        pad.mean, pad.shape = mean[:, None, :], z_tr.shape[-2:]
        pad.chol = torch.linalg.cholesky(sig).expand(len(mean), -1, -1)
        oracle[name] = local_top_auroc(pad.map(z_te), pad.map(z_va[part]), labels)
    best = max(oracle.values())
    record = {"chosen": "shared" if choice["shared"] else f"rho={choice['rho']:g}",
              "held_out_nll": {k: round(v, 2) for k, v in choice["held_out_nll"].items()},
              "auroc_by_candidate": {k: round(v, 4) for k, v in oracle.items()},
              "best_by_labels": [k for k, v in oracle.items() if v >= best - 1e-9],
              "choose_seconds": round(fit_s, 2)}
    return rows, record


COLUMNS = ("default (auto)", "today (whiten+gaussian)", "padim (raw)", "padim (standardised)", "knn (raw)",
           "knn (standardised)")
FORCED = ("default (local-top)", "default (max)")  # the default run with each score forced (cross-fitted rows)


def cell(m):
    return f"{m['image_auroc']:.3f}" + (f" ({m['pixel_auroc']:.3f})" if "pixel_auroc" in m else "")


def table(paths) -> str:
    """A markdown table of the JSON lines in paths: image (pixel) AUROC per method, the choices, targets."""
    rows = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines()]
    forced = all(c in r["methods"] for r in rows for c in FORCED)
    cols = COLUMNS[:1] + (FORCED if forced else ()) + COLUMNS[1:]
    head = ("| data | n train | " + " | ".join(cols) + " | chosen (held-out NLL) |"
            + (" score auto: chosen (synthetic AUROC local-top / max) | best score by labels |" if forced else
               " best by labels |") + " default >= best baseline - 0.005 |")
    lines = [head, "|" + "---|" * (len(cols) + (6 if forced else 5))]
    for r in rows:
        m = r["methods"]
        base = max(m[c]["image_auroc"] for c in COLUMNS[2:])
        ok = m[COLUMNS[0]]["image_auroc"] >= base - 0.005
        if forced:
            sc = r["score_choice"]
            a = sc["synthetic_auroc"]
            extra = f" {sc['chosen']} ({a['local-top']:.3f} / {a['max']:.3f}) | {', '.join(sc['best_by_labels'])} |"
        else:
            best = r["choice"]["best_by_labels"]
            extra = " " + (", ".join(best) if len(best) <= 3 else f"{len(best)} of 12 tie (incl. {best[0]})") + " |"
        lines.append(f"| {r['data']} | {r['n_train']} | " + " | ".join(cell(m[c]) for c in cols) +
                     f" | {r['choice']['chosen']} |" + extra + f" {'yes' if ok else 'no'} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/adlib-suite")
    ap.add_argument("--out", default="docs/bench/default-suite.jsonl")
    ap.add_argument("--only", default="")
    ap.add_argument("--few-only", action="store_true")
    ap.add_argument("--with-channel", action="store_true", help="also the channel+gaussian-auto row (slow: eigh)")
    ap.add_argument("--table", nargs="*", help="print the markdown table of these JSON-lines files and stop")
    ap.add_argument("--reuse", help="take the PaDiM / kNN rows and the Gaussian oracle from this JSON-lines file")
    ap.add_argument("--split-calibration", action="store_true",
                    help="InvAD rows as before cross-fitting (local-top on half the validation normals)")
    ap.add_argument("--no-today", action="store_true", help="skip the cross-fitted `today` row (slow on ELPV)")
    a = ap.parse_args()
    if a.table:
        return print(table(a.table))
    sets = build(a.root)
    reuse = {}
    if a.reuse:
        reuse = {r["data"]: r for r in map(json.loads, Path(a.reuse).read_text().splitlines())}
    for name, spec, (z_tr, z_va, z_te, labels, masks) in suite_parts(sets, a.only):
        for few in ([True] if a.few_only else [False, True]):
            tr = few_shot(z_tr) if few else z_tr
            t0 = time.perf_counter()
            data = name + ("@20" if few else "")
            if data in reuse:
                rows, record = dict(reuse[data]["methods"]), reuse[data]["choice"]
            else:
                rows, record = evaluate(tr, z_va, z_te, labels, masks, with_channel=a.with_channel)
            extra = {}
            if not a.split_calibration:
                invad, extra["score_choice"] = invad_rows(tr, z_va, z_te, labels, masks, today=not a.no_today)
                rows = {k: v for k, v in rows.items() if not k.startswith("today") or a.no_today} | invad
            line = {"data": data, "spec": spec, "n_train": len(tr), "n_val": len(z_va),
                    "n_test": len(z_te), "n_anomalous": int(labels.sum()), "methods": rows, "choice": record,
                    **extra, "calibration": "split" if a.split_calibration else
                    f"cross-fit ({int(calibration.fold_ids(len(tr) + len(z_va)).max()) + 1} folds)",
                    "seconds": round(time.perf_counter() - t0, 1)}
            with open(a.out, "a") as f:
                f.write(json.dumps(line) + "\n")
            print(line["data"], {k: round(v["image_auroc"], 4) for k, v in rows.items()},
                  {k: round(v["pixel_auroc"], 4) for k, v in rows.items() if "pixel_auroc" in v},
                  record["chosen"], extra.get("score_choice", {}).get("chosen"),
                  extra.get("score_choice", {}).get("synthetic_auroc"), f"{line['seconds']} s", flush=True)


if __name__ == "__main__":
    main()

"""How much should the Gaussian pool over positions? Every candidate rho against the labels, and what each
label-free criterion would pick (development suite only; issue 19).

    export ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1
    python benchmarks/rho_sweep.py --only mini-faint-weave,elpv-mono --out docs/bench/rho-sweep.jsonl
    python benchmarks/rho_sweep.py --table docs/bench/rho-sweep.jsonl

Per set of benchmarks/dev_suite.py and its @20 version, the cpu default (`RunConfig()`) is refitted with each
candidate Gaussian forced (rho = 0, 0.2, 0.5, 0.8, 0.9, 1, or one shared Gaussian) and everything else as shipped:
cross-fitted calibration, local-top pooled by that rho, the test part scored (image AUROC). Beside each: the
held-out NLL `--standardize auto` chooses by (adlib/features/covariance.py) and the synthetic-anomaly AUROC of the
out-of-fold normals against their feature-space CutPaste copies (adlib/runs/crossfit.py choose_score's criterion).
The committed rows (session 11) pooled local-top's mean and std by rho alike; a rerun pools the mean only where the
content moves (scoring.mean_pool, session 12).
"""
import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from dev_suite import append_line, each_set  # noqa: E402

from adlib.features.standardize import standardize  # noqa: E402
from adlib.method import calibration, scoring  # noqa: E402
from adlib.method.inversion import invert, make_grid  # noqa: E402
from adlib.runs import crossfit  # noqa: E402
from adlib.runs.config import RunConfig  # noqa: E402

CANDIDATES = [(0.0, False), (0.2, False), (0.5, False), (0.8, False), (0.9, False), (1.0, False), (1.0, True)]


def sweep(normals, z_te, labels) -> dict:
    cfg0, _ = crossfit.with_choice(RunConfig(), normals)
    chosen = (cfg0.standardize_choice["rho"], cfg0.standardize_choice["shared"])
    rows = []
    for rho, shared in CANDIDATES + ([chosen] if chosen not in CANDIDATES else []):  # the choice itself, e.g. 0.7
        name = "shared" if shared else f"rho={rho:g}"
        cfg = replace(cfg0, standardize_choice={**cfg0.standardize_choice, "rho": rho, "shared": shared, "chosen": name})
        ids = calibration.fold_ids(len(normals), cfg.folds, cfg.split_seed)
        raw = crossfit.out_of_fold(cfg, normals, ids, cfg.steps, cfg.grid, synthetic=True)
        synthetic = crossfit.choose_score(raw, ids, ("local-top",), cfg.map_pool)["synthetic_auroc"]["local-top"]
        record = calibration.fit_cross(raw, ids, "local-top", 0.05, cfg.map_pool)
        stats, model = crossfit.fit_normals(cfg, normals)
        test = scoring.raw_scores(invert(model, standardize(z_te, stats), make_grid(cfg.steps, cfg.grid)))
        score = scoring.image_score(test, "local-top", scoring.Normalizer(**record["normalizer"]))
        rows.append({"candidate": name, "image_auroc": round(float(roc_auc_score(labels, score)), 4),
                     "held_out_nll": cfg0.standardize_choice["held_out_nll"].get(name), "synthetic_auroc": synthetic})
    nll = cfg0.standardize_choice["chosen"]
    return {"nll_choice": nll, "nll_choice_auroc": next(r["image_auroc"] for r in rows if r["candidate"] == nll),
            "rows": [r for r in rows if r["candidate"] in NAMES]}


NAMES = ["shared" if shared else f"rho={rho:g}" for rho, shared in CANDIDATES]


def table(paths) -> str:
    lines = [json.loads(x) for p in paths for x in Path(p).read_text().splitlines()]
    names = [r["candidate"] for r in lines[0]["rows"]]
    out = ["| data | " + " | ".join(names) + " | best by labels | held-out NLL picks (regret) | synthetic picks (regret) |",
           "|" + "---|" * (len(names) + 4)]
    regret = {"nll": [], "syn": []}
    for line in lines:
        auc = {r["candidate"]: r["image_auroc"] for r in line["rows"]}
        best = max(auc.values())
        syn = max(line["rows"], key=lambda r: r["synthetic_auroc"])["candidate"]
        regret["nll"].append(best - line["nll_choice_auroc"])  # its own choice, also off this grid (e.g. rho=0.7)
        regret["syn"].append(best - auc[syn])
        out.append(f"| {line['data']} | " + " | ".join(f"{auc[n]:.3f}" for n in names) +
                   f" | {best:.3f} | {line['nll_choice']} ({best - line['nll_choice_auroc']:.3f}) | {syn} ({best - auc[syn]:.3f}) |")
    fixed = {n: sum(max(r["image_auroc"] for r in x["rows"]) - next(r["image_auroc"] for r in x["rows"]
                                                                    if r["candidate"] == n) for x in lines) / len(lines)
             for n in names}
    out.append(f"\nMean regret over {len(lines)} sets: held-out NLL {sum(regret['nll']) / len(lines):.4f} (max "
               f"{max(regret['nll']):.3f}), synthetic {sum(regret['syn']) / len(lines):.4f} (max {max(regret['syn']):.3f}); "
               "a fixed candidate: " + ", ".join(f"{n} {v:.4f}" for n, v in fixed.items()) + ".")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/adlib-suite")
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="docs/bench/rho-sweep.jsonl")
    ap.add_argument("--table", nargs="*")
    a = ap.parse_args()
    if a.table:
        return print(table(a.table))
    for name, normals, z_te, labels, _ in each_set(a.root, a.only):
        line = {"data": name, **sweep(normals, z_te, labels)}
        append_line(a.out, line)
        print(name, line["nll_choice"], [(r["candidate"], r["image_auroc"]) for r in line["rows"]], flush=True)


if __name__ == "__main__":
    main()

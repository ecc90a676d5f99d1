"""Does the content move? The rule that decides whether local-top's per-position map mean is pooled
(`scoring.mean_pool`), against the labels, on the development suite.

    export ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1
    python benchmarks/moving_content.py --out docs/bench/moving-content.jsonl [--only part-rot,mini-faint-weave]
    python benchmarks/moving_content.py --table docs/bench/moving-content.jsonl

Per set and its @20 version: the cpu default (`RunConfig()`: Gaussian chosen by held-out NLL, `standard` eps,
cross-fitted calibration) scored with the map's mean kept per position and with it pooled by rho (the spread pooled
by rho in both); beside them `moving_content` of the out-of-fold normal maps (what the rule reads: >= MOVING pools
the mean) and which of the two the labels prefer (test image AUROC).
"""
import argparse
import json
import sys
from pathlib import Path

from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from dev_suite import append_line, default_out_of_fold, each_set  # noqa: E402

from adlib.method import scoring  # noqa: E402


def compare(normals, z_te, labels) -> dict:
    cfg, _, oof, test = default_out_of_fold(normals, z_te)
    maps, rho = oof["map"], cfg.map_pool
    auroc = {}
    for name, pool_mean in (("mean per position", 0.0), ("mean pooled by rho", rho)):
        mean, std = scoring.position_stats(maps, pool=rho, pool_mean=pool_mean)
        norm = scoring.Normalizer(nll_min=0, nll_max=1, diff_min=0, diff_max=1, map_mean=mean, map_std=std,
                                  map_pool=rho, map_mean_pool=pool_mean)  # only the map's statistics are read
        auroc[name] = round(float(roc_auc_score(labels, scoring.image_score(test, "local-top", norm))), 4)
    moving = scoring.moving_content(maps)
    return {"chosen": cfg.standardize_choice["chosen"], "rho": rho, "moving": round(moving, 4),
            "rule_pools_mean": bool(scoring.mean_pool(maps, rho)[0] > 0), "auroc": auroc}


def table(path) -> str:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    out = ["| data | chosen | moving content | mean per position | mean pooled by rho | rule picks | labels prefer | regret |",
           "|---|---|---|---|---|---|---|---|"]
    regrets, agree = [], 0
    for r in rows:
        a = r["auroc"]
        picked = "mean pooled by rho" if r["rule_pools_mean"] else "mean per position"
        best = max(a, key=a.get)
        regret = max(a.values()) - a[picked]
        tie = abs(a["mean per position"] - a["mean pooled by rho"]) < 0.005
        agree += picked == best or tie
        regrets.append(regret)
        out.append(f"| {r['data']} | {r['chosen']} | {r['moving']:.3f} | {a['mean per position']:.3f} | "
                   f"{a['mean pooled by rho']:.3f} | {'pooled' if r['rule_pools_mean'] else 'per position'} | "
                   f"{'either (< 0.005 apart)' if tie else 'pooled' if best == 'mean pooled by rho' else 'per position'} "
                   f"| {regret:.3f} |")
    out.append(f"\nThe rule (pool the mean when moving content >= {scoring.MOVING}) picks what the labels prefer, or one "
               f"within 0.005 of it, on {agree} of {len(rows)} sets; mean regret {sum(regrets) / len(rows):.4f}, "
               f"max {max(regrets):.3f}.")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/adlib-suite")
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="docs/bench/moving-content.jsonl")
    ap.add_argument("--table", help="print the markdown table of this JSON-lines file and stop")
    a = ap.parse_args()
    if a.table:
        return print(table(a.table))
    for name, normals, z_te, labels, _ in each_set(a.root, a.only):
        line = {"data": name, **compare(normals, z_te, labels)}
        append_line(a.out, line)
        print(name, line["chosen"], line["moving"], line["auroc"], flush=True)


if __name__ == "__main__":
    main()

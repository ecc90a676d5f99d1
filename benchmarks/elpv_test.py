"""The cpu default on ELPV's held-out halves (`elpv:TYPE:test`), split seeds 0-2, beside PaDiM and kNN.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/elpv_test.py --out docs/bench/elpv-test.jsonl
    python benchmarks/elpv_test.py --table docs/bench/elpv-test.jsonl

The default was chosen on the development suite (benchmarks/default_suite.py: ELPV `:dev` halves, generated
textures and parts); this scores it once on the `:test` halves it never saw. Rows as in default_suite.py
(`evaluate`: the default through `adlib train`'s cross-fitted pipeline, the previous default, PaDiM and kNN raw and
on the default's whitened features), every method fitted on the same normals (train + validation of the seed's
split). The default has no trained part, so the split seed is its only source of variation.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from default_suite import BASELINES, evaluate  # noqa: E402
from feature_sets import raw_features, test_labels  # noqa: E402


def table(path) -> str:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    cols = ("default", "previous") + BASELINES
    out = ["| data | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for spec in dict.fromkeys(r["data"] for r in rows):
        rs = [r for r in rows if r["data"] == spec]
        cell = lambda c: (lambda v: f"{np.mean(v):.3f} ± {np.std(v):.3f}")([r["methods"][c]["image_auroc"] for r in rs])
        out.append(f"| {spec} (seeds {', '.join(str(r['seed']) for r in rs)}) | " + " | ".join(cell(c) for c in cols) + " |")
    return "\n".join(out) + "\n\n(mean ± sd over split seeds)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/bench/elpv-test.jsonl")
    ap.add_argument("--types", default="mono,poly")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--table", help="print the markdown table of this JSON-lines file and stop")
    a = ap.parse_args()
    if a.table:
        return print(table(a.table))
    for kind in a.types.split(","):
        for seed in map(int, a.seeds.split(",")):
            t0, spec = time.perf_counter(), f"elpv:{kind}:test"
            raw = raw_features(spec, split_seed=seed)
            labels = test_labels(raw)
            rows, info = evaluate(torch.cat([raw["train"][0], raw["val"][0]]), raw["test"][0], labels, None)
            line = {"data": spec, "seed": seed, "n_normals": len(raw["train"][0]) + len(raw["val"][0]),
                    "n_test": len(labels), "n_anomalous": int(labels.sum()), "methods": rows, "choice": info,
                    "seconds": round(time.perf_counter() - t0, 1)}
            with open(a.out, "a") as f:
                f.write(json.dumps(line) + "\n")
            print(spec, seed, {k: round(v["image_auroc"], 4) for k, v in rows.items()}, info["chosen"], flush=True)


if __name__ == "__main__":
    main()

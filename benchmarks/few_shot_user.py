"""Issue 20's new user, on development data only: 30 good and 8 defective ELPV poly cells to train on, and unseen
cells to judge (300 good from the `elpv:poly:dev` pool, 100 other defective cells of its `:dev` half), copied into
OUT as folders, so the kit's own CLI can be run on them as a user would (docs/bench/few-shot.md):

    python benchmarks/few_shot_user.py --out /tmp/demo && cd /tmp/demo
    adlib train --data folder:user/good:user/bad --out run
    adlib predict run new --out pred
    adlib predict run new --out pred-thr --decision threshold

Counts of flagged images per folder: `python benchmarks/few_shot_user.py --out /tmp/demo --count pred pred-thr`.
"""
import argparse
import shutil
from pathlib import Path

import numpy as np

from adlib.data import load_spec
from adlib.deploy.report import read_predictions


def make(out: Path, seed: int = 2026):
    d = load_spec("elpv:poly:dev", 0)
    pool, bad = d.train + d.val, [s for s in d.test if s.label == 1]
    rng = np.random.default_rng(seed)
    order, bad_order = rng.permutation(len(pool)), rng.permutation(len(bad))
    for name, samples in (("user/good", [pool[i] for i in order[:30]]), ("user/bad", [bad[i] for i in bad_order[:8]]),
                          ("new/good", [pool[i] for i in order[30:330]]), ("new/bad", [bad[i] for i in bad_order[8:108]])):
        (out / name).mkdir(parents=True, exist_ok=True)
        for s in samples:
            shutil.copy(s.path, out / name / Path(s.path).name)
        print(f"{out / name}: {len(samples)} images")


def count(out: Path, folder: str):
    rows = read_predictions(out / folder)
    flagged = {k: sum(r["decision"] == "anomalous" for r in rows if r["name"].startswith(k + "/")) for k in ("good", "bad")}
    total = {k: sum(r["name"].startswith(k + "/") for r in rows) for k in ("good", "bad")}
    print(f"{folder}: {flagged['good']} of {total['good']} good flagged, {flagged['bad']} of {total['bad']} defective")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--count", nargs="*", help="predictions folders under OUT to count instead of making the folders")
    a = p.parse_args()
    if a.count:
        for folder in a.count:
            count(a.out, folder)
    else:
        make(a.out)

"""Time the cpu default's fit from cached features: the `--standardize auto` choice, then the cross-fitted fit.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=2 python benchmarks/choice_time.py --data elpv:all:dev --n 1000

On the first n training images: (1) the choice (adlib/features/covariance.py choose_gaussian: 12 candidates on
four fifths, scored on the held-out fifth, the chosen one refitted), and (2) everything `adlib train` does after
the features are cached for a closed-form run: the choice, the cross-fitted calibration (K folds, each refitting
the chosen Gaussian: adlib/runs/crossfit.py) and the final fit. Wall and process CPU seconds, with the machine's
load average, since shared machines vary.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from feature_sets import raw_features  # noqa: E402

from adlib.features.covariance import choose_gaussian  # noqa: E402
from adlib.runs import crossfit  # noqa: E402
from adlib.runs.config import RunConfig  # noqa: E402


def timed(f):
    load, w, c = os.getloadavg()[0], time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - w, time.process_time() - c, load


ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--data", default="elpv:all:dev")
ap.add_argument("--n", type=int, default=1000)
a = ap.parse_args()
z = raw_features(a.data)["train"][0][:a.n]
where = f"(threads {os.environ.get('OMP_NUM_THREADS', '?')}, load average {{:.1f}} on {os.cpu_count()} cores)"
choice, wall, cpu, load = timed(lambda: choose_gaussian(z))
print(f"{a.data}: {len(z)} images x {tuple(z.shape[1:])}: chose {choice['chosen']} in {wall:.1f} s wall, "
      f"{cpu:.1f} s CPU " + where.format(load), flush=True)


def fit_all():
    cfg, stats = crossfit.with_choice(RunConfig(), z)
    record = crossfit.calibrate(cfg, z, cfg.steps, cfg.grid, cfg.score)
    crossfit.fit_normals(cfg, z, stats)
    return record


record, wall, cpu, load = timed(fit_all)
print(f"choice + {record['folds']}-fold cross-fitted calibration + final fit (the cpu default, as `adlib train` after "
      f"its features): {wall:.1f} s wall, {cpu:.1f} s CPU " + where.format(load))

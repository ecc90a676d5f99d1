"""Time `--standardize auto`'s choice (adlib/features/covariance.py choose_gaussian) from cached features.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=2 python benchmarks/choice_time.py --data elpv:all:dev --n 1000

Prints wall and process CPU seconds for the choice on the first n training images (and for fit_stats(z, "auto"),
which is the choice plus nothing else), with the machine's load average, since shared machines vary.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from feature_sets import raw_features  # noqa: E402

from adlib.features.covariance import choose_gaussian  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--data", default="elpv:all:dev")
ap.add_argument("--n", type=int, default=1000)
a = ap.parse_args()
z = raw_features(a.data)["train"][0][:a.n]
load = os.getloadavg()[0]
w, c = time.perf_counter(), time.process_time()
choice = choose_gaussian(z)
print(f"{a.data}: {len(z)} images x {tuple(z.shape[1:])}: chose {choice['chosen']} in "
      f"{time.perf_counter() - w:.1f} s wall, {time.process_time() - c:.1f} s CPU "
      f"(threads {os.environ.get('OMP_NUM_THREADS', '?')}, load average {load:.1f} on {os.cpu_count()} cores)")

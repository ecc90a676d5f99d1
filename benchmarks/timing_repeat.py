"""Does a speed ratio repeat? InvAD S=3 against reconstruction K=10, timed twice with `adlib.evaluation.bench.measure`.

    OMP_NUM_THREADS=1 python benchmarks/timing_repeat.py            # ELPV mono, about 3-4 minutes on 2 CPU cores

Timing does not depend on training, so no run is trained: the default preset's eps-network
(`build_model("mlp", 192, 16)`) is used untrained, on cached EfficientNet-Lite0 features (256 px) of the
ELPV mono test split, standardised per channel on those features. Three methods, the same compute as in
`adlib compare`: InvAD S=3, reconstruction r=0.1 K=10 with the same weights, and the untrained control
(a second untrained network of the same preset, InvAD S=3). `measure` times them interleaved over rounds
(latent -> score in 9 rounds of one 32-feature batch, then image -> score end to end beside the backbone
alone in 5 rounds); this script does that twice in one process and prints both ratios and their relative
difference, then one JSON line. Longer calls (5 rounds of 64 features) repeated worse on a shared
2-core machine: 2.6 % and 14 % apart in two processes, against 0.9 % and 1.8 % for 9 x 32.
ELPV: CC BY-NC-SA 4.0 (Buerhop-Lutz et al. 2018, Deitsch et al. 2019).
"""
import argparse
import json
import os
import time
from types import SimpleNamespace

import numpy as np
import torch

from adlib.data import load_spec
from adlib.evaluation.bench import invad_scorer, measure, reconstruction_scorer
from adlib.features.backbone import FeatureExtractor
from adlib.features.cache import decode, extract
from adlib.features.standardize import fit_stats, standardize
from adlib.models import build_model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="elpv:mono")
    p.add_argument("--n-test", type=int, default=160, help="test features scored (a seeded subset; 0: all)")
    p.add_argument("--score-images", type=int, default=32, help="features per method per latent round")
    p.add_argument("--score-rounds", type=int, default=9, help="latent -> score rounds")
    p.add_argument("--n-timing", type=int, default=8, help="decoded images per end-to-end round")
    p.add_argument("--rounds", type=int, default=5, help="end-to-end rounds")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    data = load_spec(a.data)
    extractor = FeatureExtractor("lite0", 256).eval()
    z, test = extract(extractor, data.test, desc="test features")
    stats = fit_stats(z, "channel")
    keep = np.random.default_rng(0).permutation(len(z))[:a.n_test or len(z)]
    z_test = standardize(z[keep], stats)
    labels = np.array([test[i].label for i in keep])
    images, _ = decode([test[i] for i in keep[:a.n_timing]], 256)
    torch.manual_seed(0)
    model = build_model("mlp", z.shape[1], z.shape[-1]).eval()
    control = build_model("mlp", z.shape[1], z.shape[-1]).eval()
    methods = [("invad S=3", invad_scorer(model, 3, "paper", z_test), {}),
               ("reconstruction r=0.1 K=10", reconstruction_scorer(model, 0.1, 10), {}),
               ("invad untrained S=3", invad_scorer(control, 3, "paper", z_test), {})]
    run = SimpleNamespace(device="cpu", extractor=extractor, stats=stats, cfg=SimpleNamespace(image_size=256))
    print(f"{a.data}: {len(z_test)} test features, {len(images)} images end to end; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.2f}; "
          f"features ready after {time.perf_counter() - t0:.0f} s")
    repeats = []
    for rep in range(a.repeats):
        t1 = time.perf_counter()
        rows, backbone = measure(methods, run, z_test, labels, None, images, batch_size=a.n_timing, progress=False,
                                 rounds=a.rounds, score_images=a.score_images, score_rounds=a.score_rounds)
        by = {r["name"]: r for r in rows if r.get("score") in (None, "combined")}
        inv, rec, ctl = by["invad S=3"], by["reconstruction r=0.1 K=10"], by["invad untrained S=3"]
        out = {"invad_over_reconstruction": inv["score_images_per_second"] / rec["score_images_per_second"],
               "control_over_invad": ctl["score_images_per_second"] / inv["score_images_per_second"],
               "end_to_end_invad_over_reconstruction": inv["images_per_second"] / rec["images_per_second"],
               "backbone_images_per_second": backbone, "seconds": time.perf_counter() - t1,
               "load_average": os.getloadavg()[0]}
        for name, r in by.items():
            out[name] = {k: round(r[k], 2) for k in ("score_images_per_second", "score_images_per_second_spread",
                                                      "images_per_second", "images_per_second_spread")}
            print(f"  repeat {rep + 1}: {name:<27} {r['score_images_per_second']:8.1f} scores/s "
                  f"(±{100 * r['score_images_per_second_spread']:.0f}% iqr, min {r['score_images_per_second_min']:.1f}, "
                  f"max {r['score_images_per_second_max']:.1f}); end to end {r['images_per_second']:.2f} images/s "
                  f"(±{100 * r['images_per_second_spread']:.0f}%)")
        print(f"repeat {rep + 1}: InvAD S=3 / reconstruction K=10 = {out['invad_over_reconstruction']:.3f} (scores/s), "
              f"{out['end_to_end_invad_over_reconstruction']:.3f} (end to end); control / InvAD S=3 = "
              f"{out['control_over_invad']:.3f}; backbone alone {backbone:.2f} images/s; {out['seconds']:.0f} s")
        repeats.append(out)
    summary = {"data": a.data, "n_test": len(z_test), "rounds": a.rounds, "score_rounds": a.score_rounds,
               "score_images": a.score_images,
               "n_timing": len(images), "threads": torch.get_num_threads(), "repeats": repeats,
               "total_seconds": round(time.perf_counter() - t0, 1)}
    if len(repeats) >= 2:
        for key in ("invad_over_reconstruction", "control_over_invad", "end_to_end_invad_over_reconstruction"):
            r1, r2 = repeats[0][key], repeats[1][key]
            summary[f"{key}_relative_difference"] = abs(r1 - r2) / ((r1 + r2) / 2)
        print("relative difference between the two repeats: " + ", ".join(
            f"{k}: {100 * summary[f'{k}_relative_difference']:.1f}%"
            for k in ("invad_over_reconstruction", "control_over_invad", "end_to_end_invad_over_reconstruction")))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

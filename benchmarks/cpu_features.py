"""Side-by-side CPU speed of the backbone's feature paths (issue 21): which one should the kit run by default?

    OMP_NUM_THREADS=2 python benchmarks/cpu_features.py --data elpv:poly:test --images 64 --rounds 5 \
        --json docs/bench/cpu-features.json

Paths: torch eager fp32 (today), torch channels-last, torch.compile (if it compiles within --compile-timeout),
torch bf16 autocast (where the CPU has bf16: avx512_bf16 / amx), onnxruntime (the FeatureExtractor exported by
adlib/features/engine.py; intra-op threads 2 and the machine's cores). Fixed decoded images (the first --images
test images of --data), batch 16 and 1. Rounds are interleaved (each round runs every path once, in order) so
load on the machine hits all alike; per path: median images/s, min-max over rounds, and max |feature - torch
fp32| over every image.

End to end (`--evaluate RUN`): `adlib evaluate RUN --data DATA` as a subprocess, each time with a fresh, empty
feature cache (the validation and test features are computed), under ADLIB_FEATURE_ENGINE=torch and the default
(auto), rounds interleaved; the onnx graph is built once beforehand into a folder copied into each fresh cache
(its one-time export is timed apart). images/s = (validation + test images) / wall seconds; then the per-image
scores of the two (from their caches) are compared: max |d nll|, |d diff|, |d map|, |d calibrated score|.

    OMP_NUM_THREADS=2 python benchmarks/cpu_features.py --evaluate /tmp/fe/run-poly --data elpv:poly:test \
        --rounds 2 --json docs/bench/cpu-evaluate.json
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from adlib.data import load_spec
from adlib.features.backbone import FeatureExtractor
from adlib.features.cache import decode
from adlib.features.engine import OnnxBackbone, onnx_available, session, graph_path


def cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def paths(fx, threads, compile_timeout):
    """name -> callable(images) -> features float32, for every path that runs here."""
    out = {"torch": lambda x: fx(x)}
    cl = FeatureExtractor(fx.backbone, fx.image_size).to(memory_format=torch.channels_last)
    out["torch-channels-last"] = lambda x: cl(x.contiguous(memory_format=torch.channels_last)).contiguous()
    if cpu_has_bf16():
        def bf16(x):
            with torch.autocast("cpu", torch.bfloat16):
                return fx(x).float()
        out["torch-bf16"] = bf16
    if compile_timeout > 0:
        compiled = torch.compile(FeatureExtractor(fx.backbone, fx.image_size))
        t = time.perf_counter()
        try:
            compiled(torch.rand(16, 3, fx.image_size, fx.image_size))
            compiled(torch.rand(1, 3, fx.image_size, fx.image_size))
            took = time.perf_counter() - t
            if took <= compile_timeout:
                out["torch-compile"] = compiled
            print(f"torch.compile: {took:.0f} s to compile" + ("" if took <= compile_timeout else ", over the limit"))
        except Exception as e:
            print(f"torch.compile failed: {type(e).__name__}: {str(e)[:200]}")
    if onnx_available():
        twin = OnnxBackbone(fx, strict=True)
        t = time.perf_counter()
        twin.ready()
        print(f"onnx graph ready in {time.perf_counter() - t:.1f} s ({graph_path(fx)})")
        out[f"onnxruntime-{threads}t"] = twin
        cores = os.cpu_count()
        if cores != threads:
            sess = session(graph_path(fx), cores)
            out[f"onnxruntime-{cores}t"] = lambda x: torch.from_numpy(sess.run(None, {"images": x.numpy()})[0])
    return out


def run_all(fn, images, batch):
    return torch.cat([fn(images[i:i + batch]) for i in range(0, len(images), batch)])


def evaluate_side_by_side(run_dir, spec, rounds) -> dict:
    """Cold `adlib evaluate` under torch and the default engine, interleaved; then their scores compared."""
    from adlib.features import engine
    from adlib.runs.run import Run
    work = Path(tempfile.mkdtemp(prefix="cpu-eval-"))
    os.environ["ADLIB_CACHE"] = str(work / "prebuilt")
    run = Run(run_dir)
    t = time.perf_counter()
    built = run.extractor.engine is not None and run.extractor.engine.ready()
    export_s = time.perf_counter() - t
    rows, caches, n_val = [], {}, len(load_spec(spec).val)
    for r in range(rounds):
        for name in ("torch", "auto"):
            cache = work / f"{name}-{r}"
            if (work / "prebuilt" / "engines").is_dir():
                shutil.copytree(work / "prebuilt" / "engines", cache / "engines")
            env = dict(os.environ, ADLIB_CACHE=str(cache), ADLIB_FEATURE_ENGINE=name)
            out = work / f"{name}-{r}.json"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "adlib", "evaluate", str(run_dir), "--data", spec, "--json",
                            str(out)], env=env, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t
            rep = json.loads(out.read_text())
            row = rep["methods"][0]
            n = rep["n_test"] + n_val
            rows.append(dict(engine=name, round=r, wall_s=wall, images=n, images_per_s=n / wall,
                             auroc=row.get("image_auroc"), evaluate_images_per_s=row.get("images_per_second"),
                             evaluate_backbone_images_per_s=rep.get("backbone_images_per_second")))
            caches[name] = cache
            print(json.dumps(rows[-1]), flush=True)
    median = {e: statistics.median(x["images_per_s"] for x in rows if x["engine"] == e) for e in ("torch", "auto")}
    return dict(run=str(run_dir), data=spec, onnx_graph_built=built, export_s=export_s, rows=rows,
                median_images_per_s=median, ratio=median["auto"] / median["torch"],
                scores=compare_scores(run, spec, caches))


def compare_scores(run, spec, caches) -> dict:
    """Largest differences between the scores of the torch and the default engine's cached test features."""
    from adlib.features.cache import extract
    from adlib.features.standardize import standardize
    from adlib.method import calibration
    test, record, out = load_spec(spec).test, run.calibration(), {}
    for name, cache in caches.items():
        os.environ["ADLIB_CACHE"] = str(cache)
        z, _ = extract(run.extractor, test, bit_depth=run.bit_depth)  # every entry is there: nothing recomputed
        raw = run.scores(standardize(z, run.stats))
        out[name] = dict(z=z, raw=raw, score=calibration.decide(record, raw)[0])
    a, b = out["torch"], out["auto"]
    d = lambda x, y: float(np.max(np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64))))
    return dict(features=d(a["z"], b["z"]), nll=d(a["raw"]["nll"], b["raw"]["nll"]),
                diff=d(a["raw"]["diff"], b["raw"]["diff"]), map=d(a["raw"]["map"], b["raw"]["map"]),
                calibrated_score=d(a["score"], b["score"]), score_max_abs=float(np.max(np.abs(a["score"]))),
                nll_max_abs=float(np.max(np.abs(a["raw"]["nll"]))),
                same_decisions=bool(np.array_equal(a["score"] > record["threshold"], b["score"] > record["threshold"])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="elpv:poly:test")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--backbone", default="lite0")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 1])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compile-timeout", type=float, default=300, help="seconds; 0 skips torch.compile")
    ap.add_argument("--json")
    ap.add_argument("--evaluate", metavar="RUN", help="the end-to-end side-by-side of `adlib evaluate RUN` instead")
    args = ap.parse_args()
    if args.evaluate:
        report = evaluate_side_by_side(args.evaluate, args.data, args.rounds)
        report.update(load=os.getloadavg(), threads=torch.get_num_threads())
        print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
        return
    threads = torch.get_num_threads()
    samples = load_spec(args.data).test[: args.images]
    images, _ = decode(samples, args.image_size)
    fx = FeatureExtractor(args.backbone, args.image_size)
    fns = paths(fx, threads, args.compile_timeout)
    ref = run_all(fns["torch"], images, 16)
    scale = float(ref.abs().max())
    delta = {name: float((run_all(fn, images, 16) - ref).abs().max()) for name, fn in fns.items()}
    seconds = {(n, b): [] for n in fns for b in args.batch_sizes}
    for r in range(args.rounds + 1):  # round 0 warms up
        for b in args.batch_sizes:
            for name, fn in fns.items():
                t = time.perf_counter()
                run_all(fn, images, b)
                if r:
                    seconds[name, b].append(time.perf_counter() - t)
        print(f"round {r}/{args.rounds} done", flush=True)
    rows = []
    for (name, b), s in seconds.items():
        rates = [len(images) / x for x in s]
        rows.append(dict(path=name, batch=b, images_per_s=statistics.median(rates), min=min(rates), max=max(rates),
                         max_abs_delta=delta[name], relative_delta=delta[name] / scale))
    base = {row["batch"]: row["images_per_s"] for row in rows if row["path"] == "torch"}
    print(f"{'path':24s} {'batch':>5s} {'images/s':>9s} {'min-max':>13s} {'x torch':>7s} {'max|dz|':>9s}")
    for row in rows:
        row["speedup"] = row["images_per_s"] / base[row["batch"]]
        print(f"{row['path']:24s} {row['batch']:5d} {row['images_per_s']:9.1f} {row['min']:6.1f}-{row['max']:<6.1f} "
              f"{row['speedup']:7.2f} {row['max_abs_delta']:9.2e}")
    report = dict(data=args.data, images=len(images), image_size=args.image_size, backbone=args.backbone,
                  threads=threads, rounds=args.rounds, cpu=platform.processor() or platform.machine(),
                  bf16_cpu=cpu_has_bf16(), feature_max_abs=scale, load=os.getloadavg(), torch=torch.__version__,
                  rows=rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()

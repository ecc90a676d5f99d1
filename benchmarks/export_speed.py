"""Images/s of a run's scoring under torch and under its exported ONNX graph (onnxruntime, CPU), side by side.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/export_speed.py --json docs/bench/export-speed.json

From decoded images (float32 B x 3 x 256 x 256, adlib.deploy.export.preprocess) to the calibrated image score and
the norm and pixel maps, both ways: `TorchScorer` (the kit's own path: backbone, standardize, diffusion.invert,
scoring, calibration.decide, pixel_map) and `OnnxScorer` (the graph written by `adlib export`). Without --run
a run is trained first into --run-dir (ELPV mono, mlp, whiten, 256 px, 300 iterations: speed does not depend
on training; about 2 minutes on 2 CPU cores, less when the feature cache holds ELPV). Both scorers use the
same number of threads (--threads; torch.set_num_threads and onnxruntime's intra-op threads). Each round
scores the same --images decoded test images at every batch size with both, interleaved (adlib.evaluation.timing:
the order rotates each round, one untimed warm-up round), so all four meet the same load; rows give the
median over rounds with min, max and relative spread (iqr / median). The two scorers' outputs on those
images are compared first (max abs / rel differences). ELPV: CC BY-NC-SA 4.0 (Buerhop-Lutz et al. 2018,
Deitsch et al. 2019).
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from adlib.deploy import export
from adlib.evaluation.timing import interleaved, rate_summary
from adlib.files import write_json


def _run(a):
    from adlib import RunConfig, train_run
    from adlib.runs.run import Run
    path = Path(a.run or a.run_dir)
    if not a.run and not (path / "config.json").is_file():
        cfg = RunConfig(data=a.data, image_size=a.image_size, model=a.model, standardize=a.standardize, iters=a.iters,
                        device="cpu")
        t0 = time.perf_counter()
        train_run(cfg, path, progress=False)
        print(f"trained {path} in {time.perf_counter() - t0:.0f} s")
    return Run(path, a.weights, "cpu")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="an existing run (default: train one into --run-dir)")
    p.add_argument("--run-dir", default="runs/export-speed-elpv-mono")
    p.add_argument("--data", default="elpv:mono")
    p.add_argument("--model", default="mlp")
    p.add_argument("--standardize", default="whiten")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--weights", default="ema")
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--images", type=int, default=32, help="decoded test images scored per method per round")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--threads", type=int, default=1, help="torch threads = onnxruntime intra-op threads")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    run = _run(a)
    onnx_path = run.path / "export" / "model.onnx"
    exported = export.export_onnx(run, onnx_path, weights=a.weights)
    print(f"exported {onnx_path} in {exported['seconds']} s ({onnx_path.stat().st_size / 2**20:.1f} MiB)")

    from adlib.data import load_spec
    test = load_spec(run.cfg.data, run.cfg.split_seed).test
    pick = [test[round(i * (len(test) - 1) / max(1, a.images - 1))] for i in range(a.images)]  # normal and anomalous
    images = export.preprocess([s.path for s in pick], run.cfg.image_size, run.bit_depth)
    scorers = {"torch": export.TorchScorer(run), "onnxruntime": export.OnnxScorer(onnx_path, threads=a.threads)}
    ref, got = scorers["torch"](images), scorers["onnxruntime"](images)
    diffs = export.max_differences(ref, got)
    same = int((ref["anomalous"] == got["anomalous"]).sum())
    print("onnxruntime vs torch:", {k: f"{v:.2e}" for k, v in diffs.items()}, f"decisions equal {same}/{len(images)}")

    sizes = [int(b) for b in a.batch_sizes.split(",")]

    def task(scorer, b):
        return lambda: [scorer(images[i:i + b]) for i in range(0, len(images), b)]
    tasks = {f"{name} b={b}": task(s, b) for b in sizes for name, s in scorers.items()}
    load = os.getloadavg()[0]
    seconds = interleaved(tasks, a.rounds, warmup=1)
    rows = []
    for b in sizes:
        r = {name: rate_summary(seconds[f"{name} b={b}"], len(images)) for name in scorers}
        rows.append({"batch": b, **{f"{n}_{k}": v for n, s in r.items() for k, v in s.items()},
                     "ratio": r["onnxruntime"]["median"] / r["torch"]["median"]})
    print(f"\nimages/s, decoded {run.cfg.image_size} px image -> score + map, {a.threads} thread(s), "
          f"{a.rounds} interleaved rounds of {len(images)} images (median [min-max], spread = iqr/median)")
    print("| batch | torch | onnxruntime | onnxruntime / torch |\n|---|---|---|---|")
    for row in rows:
        cell = lambda n: (f"{row[n + '_median']:.1f} [{row[n + '_min']:.1f}-{row[n + '_max']:.1f}], "
                          f"spread {row[n + '_spread']:.1%}")
        print(f"| {row['batch']} | {cell('torch')} | {cell('onnxruntime')} | {row['ratio']:.2f}x |")
    import onnxruntime
    report = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/export_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "run": {"path": str(run.path), "data": run.cfg.data, "model": run.cfg.model, "standardize": run.cfg.standardize,
                "image_size": run.cfg.image_size, "backbone": run.cfg.backbone, "weights": a.weights,
                "steps": exported["metadata"]["steps"], "grid": exported["metadata"]["grid"],
                "score": exported["metadata"]["score"]},
        "export_seconds": exported["seconds"], "onnx_mib": round(onnx_path.stat().st_size / 2**20, 2),
        "differences": diffs, "decisions_equal": f"{same}/{len(images)}",
        "threads": a.threads, "images_per_round": len(images), "rounds": a.rounds, "rows": rows,
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "load_average_before": round(load, 2), "load_average_after": round(os.getloadavg()[0], 2),
    }
    if a.json:
        write_json(report, a.json)
        print(f"wrote {a.json}")
    return report


if __name__ == "__main__":
    main()

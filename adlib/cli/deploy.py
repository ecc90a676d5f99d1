"""CLI commands that use a trained run on new images: `adlib predict` and `adlib export`."""
import sys
from pathlib import Path

from adlib.cli.common import add_precision, check_steps
from adlib.deploy import OPSET
from adlib.errors import AdlibError
from adlib.method import DECISIONS, SCORES


def add_parsers(sub):
    """Add the inspection subcommands to the `adlib` parser's subparsers."""
    add_predict_parser(sub)
    add_export_parser(sub)


def add_predict_parser(sub):
    p = sub.add_parser("predict", help="score image files and folders with a trained run: CSV, maps, HTML report",
                       description="Score images with a trained run (streaming, resumable): DIR/predictions.csv, "
                                   "DIR/maps/<name>.png overlays and DIR/report.html. Rerun the same command to "
                                   "continue an interrupted one.")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for predictions.csv, maps/ and report.html")
    p.add_argument("--steps", type=int, help="inversion steps S (default: the run's)")
    p.add_argument("--grid", choices=["paper", "reference"], help="inversion grid (default: the run's)")
    p.add_argument("--score", choices=list(SCORES), help="image score (default: the run's)")
    p.add_argument("--fpr", type=float, help="re-calibrate the threshold at this false-positive rate on the run's "
                   "validation normals (default: the run's calibration)")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to score (default: the run's)")
    p.add_argument("--weights", default="ema", help="ema (default), model (raw), or snapshots/iter_NNNNNN")
    add_precision(p)
    p.add_argument("--skip-bad", action="store_true", help="list undecodable images as skipped instead of stopping")
    p.add_argument("--no-maps", action="store_true", help="write no overlay pictures (faster)")
    p.add_argument("--engine", choices=["auto", "torch", "onnx"], default="auto",
                   help="what scores the images: torch, or onnx (the graph `adlib export RUN` wrote into RUN/export "
                        "for these settings, under onnxruntime on the CPU, ~3x faster); auto (default): onnx when "
                        "that graph exists and onnxruntime is installed, else torch")
    p.add_argument("--onnx", metavar="FILE", help="score with this graph from `adlib export` (engine onnx); it must "
                   "match the run and the settings")
    p.add_argument("--decision", choices=DECISIONS, default="auto",
                   help="how an image is flagged: threshold (its score above the calibrated threshold) or "
                        "full-conformal (ranked among the run's normal images under the model refitted with it: the "
                        "promised false-positive rate is the one realised; torch only, ~0.06 s an image at 20 normals); "
                        "auto (default): full-conformal for cross-fitted runs with fewer than 50 normal images")
    p.set_defaults(fn=cmd_predict)


def cmd_predict(a):
    from adlib.deploy.predict import predict
    from adlib.deploy.report import promise
    from adlib.runs.full_conformal import is_conformal
    if a.batch_size <= 0:
        raise AdlibError(f"--batch-size {a.batch_size} must be positive")
    if a.onnx is not None and a.engine == "torch":
        raise AdlibError(f"--onnx {a.onnx} scores with onnxruntime, --engine torch with torch: give one of them")
    run = open_run(a.run_dir, a.weights, a.device, a.precision)
    try:
        s = predict(run, a.inputs, a.out, a.steps, a.grid, a.score, a.fpr, a.batch_size, a.skip_bad,
                    maps=not a.no_maps, weights=a.weights, engine=a.engine, onnx=a.onnx, decision=a.decision)
    except KeyboardInterrupt:
        print(f"interrupted: the predictions written so far are in {a.out}; run the same command again to "
              f"continue", file=sys.stderr)
        raise SystemExit(130)
    c, speed = s["calibration"], s["images_per_second"]
    engine = f"onnxruntime, {s['onnx']}" if s["engine"] == "onnx" else "torch"
    print(f"engine: {engine} ({s['engine_reason']})", file=sys.stderr)
    if s["hint"]:
        print(f"hint: {s['hint']}", file=sys.stderr)
    skipped_now = f", skipped {s['skipped_now']} undecodable" if s.get("skipped_now") else ""
    print(f"{s['images']} images: {s['anomalous']} anomalous, {s['normal']} normal"
          + (f", {s['skipped']} skipped (undecodable)" if s["skipped"] else "")
          + (f"; scored {s['scored_now']} now at {speed:.1f} images/s{skipped_now}" if speed else
             f"; none scored now{skipped_now}" if skipped_now else "; nothing left to score")
          + (f" (full conformal among {c['n_val']} normal images on {c['score']}: {promise(c, '<=')}); "
             if is_conformal(c) else
             f" (threshold {c['threshold']:.4g} on {c['score']}: {promise(c, '<=')}); ")
          + f"wrote {a.out}/predictions.csv, report.html")


def add_export_parser(sub):
    p = sub.add_parser("export", help="write a trained run as one ONNX graph: decoded images -> score and anomaly maps",
                       description="Export backbone, standardisation, the S inversion steps, scoring and the calibrated "
                                   "normalisation as one ONNX graph (onnxruntime runs it without torch). Input: float32 "
                                   "B x 3 x S x S RGB in [0, 1] as adlib.features.cache.decode gives (adlib.deploy.export.preprocess); "
                                   "outputs: score (B), map (B x S/16 x S/16), pixel_map (B x S x S); the threshold, "
                                   "steps, grid, score and fpr are in the graph's metadata. Needs adlib[onnx].")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--out", metavar="FILE", help="the .onnx file to write (default: RUN/export/<weights>-<steps>-"
                   "<grid>-<score>-<fpr>.onnx, where `adlib predict` finds and uses it)")
    p.add_argument("--steps", type=int, help="inversion steps S (default: the run's)")
    p.add_argument("--grid", choices=["paper", "reference"], help="inversion grid (default: the run's)")
    p.add_argument("--score", choices=list(SCORES), help="image score (default: the run's)")
    p.add_argument("--fpr", type=float, help="re-calibrate the threshold at this false-positive rate on the run's "
                   "validation normals (default: the run's calibration)")
    p.add_argument("--weights", default="ema", help="ema (default), model (raw), or snapshots/iter_NNNNNN")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"],
                   help="dynamo (default, every model family) or torchscript (deprecated; fails on conv and dit models)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(fn=cmd_export)


def cmd_export(a):
    from adlib.deploy.export import default_path, require, tolerance_text
    out = None if a.out is None else Path(a.out)
    if out is not None and out.is_dir():
        raise AdlibError(f"--out {out} is a folder: give the .onnx file to write, e.g. {out / 'model.onnx'}")
    if out is not None and out.exists() and not a.overwrite:
        raise AdlibError(f"--out {out} exists: pass --overwrite to replace it or choose another file")
    if a.fpr is not None and not 0 < a.fpr < 1:
        raise AdlibError(f"--fpr {a.fpr} must be between 0 and 1, e.g. 0.05")
    require(a.exporter)  # onnx, onnxruntime (and onnxscript), before the run is opened: the fix is one pip install
    from adlib.deploy.export import export_onnx
    from adlib.runs.full_conformal import is_conformal
    from adlib.runs.run import Run
    run = Run(a.run_dir, a.weights, "cpu")
    if a.steps is not None:
        check_steps([a.steps], a.grid or run.cfg.grid)
    record = run.calibration(a.steps, a.grid, a.score, a.fpr)
    if out is None:
        out = default_path(run.path, a.weights, record)
        if out.exists() and not a.overwrite:
            raise AdlibError(f"{out} exists (this run's graph for these settings, which `adlib predict` uses): "
                             f"pass --overwrite to replace it")
    conformal = is_conformal(record)
    if conformal:
        from adlib.errors import warn
        warn(f"{run.path} decides by full conformal (each image ranked among its {record['n_val']} normal images), "
             f"which one graph cannot do: the graph flags above the cross-fitted threshold {record['threshold']:.4g}, "
             f"which promises the same <= {record['fpr_guaranteed']:.1%} but flags fewer images (on ELPV at 20 normals "
             f"1.2 % of good and 30 % of defective cells against 6.0 % and 50 %: docs/bench/few-shot.md); "
             f"`adlib predict --decision threshold` uses it")
    r = export_onnx(run, out, a.steps, a.grid, a.score, a.fpr, opset=a.opset, exporter=a.exporter, weights=a.weights,
                    record=record)
    m = r["metadata"]
    size = int(m["image_size"])
    used = "" if a.out is not None else "; `adlib predict --decision threshold` uses it" \
        if conformal else "; `adlib predict` uses it (--engine auto)"
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {r['seconds']:.0f} s): input images float32 "
          f"B x 3 x {size} x {size} in [0, 1]; outputs score, map ({size // 16} x {size // 16}), pixel_map; "
          f"{m['score']} score, S={m['steps']} {m['grid']} grid, anomalous above {float(m['threshold']):.4g} "
          f"(fpr {m['fpr']}){used}")
    if r["check"]:
        c = r["check"]
        print(f"checked against torch on two random images ({tolerance_text()}): largest differences "
              f"{c['map_abs']:.1e} on the map, {c['pixel_map_abs']:.1e} on the pixel map, {c['score_abs']:.1e} on the score")


def open_run(path, weights: str = "ema", device: str = None, precision: str = None):
    """The Run in `path`, or one line saying why it is not a complete run."""
    from adlib.runs.run import Run
    path = Path(path)
    if not path.is_dir():
        raise AdlibError(f"run {path} does not exist: give a run directory made by `adlib train`")
    if not (path / "config.json").is_file():
        raise AdlibError(f"{path / 'config.json'} not found: {path} is not a run directory (make one with `adlib train`)")
    if not (path / "stats.safetensors").is_file():
        raise AdlibError(f"{path / 'stats.safetensors'} is missing: the run {path} did not finish; continue it "
                         f"with `adlib train ... --out {path} --resume`")
    try:
        return Run(path, weights, device, precision)
    except (ValueError, TypeError, KeyError, OSError) as e:  # damaged JSON or weights
        raise AdlibError(f"run {path} cannot be read ({e.__class__.__name__}: {str(e)[:120]}): "
                         f"it is damaged; train it again") from None

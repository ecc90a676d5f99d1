"""`adlib evaluate | compare | benchmark | throughput | select`: measuring a run, alone or beside baselines."""
import sys
from pathlib import Path

from adlib.cli.common import (BACKBONE_CHOICES, MODEL_PRESETS, SPEC_HELP, add_precision, check_positive, check_steps,
                              config_from_args, int_list, print_report, train_options)
from adlib.errors import AdlibError
from adlib.files import write_json
from adlib.method import DECISIONS, SCORES


def cmd_evaluate(a):
    from adlib.data import load_spec
    from adlib.evaluation.evaluate import evaluate_run
    from adlib.runs.run import Run
    run = Run(a.run_dir, a.weights, a.device, a.precision)
    if a.fpr is not None and not 0 < a.fpr < 1:
        raise AdlibError(f"--fpr {a.fpr} must be between 0 and 1, e.g. 0.05")
    if a.steps is not None:
        check_steps([a.steps], a.grid or run.cfg.grid)
    data = load_spec(a.data or run.cfg.data, run.cfg.split_seed)
    if data.info.get("categories"):  # a root of categories: one row each, then the mean
        from adlib.evaluation.benchmark import evaluate_root, to_markdown
        table = evaluate_root(run, data, a.steps, a.grid, a.score, transductive=a.transductive, skip_bad=a.skip_bad)
        print(to_markdown(table))
        if a.json:
            write_json(table, a.json)
            print(f"wrote {a.json}")
        return
    print_report(evaluate_run(run, data, a.steps, a.grid, a.score, a.transductive, skip_bad=a.skip_bad,
                               fpr=a.fpr, decision=a.decision), a.json)


def cmd_compare(a):
    from adlib.data import load_spec
    from adlib.evaluation.bench import compare
    from adlib.runs.config import FEATURE_KEYS
    from adlib.runs.run import Run, finished, train_run
    steps = int_list(a.steps, "--steps", "1,2,3,5,10")
    check_steps(steps, a.grid)
    out = Path(a.out or f"runs/{a.data.replace(':', '-').replace('/', '_')}")
    if finished(out) and not a.resume:  # trained (ema/) or fitted in closed form (model/ only)
        run, asked = Run(out, precision=a.precision), config_from_args(a)
        given = [k for k in FEATURE_KEYS + ("model",) if getattr(a, k) is not None]
        run.cfg.check_matches(asked, out, only=given)  # options given on the command line must agree
    else:
        run = train_run(config_from_args(a), out, resume=a.resume, skip_bad=a.skip_bad).set_precision(a.precision)
    if run.cfg.data != a.data:
        print(f"note: {out} was trained on {run.cfg.data}; scoring {a.data} with it", file=sys.stderr)
    print_report(compare(run, load_spec(a.data, run.cfg.split_seed), steps, a.grid), a.json)


def cmd_benchmark(a):
    from adlib.evaluation.benchmark import benchmark
    if not a.data.startswith("mvtec-root:"):
        raise AdlibError(f"--data {a.data!r}: the benchmark needs a folder of categories, --data mvtec-root:PATH")
    if a.steps is not None:
        check_steps([a.steps], a.grid or "paper")
    benchmark(a.data.split(":", 1)[1], a.out, config_from_args(a), a.setting, a.steps, a.grid, a.score, a.precision)
    print((Path(a.out) / "results.md").read_text())
    print(f"wrote {a.out}/results.csv, results.json, results.md")


def cmd_throughput(a):
    from adlib.evaluation.throughput import format_report, throughput
    sizes = int_list(a.batch_sizes, "--batch-sizes", "1,64")
    if not all(b > 0 for b in sizes):
        raise AdlibError(f"--batch-sizes {a.batch_sizes}: every batch size must be positive")
    check_positive(batches=a.batches, steps=a.steps)
    check_steps([a.steps], a.grid)
    if a.bf16 and a.precision == "fp32":
        raise AdlibError("--bf16 is --precision bf16: give one of --bf16 and --precision fp32")
    report = throughput(a.run, a.model, a.backbone, a.image_size, sizes, a.steps, a.grid, a.device,
                        "bf16" if a.bf16 else a.precision, a.compile, a.warmup, a.batches, not a.no_flops)
    print(format_report(report))
    if a.json:
        write_json(report, a.json)
        print(f"wrote {a.json}")


def cmd_select(a):
    from adlib.evaluation.select import select_run
    steps = int_list(a.steps, "--steps")
    check_steps(steps, a.grid)
    result = select_run(a.run_dir, steps, (a.grid,), device=a.device, precision=a.precision)
    for r in result["ranking"][:10]:
        print(f"{r['synthetic_auroc']:.3f}  {r['weights']:<24} S={r['steps']:<3} {r['grid']:<9} {r['score']}")
    c = result["chosen"]
    print(f"chosen without labels: --weights {c['weights']} --steps {c['steps']} --grid {c['grid']} --score {c['score']}")
    write_json(result, a.json or Path(a.run_dir) / "selection.json")



def add_parsers(sub):
    e = sub.add_parser("evaluate", help="score the test split with a trained run")
    e.add_argument("run_dir")
    e.add_argument("--data", help=f"SPEC ({SPEC_HELP}); default: the run's")
    e.add_argument("--steps", type=int, help="inversion steps S (default: the run's, 3)")
    e.add_argument("--grid", choices=["paper", "reference"])
    e.add_argument("--score", choices=list(SCORES))
    e.add_argument("--transductive", action="store_true", help="fit the combined min-max on the test set (paper)")
    e.add_argument("--weights", default="ema", help="ema (default), model (raw), or snapshots/iter_NNNNNN")
    e.add_argument("--skip-bad", action="store_true")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to score (default: the run's, CUDA when present)")
    e.add_argument("--fpr", type=float, help="re-calibrate the threshold at this false-positive rate on the "
                   "validation normals (default: the run's calibration, 0.05)")
    add_precision(e)
    e.add_argument("--decision", choices=DECISIONS, default="auto",
                   help="how test_fpr / test_tpr decide, as `adlib predict --decision` (auto: full-conformal for "
                        "cross-fitted runs with fewer than 50 normal images, else the threshold)")
    e.add_argument("--json", help="write the report here")
    e.set_defaults(fn=cmd_evaluate)
    c = sub.add_parser("compare", help="InvAD vs reconstruction, PaDiM and kNN on the same features")
    train_options(c, required_out=False)
    c.add_argument("--steps", default="1,2,3,5,10", help="comma-separated S values")
    c.add_argument("--grid", default="paper", choices=["paper", "reference"])
    add_precision(c)
    c.add_argument("--json", help="write the report here")
    c.set_defaults(fn=cmd_compare)
    b = sub.add_parser("benchmark", help="per-category table on a root of MVTec-layout categories (resumable)")
    train_options(b, data_help="mvtec-root:PATH, the folder that holds the category folders")
    b.add_argument("--setting", default="unified", choices=["unified", "per-category"],
                   help="unified: one model for all categories (paper); per-category: one model each")
    b.add_argument("--steps", type=int, help="inversion steps S (default 3)")
    b.add_argument("--grid", choices=["paper", "reference"])
    b.add_argument("--score", choices=list(SCORES))
    add_precision(b)
    b.set_defaults(fn=cmd_benchmark)
    g = sub.add_parser("throughput", help="images/s of scoring (backbone + S-step inversion + score) per batch size")
    g.add_argument("--run", help="a trained run (default: an untrained --model, which times the same)")
    g.add_argument("--model", default="mlp", help="preset when no --run: " + MODEL_PRESETS)
    g.add_argument("--backbone", default="lite0", choices=BACKBONE_CHOICES)
    g.add_argument("--image-size", type=int, default=256)
    g.add_argument("--batch-sizes", default="1,64", help="comma-separated batch sizes (default 1,64)")
    g.add_argument("--steps", type=int, default=3)
    g.add_argument("--grid", default="paper", choices=["paper", "reference"])
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_precision(g, alias_bf16=True)
    g.add_argument("--compile", action="store_true", help="torch.compile the eps-network (compiled in warm-up)")
    g.add_argument("--warmup", type=int, default=2, help="untimed batches first (default 2)")
    g.add_argument("--batches", type=int, default=5, help="timed batches per batch size (default 5)")
    g.add_argument("--no-flops", action="store_true", help="skip counting FLOPs")
    g.add_argument("--json", help="write the report here")
    g.set_defaults(fn=cmd_throughput)
    s = sub.add_parser("select", help="choose S, score and weights without labels (synthetic anomalies on validation)")
    s.add_argument("run_dir")
    s.add_argument("--steps", default="1,2,3,5", help="comma-separated S values to consider")
    s.add_argument("--grid", default="paper", choices=["paper", "reference"])
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to score (default: the run's)")
    add_precision(s)
    s.add_argument("--json", help="write the ranking here (default RUN_DIR/selection.json)")
    s.set_defaults(fn=cmd_select)

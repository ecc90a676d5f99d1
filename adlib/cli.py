"""`adlib` command line (also `python -m adlib`). Bad input -> one line on stderr, exit status 2."""
import argparse
import json
import sys
from pathlib import Path

from .errors import AdlibError

SPEC_HELP = "elpv:mono|poly|all, mvtec:PATH_TO_CATEGORY, or a path to a category folder"


def _train_options(p, required_out=True):
    from .config import RunConfig
    d = RunConfig()
    p.add_argument("--data", default=d.data, help=f"SPEC: {SPEC_HELP} (default {d.data})")
    p.add_argument("--out", required=required_out, help="run directory to write")
    p.add_argument("--backbone", default=d.backbone, choices=["lite0", "b4"])
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--standardize", default=d.standardize, choices=["none", "channel", "position", "whiten"])
    p.add_argument("--model", default=d.model, help="mlp | mlp-pos | unet | dit | dit-paper")
    p.add_argument("--iters", type=int, default=d.iters)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--device", default=d.device, choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--split-seed", type=int, default=d.split_seed)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--skip-bad", action="store_true", help="skip (and count) images that cannot be decoded")


def _check_positive(**options):
    """Reject option values that would silently train nothing, or fail only after the run dir exists."""
    for name, value in options.items():
        if value is not None and not value > 0:
            raise AdlibError(f"--{name.replace('_', '-')} {value} must be positive")


def _check_steps(steps, grid):
    """Inversion steps S are checked before any feature is extracted or any run is trained."""
    from .diffusion import make_grid
    for s in steps:
        try:
            make_grid(s, grid)
        except ValueError as e:
            raise AdlibError(f"--steps {s}: {e}") from None


def _config(a):
    from .config import RunConfig
    _check_positive(iters=a.iters, batch_size=a.batch_size, lr=a.lr, image_size=a.image_size)
    return RunConfig(data=a.data, backbone=a.backbone, image_size=a.image_size, standardize=a.standardize,
                     model=a.model, iters=a.iters, batch_size=a.batch_size, lr=a.lr, device=a.device,
                     seed=a.seed, split_seed=a.split_seed)


def cmd_train(a):
    from .run import train_run
    from accelerate import PartialState
    run = train_run(_config(a), a.out, resume=a.resume, skip_bad=a.skip_bad)
    if PartialState().is_main_process:
        cal = json.loads((run.path / "calibration.json").read_text())
        print(f"trained {run.cfg.model} on {run.cfg.data} ({run.num_processes} process(es)): {run.path} "
              f"(threshold {cal['threshold']:.4g} at {cal['fpr']:.0%} FPR on {cal['n_val']} normal validation images)")


def _print_report(report, json_path):
    from .bench import format_table
    from .evaluate import write_json
    print(format_table(report))
    if json_path:
        write_json(report, json_path)
        print(f"wrote {json_path}")


def cmd_evaluate(a):
    from .data import load_spec
    from .evaluate import evaluate_run
    from .run import Run
    run = Run(a.run_dir, a.weights)
    if a.steps is not None:
        _check_steps([a.steps], a.grid or run.cfg.grid)
    data = load_spec(a.data or run.cfg.data, run.cfg.split_seed)
    _print_report(evaluate_run(run, data, a.steps, a.grid, a.score, a.transductive, skip_bad=a.skip_bad), a.json)


def cmd_compare(a):
    from .bench import compare
    from .data import load_spec
    from .config import FEATURE_KEYS, RunConfig
    from .run import Run, train_run
    try:
        steps = [int(s) for s in a.steps.split(",")]
    except ValueError:
        raise AdlibError(f"--steps {a.steps!r} must be comma-separated integers, e.g. 1,2,3,5,10") from None
    _check_steps(steps, a.grid)
    out = Path(a.out or f"runs/{a.data.replace(':', '-').replace('/', '_')}")
    if (out / "ema" / "config.json").is_file() and not a.resume:
        run, asked, default = Run(out), _config(a), RunConfig()
        given = [k for k in FEATURE_KEYS + ("model",) if getattr(asked, k) != getattr(default, k)]
        run.cfg.check_matches(asked, out, only=given)  # options given on the command line must agree
    else:
        run = train_run(_config(a), out, resume=a.resume, skip_bad=a.skip_bad)
    if run.cfg.data != a.data:
        print(f"note: {out} was trained on {run.cfg.data}; scoring {a.data} with it", file=sys.stderr)
    _print_report(compare(run, load_spec(a.data, run.cfg.split_seed), steps, a.grid), a.json)


def cmd_select(a):
    from .evaluate import write_json
    from .select import select_run
    steps = [int(s) for s in a.steps.split(",")]
    _check_steps(steps, a.grid)
    result = select_run(a.run_dir, steps, (a.grid,))
    for r in result["ranking"][:10]:
        print(f"{r['synthetic_auroc']:.3f}  {r['weights']:<24} S={r['steps']:<3} {r['grid']:<9} {r['score']}")
    c = result["chosen"]
    print(f"chosen without labels: --weights {c['weights']} --steps {c['steps']} --grid {c['grid']} --score {c['score']}")
    write_json(result, a.json or Path(a.run_dir) / "selection.json")


def cmd_make_mini(a):
    from .data.mini import make_mini_mvtec
    path = make_mini_mvtec(a.path, seed=a.seed, size=a.size, overwrite=a.overwrite)
    print(f"wrote a miniature MVTec-layout category to {path}")


def cmd_notebooks(a):
    from .notebooks import run_notebooks
    run_notebooks(profile=a.profile, data=a.data, out=a.out, only=a.only, run_dir=a.run_dir)


def parser():
    p = argparse.ArgumentParser(prog="adlib", description="Reconstruction-free anomaly detection with diffusion models.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="extract features and train an eps-network on normal images")
    _train_options(t)
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("evaluate", help="score the test split with a trained run")
    e.add_argument("run_dir")
    e.add_argument("--data", help=f"SPEC ({SPEC_HELP}); default: the run's")
    e.add_argument("--steps", type=int, help="inversion steps S (default: the run's, 3)")
    e.add_argument("--grid", choices=["paper", "reference"])
    e.add_argument("--score", choices=["nll", "diff", "combined"])
    e.add_argument("--transductive", action="store_true", help="fit the combined min-max on the test set (paper)")
    e.add_argument("--weights", default="ema", help="ema (default), model (raw), or snapshots/iter_NNNNNN")
    e.add_argument("--skip-bad", action="store_true")
    e.add_argument("--json", help="write the report here")
    e.set_defaults(fn=cmd_evaluate)
    c = sub.add_parser("compare", help="InvAD vs reconstruction, PaDiM and kNN on the same features")
    _train_options(c, required_out=False)
    c.add_argument("--steps", default="1,2,3,5,10", help="comma-separated S values")
    c.add_argument("--grid", default="paper", choices=["paper", "reference"])
    c.add_argument("--json", help="write the report here")
    c.set_defaults(fn=cmd_compare)
    s = sub.add_parser("select", help="choose S, score and weights without labels (synthetic anomalies on validation)")
    s.add_argument("run_dir")
    s.add_argument("--steps", default="1,2,3,5", help="comma-separated S values to consider")
    s.add_argument("--grid", default="paper", choices=["paper", "reference"])
    s.add_argument("--json", help="write the ranking here (default RUN_DIR/selection.json)")
    s.set_defaults(fn=cmd_select)
    m = sub.add_parser("make-mini-mvtec", help="write a small generated MVTec-layout category with masks")
    m.add_argument("path")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--size", type=int, default=128)
    m.add_argument("--overwrite", action="store_true")
    m.set_defaults(fn=cmd_make_mini)
    nb = sub.add_parser("notebooks", help="the notebook sequence").add_subparsers(dest="action", required=True)
    r = nb.add_parser("run", help="execute notebooks/NN_*.ipynb in order, headless (papermill), into --out")
    r.add_argument("--profile", default="smoke", help="smoke (committed values) | cpu (ELPV) | full (GPU, paper-sized)")
    r.add_argument("--data", help=f"SPEC for every notebook ({SPEC_HELP}, or mini); default: the profile's")
    r.add_argument("--out", help="folder for executed .ipynb, .html, key numbers (default runs/notebooks-PROFILE)")
    r.add_argument("--only", help="notebook number(s), e.g. 03 or 03,04")
    r.add_argument("--run-dir", help="a trained run for the notebooks that take RUN_DIR")
    r.set_defaults(fn=cmd_notebooks)
    return p


def main(argv=None):
    a = parser().parse_args(argv)
    try:
        a.fn(a)
    except AdlibError as e:
        if a.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: a training run continues with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

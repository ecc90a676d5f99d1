"""`adlib` command line (also `python -m adlib`). Bad input -> one line on stderr, exit status 2."""
import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path

from .errors import AdlibError
from .files import write_json
from .scoring import SCORES

SPEC_HELP = ("elpv:mono|poly|all[:dev|test], mvtec:PATH_TO_CATEGORY, mvtec-root:PATH (every category in it: one unified model), "
             "folder:NORMAL_DIR[:ANOMALOUS_DIR] (your images, no masks; ':' separates the folders), "
             "or a path to a category folder; relative names not found here are looked up in data/ ($ADLIB_DATA)")


MODEL_PRESETS = ("mlp | mlp-pos | conv | unet | dit | dit-paper | gaussian | gaussian+mlp | gaussian+conv | "
                 "gaussian+dit")  # adlib.models.PRESETS (not imported here: diffusers is slow to import)


def _json_object(text: str, option: str) -> dict:
    """A JSON object from the command line, or one line naming the option."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{option} {text!r} is not JSON ({e.msg}): "
                                         f"write e.g. '{{\"hidden\": 256}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{option} {text!r} must be a JSON object, e.g. '{{\"hidden\": 256}}'")
    return value


# option -> (type or choices, help); each defaults to the chosen --recipe's value (adlib/config.py RECIPES)
TRAIN_OPTIONS = {
    "backbone": (["lite0", "b4"], "lite0 works offline; b4 is the paper's (its weights are a download)"),
    "image_size": (int, "input size in pixels"),
    "standardize": (["none", "channel", "position", "whiten"], "feature standardisation"),
    "model": (str, "a preset: " + MODEL_PRESETS + "; `gaussian` is fitted in seconds, `gaussian+conv` trains a "
                   "residual over it"),
    "model_kwargs": (lambda text: _json_object(text, "--model-kwargs"),
                     'JSON settings over the preset\'s, e.g. \'{"residual_kwargs": {"depth": 3}}\''),
    "iters": (int, "training iterations (a model with nothing to train, `gaussian`, is fitted instead)"),
    "epochs": (float, "passes over the training images; sets the iterations from the data size"),
    "batch_size": (int, "effective batch, split across processes under accelerate launch"),
    "lr": (float, "peak learning rate"),
    "warmup": (float, "fraction of the iterations spent warming the learning rate up"),
    "device": (["auto", "cpu", "cuda"], "auto picks CUDA when present"),
    "seed": (int, "seed for weights, batches and noise"),
    "split_seed": (int, "seed of the train/val/test split"),
    "bit_depth": (int, "bits of integer images (8..16; 0 = float images in [0, 1]); -1 infers it from the "
                       "training images"),
}


def _train_options(p, required_out=True, data_help=None):
    from .config import RECIPES, RunConfig
    d = RunConfig()
    if data_help:
        p.add_argument("--data", required=True, help=data_help)
    else:
        p.add_argument("--data", default=d.data, help=f"SPEC: {SPEC_HELP} (default {d.data})")
    p.add_argument("--out", required=required_out, help="run directory to write")
    p.add_argument("--recipe", default="cpu", choices=list(RECIPES),
                   help="cpu: small and fast (default); paper: the paper's DiT and schedule, for GPUs")
    for name, (kind, text) in TRAIN_OPTIONS.items():
        typed = {"choices": kind} if isinstance(kind, list) else {"type": kind}
        p.add_argument("--" + name.replace("_", "-"), **typed, help=f"{text} (cpu recipe: {getattr(d, name)})")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--skip-bad", action="store_true", help="skip (and count) images that cannot be decoded")


def _check_positive(**options):
    """Reject option values that would silently train nothing, or fail only after the run dir exists."""
    for name, value in options.items():
        if value is not None and not value > 0:
            raise AdlibError(f"--{name.replace('_', '-')} {value} must be positive")


def _int_list(text: str, option: str, example: str = "1,2,3,5") -> list:
    """`1,2,3` -> [1, 2, 3], or one line naming the option."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise AdlibError(f"{option} {text!r} must be comma-separated integers, e.g. {example}") from None


def _check_steps(steps, grid):
    """Inversion steps S are checked before any feature is extracted or any run is trained."""
    from .diffusion import make_grid
    for s in steps:
        try:
            make_grid(s, grid)
        except ValueError as e:
            raise AdlibError(f"--steps {s}: {e}") from None


def _config(a):
    """The recipe's RunConfig with every option given on the command line applied over it."""
    from .config import recipe
    _check_positive(iters=a.iters, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, image_size=a.image_size)
    given = {k: getattr(a, k) for k in TRAIN_OPTIONS if getattr(a, k) is not None}
    if "iters" in given and "epochs" not in given:
        given["epochs"] = 0.0  # an explicit --iters beats the recipe's epochs
    return recipe(a.recipe, data=a.data, **given)


def cmd_train(a):
    from .run import train_run
    from accelerate import PartialState
    run = train_run(_config(a), a.out, resume=a.resume, skip_bad=a.skip_bad)
    if PartialState().is_main_process:
        cal = json.loads((run.path / "calibration.json").read_text())
        print(f"trained {run.cfg.model} on {run.cfg.data} ({run.num_processes} process(es)): {run.path} "
              f"(threshold {cal['threshold']:.4g}: false-positive rate <= {cal['fpr_guaranteed']:.1%} guaranteed "
              f"from {cal['n_threshold']} of {cal['n_val']} normal validation images)")


def _print_report(report, json_path):
    from .bench import format_table
    print(format_table(report))
    if json_path:
        write_json(report, json_path)
        print(f"wrote {json_path}")


def cmd_evaluate(a):
    from .data import load_spec
    from .evaluate import evaluate_run
    from .run import Run
    run = Run(a.run_dir, a.weights, a.device)
    if a.fpr is not None and not 0 < a.fpr < 1:
        raise AdlibError(f"--fpr {a.fpr} must be between 0 and 1, e.g. 0.05")
    if a.steps is not None:
        _check_steps([a.steps], a.grid or run.cfg.grid)
    data = load_spec(a.data or run.cfg.data, run.cfg.split_seed)
    if data.info.get("categories"):  # a root of categories: one row each, then the mean
        from .benchmark import evaluate_root, to_markdown
        table = evaluate_root(run, data, a.steps, a.grid, a.score, transductive=a.transductive, skip_bad=a.skip_bad)
        print(to_markdown(table))
        if a.json:
            write_json(table, a.json)
            print(f"wrote {a.json}")
        return
    _print_report(evaluate_run(run, data, a.steps, a.grid, a.score, a.transductive, skip_bad=a.skip_bad,
                               fpr=a.fpr), a.json)


def cmd_compare(a):
    from .bench import compare
    from .data import load_spec
    from .config import FEATURE_KEYS
    from .run import Run, train_run
    steps = _int_list(a.steps, "--steps", "1,2,3,5,10")
    _check_steps(steps, a.grid)
    out = Path(a.out or f"runs/{a.data.replace(':', '-').replace('/', '_')}")
    if (out / "ema" / "config.json").is_file() and not a.resume:
        run, asked = Run(out), _config(a)
        given = [k for k in FEATURE_KEYS + ("model",) if getattr(a, k) is not None]
        run.cfg.check_matches(asked, out, only=given)  # options given on the command line must agree
    else:
        run = train_run(_config(a), out, resume=a.resume, skip_bad=a.skip_bad)
    if run.cfg.data != a.data:
        print(f"note: {out} was trained on {run.cfg.data}; scoring {a.data} with it", file=sys.stderr)
    _print_report(compare(run, load_spec(a.data, run.cfg.split_seed), steps, a.grid), a.json)


def cmd_benchmark(a):
    from .benchmark import benchmark
    if not a.data.startswith("mvtec-root:"):
        raise AdlibError(f"--data {a.data!r}: the benchmark needs a folder of categories, --data mvtec-root:PATH")
    if a.steps is not None:
        _check_steps([a.steps], a.grid or "paper")
    benchmark(a.data.split(":", 1)[1], a.out, _config(a), a.setting, a.steps, a.grid, a.score)
    print((Path(a.out) / "results.md").read_text())
    print(f"wrote {a.out}/results.csv, results.json, results.md")


def cmd_throughput(a):
    from .throughput import format_report, throughput
    sizes = _int_list(a.batch_sizes, "--batch-sizes", "1,64")
    if not all(b > 0 for b in sizes):
        raise AdlibError(f"--batch-sizes {a.batch_sizes}: every batch size must be positive")
    _check_positive(batches=a.batches, steps=a.steps)
    _check_steps([a.steps], a.grid)
    report = throughput(a.run, a.model, a.backbone, a.image_size, sizes, a.steps, a.grid, a.device, a.bf16,
                        a.compile, a.warmup, a.batches, not a.no_flops)
    print(format_report(report))
    if a.json:
        write_json(report, a.json)
        print(f"wrote {a.json}")


def cmd_select(a):
    from .select import select_run
    steps = _int_list(a.steps, "--steps")
    _check_steps(steps, a.grid)
    result = select_run(a.run_dir, steps, (a.grid,))
    for r in result["ranking"][:10]:
        print(f"{r['synthetic_auroc']:.3f}  {r['weights']:<24} S={r['steps']:<3} {r['grid']:<9} {r['score']}")
    c = result["chosen"]
    print(f"chosen without labels: --weights {c['weights']} --steps {c['steps']} --grid {c['grid']} --score {c['score']}")
    write_json(result, a.json or Path(a.run_dir) / "selection.json")


def cmd_cache(a):
    from .cache import cache_clear, cache_info
    if a.action == "clear":
        print(f"removed {cache_clear()} cached feature entries from {cache_info()['folder']}")
        return
    info = cache_info()
    print(f"feature cache {info['folder']}: {info['entries']} entries, {info['bytes'] / 2**20:.1f} MiB "
          f"(cap {info['cap'] / 2**20:.0f} MiB; set ADLIB_CACHE_MAX_MB to change it, ADLIB_CACHE to move it)")


def cmd_make_mini(a):
    from .data.mini import make_mini_mvtec, make_mini_root
    if a.categories:
        root = make_mini_root(a.path, a.categories.split(","), seed=a.seed, size=a.size, overwrite=a.overwrite)
        print(f"wrote miniature categories {a.categories} under {root} (use --data mvtec-root:{root})")
        return
    path = make_mini_mvtec(a.path, seed=a.seed, size=a.size, overwrite=a.overwrite)
    print(f"wrote a miniature MVTec-layout category to {path}")


def cmd_notebooks(a):
    from .notebooks import run_notebooks
    run_notebooks(profile=a.profile, data=a.data, out=a.out, only=a.only, run_dir=a.run_dir)


def parser():
    p = argparse.ArgumentParser(prog="adlib", description="Reconstruction-free anomaly detection with diffusion models.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is fastest on a busy machine)")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="extract features and train an eps-network on normal images")
    _train_options(t)
    t.set_defaults(fn=cmd_train)
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
    e.add_argument("--json", help="write the report here")
    e.set_defaults(fn=cmd_evaluate)
    c = sub.add_parser("compare", help="InvAD vs reconstruction, PaDiM and kNN on the same features")
    _train_options(c, required_out=False)
    c.add_argument("--steps", default="1,2,3,5,10", help="comma-separated S values")
    c.add_argument("--grid", default="paper", choices=["paper", "reference"])
    c.add_argument("--json", help="write the report here")
    c.set_defaults(fn=cmd_compare)
    b = sub.add_parser("benchmark", help="per-category table on a root of MVTec-layout categories (resumable)")
    _train_options(b, data_help="mvtec-root:PATH, the folder that holds the category folders")
    b.add_argument("--setting", default="unified", choices=["unified", "per-category"],
                   help="unified: one model for all categories (paper); per-category: one model each")
    b.add_argument("--steps", type=int, help="inversion steps S (default 3)")
    b.add_argument("--grid", choices=["paper", "reference"])
    b.add_argument("--score", choices=list(SCORES))
    b.set_defaults(fn=cmd_benchmark)
    g = sub.add_parser("throughput", help="images/s of scoring (backbone + S-step inversion + score) per batch size")
    g.add_argument("--run", help="a trained run (default: an untrained --model, which times the same)")
    g.add_argument("--model", default="mlp", help="preset when no --run: " + MODEL_PRESETS)
    g.add_argument("--backbone", default="lite0", choices=["lite0", "b4"])
    g.add_argument("--image-size", type=int, default=256)
    g.add_argument("--batch-sizes", default="1,64", help="comma-separated batch sizes (default 1,64)")
    g.add_argument("--steps", type=int, default=3)
    g.add_argument("--grid", default="paper", choices=["paper", "reference"])
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--bf16", action="store_true", help="bf16 autocast (backbone and eps-network)")
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
    s.add_argument("--json", help="write the ranking here (default RUN_DIR/selection.json)")
    s.set_defaults(fn=cmd_select)
    k = sub.add_parser("cache", help="the on-disk feature cache: info | clear")
    k.add_argument("action", choices=["info", "clear"])
    k.set_defaults(fn=cmd_cache)
    m = sub.add_parser("make-mini-mvtec", help="write a small generated MVTec-layout category with masks")
    m.add_argument("path")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--size", type=int, default=128)
    m.add_argument("--overwrite", action="store_true")
    m.add_argument("--categories", help="write a root of categories instead, e.g. grain,tiles,weave (names pick the texture)")
    m.set_defaults(fn=cmd_make_mini)
    nb = sub.add_parser("notebooks", help="the notebook sequence").add_subparsers(dest="action", required=True)
    r = nb.add_parser("run", help="execute notebooks/NN_*.ipynb in order, headless (papermill), into --out")
    r.add_argument("--profile", default="smoke", help="smoke (committed values) | cpu (ELPV) | full (GPU, paper-sized)")
    r.add_argument("--data", help=f"SPEC for every notebook ({SPEC_HELP}, or mini); default: the profile's")
    r.add_argument("--out", help="folder for executed .ipynb, .html, key numbers (default runs/notebooks-PROFILE)")
    r.add_argument("--only", help="notebook number(s), e.g. 03 or 03,04")
    r.add_argument("--run-dir", help="a trained run for the notebooks that take RUN_DIR")
    r.set_defaults(fn=cmd_notebooks)
    from .cli_inspect import add_parsers  # predict and export: inspecting new images with a trained run
    add_parsers(sub)
    return p


@contextmanager
def _one_line_warnings():
    """The kit's warnings as `warning: <message>` on stderr, like its errors (no file and line)."""
    import warnings
    from .errors import AdlibWarning
    plain = warnings.formatwarning
    warnings.formatwarning = lambda msg, cat, *rest, **kw: (f"warning: {msg}\n" if issubclass(cat, AdlibWarning)
                                                             else plain(msg, cat, *rest, **kw))
    try:
        yield
    finally:
        warnings.formatwarning = plain


def main(argv=None):
    a = parser().parse_args(argv)
    with _one_line_warnings():
        return _run(a)


def _run(a):
    try:
        if a.threads is not None:
            _check_positive(threads=a.threads)
            import torch
            torch.set_num_threads(a.threads)
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

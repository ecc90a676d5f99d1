"""Runs for the analysis notebooks: a RunConfig from notebook parameters, fresh run folders, and the
small smoke run trained once on the notebooks' data and cached, so that each notebook also runs alone."""
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path

from adlib.errors import AdlibError
from adlib.teach.notebooks.workspace import MINI, OUT_ENV, resolve_data, work_dir

# The small run notebooks train when no RUN_DIR is given (02's committed parameters are the same values).
SMOKE_TRAIN = dict(image_size=128, model="mlp", model_kwargs={"hidden": 128, "depth": 2}, iters=800, batch_size=16)
# Not part of a run's identity: the notebook helpers and figures change without changing any number.
_NOT_HASHED = ("teach",)  # notebook helpers and figures do not change what a run computes


def run_config(data, **params):
    """RunConfig from notebook parameters: None means 'RunConfig's default'; DATA is resolved."""
    from adlib.runs.config import RunConfig
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise AdlibError(f"unknown training settings {unknown}: RunConfig has {sorted(known)}")
    return RunConfig(data=resolve_data(data), **{k: v for k, v in params.items() if v is not None})


def _source_hash() -> str:
    """Hash of adlib's sources but teach/: a cached smoke run is reused only while it holds."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]  # adlib/
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if rel.parts[0] not in _NOT_HASHED:
            h.update(rel.as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def _prune(folder: Path, pattern: str, keep: int):
    """Outside the runner (nbval, interactive), keep only the newest `keep` runs matching `pattern`."""
    if os.environ.get(OUT_ENV):
        return
    runs = sorted((p for p in folder.glob(pattern) if p.is_dir() and ".tmp-" not in p.name),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def new_run_dir(prefix: str = "02") -> Path:
    """A fresh run folder <work>/runs/<prefix>-<time> (in the temp work dir the 3 newest are kept)."""
    folder = work_dir() / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    _prune(folder, f"{prefix}-*", keep=2)
    path = folder / time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
    while path.exists():
        path = path.with_name(path.name + "x")
    return path


def smoke_run(data=MINI, progress: bool = True, **overrides):
    """The small run trained on `data` with SMOKE_TRAIN (+ overrides), cached in the work dir by config
    and adlib's source, so notebooks run alone (nbval) share one training."""
    from adlib.runs.run import Run, train_run
    cfg = run_config(data, **{**SMOKE_TRAIN, "checkpoint_every": SMOKE_TRAIN["iters"], **overrides})
    key = hashlib.sha256((json.dumps(asdict(cfg), sort_keys=True) + _source_hash()).encode()).hexdigest()[:16]
    path = work_dir() / "runs" / f"smoke-{key}"
    if (path / "calibration.json").is_file():
        return Run(path)
    _prune(path.parent, "smoke-*", keep=3)  # runs of older adlib sources
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    train_run(cfg, tmp, progress=progress)
    try:
        tmp.rename(path)
    except OSError:  # another process finished the same run first
        shutil.rmtree(tmp, ignore_errors=True)
    return Run(path)


def open_run(run_dir=None, data=None, weights: str = "ema", **train):
    """(Run, Dataset) for the analysis notebooks: RUN_DIR if given (DATA None -> the run's own data),
    otherwise the cached smoke run on DATA (`train`: RunConfig settings over SMOKE_TRAIN's, e.g. model="gaussian")."""
    from adlib.data import load_spec
    from adlib.runs.run import Run
    if run_dir:
        run = Run(run_dir, weights)
    else:
        print(f"RUN_DIR not given: using the small smoke run on {data} (trained once, then cached)")
        run = smoke_run(data or MINI, **train)
        if weights != "ema":
            run = Run(run.path, weights)
    spec = resolve_data(data) or run.cfg.data
    if not same_data(spec, run.cfg.data):
        raise AdlibError(f"DATA {spec!r} is not the data RUN_DIR {run.path} was trained on ({run.cfg.data!r}): "
                         f"its calibration and split belong to that data. Set DATA = None to use the run's own "
                         f"data, or RUN_DIR = None to train a small run on {spec!r}")
    return run, load_spec(spec, run.cfg.split_seed)


def _base(spec: str) -> tuple:
    """(kind, what) of a SPEC without ELPV's protocol half: elpv:poly:dev -> (elpv, poly); a path resolved."""
    kind, _, rest = str(spec).partition(":") if ":" in str(spec) else ("mvtec", "", str(spec))
    if kind == "elpv":
        return kind, rest.split(":")[0]
    if kind in ("mvtec", "mvtec-root", "folder"):
        return kind, ":".join(str(Path(p).expanduser().resolve()) for p in rest.split(":"))
    return kind, rest


def same_data(spec: str, trained_on: str) -> bool:
    """Whether scoring `spec` with a run trained on `trained_on` is meaningful: the same dataset (ELPV's
    :dev / :test halves of the run's type count as the same), or one category of the run's mvtec-root."""
    if str(spec) == str(trained_on):
        return True
    (k1, a), (k2, b) = _base(spec), _base(trained_on)
    if k2 == "mvtec-root" and k1 == "mvtec":
        return Path(a).parent == Path(b)
    return (k1, a) == (k2, b)

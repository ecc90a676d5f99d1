"""Where the notebooks read and write, and the key numbers they record for the runner.

Where notebooks write: $ADLIB_NOTEBOOK_OUT (set by the runner to --out) or, when unset (nbval, an
interactive session), a per-user folder in the system temp dir: never the repository.
DATA = "mini" (or "mini:<texture>") generates the miniature MVTec-layout category there.
"""
import math
import os
import tempfile
from pathlib import Path

from adlib.errors import AdlibError
from adlib.files import write_json

MINI = "mini"
OUT_ENV = "ADLIB_NOTEBOOK_OUT"


def notebooks_dir() -> Path:
    path = Path(__file__).resolve().parents[3] / "notebooks"
    if not path.is_dir():
        raise AdlibError(f"{path} not found: the notebooks ship with the source checkout (pip install -e .)")
    return path


def work_dir() -> Path:
    """$ADLIB_NOTEBOOK_OUT/work, or <temp>/adlib-notebooks-<uid> when the runner did not set it."""
    out = os.environ.get(OUT_ENV)
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    path = Path(out) / "work" if out else Path(tempfile.gettempdir()) / f"adlib-notebooks-{uid}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_data(spec, seed: int = 0):
    """`mini` / `mini:<texture>` -> the generated miniature's folder (made once in the work dir); other
    SPECs (elpv:mono, mvtec:PATH, a folder) unchanged; None stays None."""
    if spec is None:
        return None
    spec = str(spec)
    if spec != MINI and not spec.startswith(MINI + ":"):
        return spec
    from adlib.data.mini import TEXTURES, make_mini_mvtec
    texture = spec.split(":", 1)[1] if ":" in spec else "weave"
    if texture not in TEXTURES:
        raise AdlibError(f"DATA {spec!r}: the miniature's textures are {', '.join(TEXTURES)} (e.g. mini:{TEXTURES[0]})")
    path = work_dir() / "data" / f"mini-{texture}-seed{seed}"
    if not (path / "README.txt").is_file():
        make_mini_mvtec(path, seed=seed, texture=texture, overwrite=True)
    return str(path)


def records_dir() -> Path:
    out = os.environ.get(OUT_ENV)
    path = Path(out) if out else work_dir() / "records"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(v):
    import numpy as np
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def record(notebook: str, **numbers) -> dict:
    """Key numbers of a notebook -> <out>/<notebook>.json; the runner's summary and chaining read it
    (a `run_dir` entry is passed on as RUN_DIR to the notebooks after this one)."""
    numbers = _plain(numbers)
    path = records_dir() / f"{notebook}.json"
    write_json(numbers, path)
    return numbers

"""Where the folder named in a --data SPEC is: as given, else in the data folder.

The data folder is $ADLIB_DATA when set, otherwise the repository's `data/` (next to the `adlib`
package in a source checkout, i.e. beside pyproject.toml). A relative name that is not a folder
relative to the current directory is looked up there:

    mvtec:NAME (or a bare NAME)   ./NAME, DATA/mvtec_ad/NAME, DATA/NAME
    mvtec-root:NAME               ./NAME, DATA/NAME
    folder:NAME[:NAME2]           ./NAME, DATA/NAME (each folder on its own)

An absolute path (or ~/...) is used as it is. Nothing found -> one line listing every place looked.
"""
import os
from pathlib import Path
from typing import Optional

from adlib.errors import AdlibError

DATA_ENV = "ADLIB_DATA"
MVTEC_SUBFOLDERS = ("mvtec_ad", "")  # mvtec:NAME looks in DATA/mvtec_ad/NAME, then DATA/NAME


def data_dir() -> Optional[Path]:
    """$ADLIB_DATA, or the repository's data/ folder when adlib runs from a source checkout; else None."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]  # adlib/data/paths.py -> the repository root
    if (repo / "pyproject.toml").is_file() and (repo / "data").is_dir():
        return repo / "data"
    return None


def candidates(name, subfolders=("",)) -> list:
    """The places a folder `name` may be, in the order they are tried."""
    path = Path(name).expanduser()
    places = [path]
    root = data_dir()
    if not path.is_absolute() and root is not None:
        places += [root / sub / path if sub else root / path for sub in subfolders]
    return places


def resolve(name, spec: str, subfolders=("",), fix: str = "") -> Path:
    """The first of `candidates(name, subfolders)` that is a folder; none -> AdlibError listing them all.

    `spec` is the --data value, quoted in the error; `fix` is appended to it (what to do instead).
    """
    if not str(name).strip():
        raise AdlibError(f"--data {spec!r}: no folder given after the colon{'; ' + fix if fix else ''}")
    places = candidates(name, subfolders)
    for place in places:
        if place.is_dir():
            return place
    looked = ", ".join(str(p if p.is_absolute() else Path.cwd() / p) for p in places)
    root = data_dir()
    if Path(name).expanduser().is_absolute():
        where = ""
    elif root is None:
        where = f" (no data folder: set {DATA_ENV} to the folder that holds your datasets)"
    else:
        where = f" (data folder {root}{'' if root.is_dir() else ', which does not exist'}; set {DATA_ENV} to change it)"
    raise AdlibError(f"--data {spec!r}: no such folder {str(name)!r}; looked in {looked}{where}"
                     f"{'; ' + fix if fix else ''}")

"""The notebook sequence and its papermill parameters.

Notebooks live in `notebooks/NN_name.ipynb`, each with one cell tagged `parameters` whose committed values
are the `smoke` profile (what nbval and CI run on CPU). `notebooks/profiles/<profile>.yaml` holds papermill
parameters: `shared:` for every notebook (each gets only those it declares) and one section per notebook.
"""
from pathlib import Path

from adlib.errors import AdlibError
from adlib.teach.notebooks.workspace import notebooks_dir

SEQUENCE = ("01_prior_density", "02_train_on_gpu", "03_visualize_latents", "04_sweep_steps",
            "05_beyond_gaussian", "06_inspect_your_images")
PROFILES = ("smoke", "cpu", "full")


def list_notebooks(nb_dir=None) -> list:
    nb_dir = Path(nb_dir) if nb_dir else notebooks_dir()
    return sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))


def declared_parameters(path) -> dict:
    """name -> default (as source text) of a notebook's `parameters` cell."""
    import papermill
    return {k: v["default"] for k, v in papermill.inspect_notebook(str(path)).items()}


def load_profile(name: str, nb_dir=None) -> dict:
    import yaml
    folder = (Path(nb_dir) if nb_dir else notebooks_dir()) / "profiles"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
        raise AdlibError(f"--profile {name}: no {path} (profiles: {have})")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise AdlibError(f"{path}: expected a mapping of `shared` and notebook names to parameters")
    return raw


def select(names: list, only) -> list:
    """--only 03 / 03,04 / 03_visualize_latents -> those notebooks, in sequence order."""
    if not only:
        return list(names)
    wanted = [w.strip() for w in str(only).split(",") if w.strip()]
    chosen = []
    for w in wanted:
        hits = [n for n in names if n == w or n.startswith(w + "_") or n.split("_", 1)[0] == w]
        if not hits:
            raise AdlibError(f"--only {w}: no such notebook; choose from {', '.join(n.split('_', 1)[0] for n in names)}")
        chosen += hits
    return [n for n in names if n in chosen]


def parameters_for(name: str, declared: dict, profile: dict, profile_name: str) -> dict:
    own = profile.get(name) or {}
    bad = sorted(set(own) - set(declared))
    if bad:
        raise AdlibError(f"profile {profile_name}: {name} has no parameter(s) {bad} (it declares {sorted(declared)})")
    shared = {k: v for k, v in (profile.get("shared") or {}).items() if k in declared}
    return {**shared, **own}

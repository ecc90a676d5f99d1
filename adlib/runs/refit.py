"""A closed-form run stored as the normal features it was fitted on (issue 20: a 23-image run in a few MB).

A closed-form run's standardisation and model are functions of its config and of the raw features of its N
normals (`crossfit.fit_normals`, as `train_run` fits them). Their large parts are P x C x C per-position
matrices: the whitening's Cholesky factors (`chol`) and the Gaussian's eigenvectors (`eigvec`), 2 P C^2 floats
(75 MB for P = 256, C = 192), against N C P floats for the features themselves (5.9 MB for N = 30). When the
features are smaller (N < 2C), the run stores them (RUN/normals.safetensors, float32 as extracted) and only the
small tensors of the fit (means, eigenvalues, rho: O(P C)) in stats.safetensors and model/; loading refits the
rest with the same code on the same features, which gives the same floats, and compares the refitted small
tensors with the stored ones (a warning if they differ: another torch / LAPACK build refitted a slightly
different model). Larger N and trained models store the fitted tensors as before, and runs written before this
(no normals.safetensors) load as they did.
"""
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from adlib.errors import warn
from adlib.features.cache import atomic_save
from adlib.files import atomic_replace_dir

FILE = "normals.safetensors"
BIG = ("chol", "eigvec")  # the P x C x C tensors a compact run leaves out and refits
WEIGHTS = "diffusion_pytorch_model.safetensors"  # the name save_pretrained gives the weights


def stored(path) -> bool:
    """Whether the run at `path` keeps its normal features instead of its fitted P x C x C tensors."""
    return (Path(path) / FILE).is_file()


def worth_it(cfg, z_fit: torch.Tensor, stats: dict) -> bool:
    """Store the features instead of the fit: a closed-form model (refitted exactly) and fewer bytes (N < ~2C)."""
    from adlib.runs import crossfit
    if not crossfit.is_closed_form(cfg):
        return False
    shape = crossfit.shape_model(cfg)
    big = sum(v.numel() for k, v in stats.items() if k in BIG) \
        + sum(v.numel() for k, v in shape.state_dict().items() if k in BIG)
    return z_fit.numel() < big


def small(tensors: dict) -> dict:
    return {k: v.contiguous() for k, v in tensors.items() if k not in BIG}


def save_stats(out: Path, z_fit: torch.Tensor, stats: dict):
    """RUN/normals.safetensors (the raw features) and RUN/stats.safetensors without its P x C x C factor."""
    atomic_save({"features": z_fit.float().contiguous()}, out / FILE)
    atomic_save(small(stats), out / "stats.safetensors")


def save_model(model, folder: Path):
    """The model's config and its small buffers (save_pretrained's layout, without `eigvec`)."""
    def write(tmp):
        model.save_config(tmp)
        save_file(small(model.state_dict()), Path(tmp) / WEIGHTS)
    atomic_replace_dir(write, folder)


def load(path: Path, cfg, folder: Path) -> tuple:
    """(stats, model) refitted on the stored features, checked against the small tensors stored with them."""
    from adlib.runs import crossfit
    stats, model = crossfit.fit_normals(cfg, load_file(Path(path) / FILE)["features"])
    saved = {**{f"stats.{k}": v for k, v in load_file(Path(path) / "stats.safetensors").items()},
             **{f"model.{k}": v for k, v in load_file(Path(folder) / WEIGHTS).items()}}
    now = {**{f"stats.{k}": v for k, v in stats.items()}, **{f"model.{k}": v for k, v in model.state_dict().items()}}
    worst = max(((now[k].double() - v.double()).abs().max().item() if now[k].shape == v.shape else float("inf"))
                for k, v in saved.items() if k in now and not k.startswith("stats.choice_"))  # the choice's record:
    # its held-out NLLs come back from config.json rounded to 0.001, and they decide nothing once rho is chosen
    if worst > 1e-6:
        warn(f"{path}: the model refitted from its normal features differs from the one fitted at training time by "
             f"up to {worst:.2e} (another torch or LAPACK build?): scores may differ in their last digits")
    return stats, model

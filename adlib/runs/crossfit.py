"""Cross-fitted calibration of a closed-form run: every normal image scored by a model fitted without it.

A closed-form model (`fit_base` and no trainable parameter, e.g. `--model gaussian`) refits in seconds from
cached features, so calibration need not spend images on a validation split: the n normals (train and
validation) are dealt into K folds (`--folds`, 0 = 10, or leave-one-out up to calibration.LOO_MAX images),
and for each fold the standardisation and the model are fitted on the other folds exactly as training fits
them on all n (`fit_normals`), then the fold is inverted and scored. `calibration.fit_cross` turns those
out-of-fold scores into the normaliser and a threshold resting on all n. The run's own model is then fitted
on all n. A model with a trained part keeps the split calibration on the validation normals (cross-fitting
it would mean training it K times): `--calibration auto` (the default) picks, `cross-fit` or `split` forces.
"""
import numpy as np
import torch

from adlib.data import Sample
from adlib.errors import AdlibError
from adlib.features.backbone import BACKBONES
from adlib.features.cache import extract
from adlib.features.standardize import fit_stats, standardize
from adlib.method import calibration, scoring
from adlib.method.inversion import invert, make_grid
from adlib.models import build_model

CALIBRATIONS = ("auto", "cross-fit", "split")


def shape_model(cfg):
    """The run's eps-network built on the meta device: shapes only, no memory, even for the 1.2 B DiT."""
    channels = BACKBONES[cfg.backbone]["channels"] if cfg.backbone in BACKBONES else 8
    with torch.device("meta"):
        return build_model(cfg.model, channels, max(1, cfg.image_size // 16), **cfg.model_kwargs)


def nothing_to_train(cfg) -> bool:
    """No trainable parameter (`gaussian`, `standard`): the run stores one copy of its model, no EMA or loss."""
    return not any(p.requires_grad for p in shape_model(cfg).parameters())


def is_closed_form(cfg) -> bool:
    """Fitted (`fit_base`) with nothing to train, e.g. `gaussian`: it can be refitted once per fold."""
    return hasattr(shape_model(cfg), "fit_base") and nothing_to_train(cfg)


def resolve(cfg) -> str:
    """The calibration a run is made with: `cross-fit` or `split` (`auto` picks cross-fit for closed-form models)."""
    if cfg.calibration not in CALIBRATIONS:
        raise AdlibError(f"unknown --calibration {cfg.calibration!r}: choose one of {', '.join(CALIBRATIONS)}")
    closed = is_closed_form(cfg)
    if cfg.calibration == "cross-fit" and not closed:
        raise AdlibError(f"--calibration cross-fit refits the model once per fold, which needs a closed-form model "
                         f"(nothing trained, e.g. --model gaussian); --model {cfg.model} trains: use --calibration "
                         f"split or auto")
    if cfg.folds < 0:
        raise AdlibError(f"--folds {cfg.folds}: use 0 (automatic) or a number of folds from 2 to the number of normals")
    if cfg.calibration == "auto":
        return "cross-fit" if closed else "split"
    return cfg.calibration


def fit_normals(cfg, z_raw: torch.Tensor):
    """(stats, model): the standardisation fitted to raw features, then the closed-form model to the standardised
    ones, as `adlib.runs.train.fit` fits it (same seed, settings and dtype)."""
    stats = fit_stats(z_raw, cfg.standardize)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, z_raw.shape[1], z_raw.shape[-1], **cfg.model_kwargs)
    return stats, model.fit_base(standardize(z_raw, stats)).eval()


@torch.no_grad()
def out_of_fold(cfg, z_raw: torch.Tensor, folds, steps: int, grid: str, batch_size: int = 64) -> dict:
    """Raw scores (nll, diff, map) of each normal image from the model fitted without its fold."""
    folds, points, n = np.asarray(folds), make_grid(steps, grid), len(z_raw)
    nll, dif, maps = np.empty(n), np.empty(n), None
    for f in range(int(folds.max()) + 1):
        held = np.flatnonzero(folds == f)
        stats, model = fit_normals(cfg, z_raw[torch.as_tensor(np.flatnonzero(folds != f))])
        z = standardize(z_raw[torch.as_tensor(held)], stats)
        for i in range(0, len(held), batch_size):
            raw = scoring.raw_scores(invert(model, z[i:i + batch_size], points))
            idx = held[i:i + batch_size]
            nll[idx], dif[idx] = raw["nll"], raw["diff"]
            if maps is None:
                maps = torch.empty((n, *raw["map"].shape[1:]), dtype=raw["map"].dtype)
            maps[torch.as_tensor(idx)] = raw["map"].cpu()
    return {"nll": nll, "diff": dif, "map": maps}


def calibrate(cfg, z_raw: torch.Tensor, steps: int, grid: str, score: str, fpr: float = 0.05) -> dict:
    """The cross-fitted calibration record of raw features of all n normals (folds seeded by the split seed)."""
    ids = calibration.fold_ids(len(z_raw), cfg.folds, cfg.split_seed)
    return {"steps": steps, "grid": grid,
            **calibration.fit_cross(out_of_fold(cfg, z_raw, ids, steps, grid), ids, score, fpr)}


def normal_features(run) -> torch.Tensor:
    """Raw (unstandardised, cached) features of every normal image a cross-fitted run was fitted on (split.json)."""
    import json
    split = json.loads((run.path / "split.json").read_text())
    z, _ = extract(run.extractor, [Sample(p, 0) for p in split["train"] + split["val"]], desc="normal features",
                   device=run.device, bit_depth=run.bit_depth)
    return z

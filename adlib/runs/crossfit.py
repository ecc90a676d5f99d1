"""Cross-fitted calibration of a closed-form run: every normal image scored by a model fitted without it.

A closed-form model (`fit_base` and no trainable parameter, e.g. `--model gaussian`) refits in seconds from
cached features, so calibration need not spend images on a validation split: the n normals (train and
validation) are dealt into K folds (`--folds`, 0 = 10, or leave-one-out up to calibration.LOO_MAX images),
and for each fold the standardisation and the model are fitted on the other folds exactly as training fits
them on all n (`fit_normals`), then the fold is inverted and scored. `calibration.fit_cross` turns those
out-of-fold scores into the normaliser and a threshold resting on all n. The run's own model is then fitted
on all n. A model with a trained part keeps the split calibration on the validation normals (cross-fitting
it would mean training it K times): `--calibration auto` (the default) picks, `cross-fit` or `split` forces.

`--score auto` (closed-form runs only): the image score is chosen during that cross-fitting, without labels.
Each held-out fold's standardised features also get feature-space CutPaste anomalies
(`scoring.synthetic_anomalies`: a k x k patch swapped in from another image and place, or N(0, 1) added),
scored by that fold's model and, for the normalised scores, that fold's normaliser (fitted on the other folds'
out-of-fold maps, as its normals'). The criterion of each candidate in SCORE_CANDIDATES is the AUROC of all n
out-of-fold normals against all n synthetic anomalies; the highest wins, ties going to the earlier candidate.
Why: the choice must rest on normal images only, and every number in it comes from a model and a normaliser
that never saw the images it scores, exactly as a test image is scored; `max` (the plain maximum of the map)
suits parts that move, `local-top` (per-position standardisation) aligned ones, and the fake defects ask which
of the two separates a local change from what is usual on this data. The choice and every candidate's
criterion are kept in the calibration record and in config.json (`score_choice`).
"""
from dataclasses import replace

import numpy as np
import torch

from adlib.data import Sample
from adlib.errors import AdlibError
from adlib.features.backbone import BACKBONES
from adlib.features.cache import extract
from adlib.features.standardize import choice_record, fit_stats, standardize
from adlib.method import calibration, scoring
from adlib.method.inversion import invert, make_grid
from adlib.models import build_model

CALIBRATIONS = ("auto", "cross-fit", "split")
SCORE_CANDIDATES = ("local-top", "max")  # `--score auto`: ties go to the first (the score chosen on ELPV)


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
    resolved = cfg.calibration if cfg.calibration != "auto" else ("cross-fit" if closed else "split")
    if cfg.score == "auto" and resolved != "cross-fit":
        raise AdlibError(f"--score auto is chosen during cross-fitted calibration, which needs a closed-form model "
                         f"(e.g. --model standard or gaussian) and --calibration auto or cross-fit; --model {cfg.model} "
                         f"with {resolved} calibration: give a score, e.g. --score local-top")
    return resolved


def with_choice(cfg, z_raw: torch.Tensor) -> tuple:
    """(cfg with `standardize_choice` recorded, stats): the standardisation fitted to all n normals the way
    `train_run` fits it, `--standardize auto` choosing its Gaussian here once (what the folds then refit)."""
    stats = fit_stats(z_raw, cfg.standardize)
    return replace(cfg, standardize_choice=choice_record(stats)), stats


def fit_normals(cfg, z_raw: torch.Tensor, stats: dict = None):
    """(stats, model): the standardisation fitted to raw features, then the closed-form model to the standardised
    ones, as `adlib.runs.train.fit` fits it (same seed, settings and dtype). `--standardize auto` refits the
    Gaussian the run chose (cfg.standardize_choice, chosen once on all n) instead of choosing again in every
    fold: one scalar chosen with the fold inside is a negligible leak, and it saves K choices of 12 candidates.
    stats: the standardisation already fitted to these very z_raw (`with_choice`'s), not fitted a second time."""
    if stats is None:
        stats = fit_stats(z_raw, cfg.standardize, choice=cfg.standardize_choice or None)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, z_raw.shape[1], z_raw.shape[-1], **cfg.model_kwargs)
    return stats, model.fit_base(standardize(z_raw, stats)).eval()


@torch.no_grad()
def out_of_fold(cfg, z_raw: torch.Tensor, folds, steps: int, grid: str, batch_size: int = 64,
                synthetic: bool = False) -> dict:
    """Raw scores (nll, diff, map) of each normal image from the model fitted without its fold; with `synthetic`,
    also those of a synthetic anomaly made from each (its fold's CutPaste, seeded by cfg.seed and the fold) under
    "synthetic"."""
    folds, points, n = np.asarray(folds), make_grid(steps, grid), len(z_raw)
    out = {kind: _empty(n) for kind in (("real", "synthetic") if synthetic else ("real",))}
    for f in range(int(folds.max()) + 1):
        held = np.flatnonzero(folds == f)
        stats, model = fit_normals(cfg, z_raw[torch.as_tensor(np.flatnonzero(folds != f))])
        z = {"real": standardize(z_raw[torch.as_tensor(held)], stats)}
        if synthetic:
            z["synthetic"] = scoring.synthetic_anomalies(z["real"], seed=cfg.seed * 1000 + f)
        for kind, zk in z.items():
            for i in range(0, len(held), batch_size):
                _put(out[kind], held[i:i + batch_size], scoring.raw_scores(invert(model, zk[i:i + batch_size], points)))
    return {**out["real"], "synthetic": out["synthetic"]} if synthetic else out["real"]


def _empty(n: int) -> dict:
    return {"nll": np.empty(n), "diff": np.empty(n), "map": None}


def _put(into: dict, idx, raw: dict):
    into["nll"][idx], into["diff"][idx] = raw["nll"], raw["diff"]
    if into["map"] is None:
        into["map"] = torch.empty((len(into["nll"]), *raw["map"].shape[1:]), dtype=raw["map"].dtype)
    into["map"][torch.as_tensor(idx)] = raw["map"].cpu()


def choose_score(raw: dict, folds, candidates=SCORE_CANDIDATES, pool: float = 0.0) -> dict:
    """`--score auto`: the candidate whose out-of-fold scores best separate the n normals from their n synthetic
    anomalies (raw["synthetic"], from `out_of_fold(..., synthetic=True)`), by AUROC; ties go to the earlier one.
    Both images of a pair are scored by the same fold's model and normaliser (fitted without that fold)."""
    from sklearn.metrics import roc_auc_score
    folds = np.asarray(folds)
    fake = raw["synthetic"]
    pick = scoring.subset
    values = {k: (np.empty(len(folds)), np.empty(len(folds))) for k in candidates}
    for f in range(int(folds.max()) + 1):
        held = np.flatnonzero(folds == f)
        norm = scoring.Normalizer.fit(pick(raw, np.flatnonzero(folds != f)), pool)
        for k in candidates:
            values[k][0][held] = scoring.image_score(pick(raw, held), k, norm)
            values[k][1][held] = scoring.image_score(pick(fake, held), k, norm)
    labels = np.r_[np.zeros(len(folds)), np.ones(len(folds))]
    auroc = {k: round(float(roc_auc_score(labels, np.r_[v[0], v[1]])), 6) for k, v in values.items()}
    best = max(auroc.values())
    return {"chosen": next(k for k in candidates if auroc[k] == best), "synthetic_auroc": auroc,
            "n_normals": len(folds), "n_synthetic": len(folds),
            "criterion": "AUROC of the out-of-fold normals against feature-space CutPaste anomalies of them, "
                         "each scored by its fold's model and normaliser; ties go to the first candidate"}


def calibrate(cfg, z_raw: torch.Tensor, steps: int, grid: str, score: str, fpr: float = 0.05) -> dict:
    """The cross-fitted calibration record of raw features of all n normals (folds seeded by the split seed); runs
    add its `decision` (full_conformal.mark: full conformal below calibration.FEW_NORMALS normals). score `auto`:
    chosen by `choose_score` on the same out-of-fold scores; the record keeps it as `score_choice`."""
    ids = calibration.fold_ids(len(z_raw), cfg.folds, cfg.split_seed)
    raw = out_of_fold(cfg, z_raw, ids, steps, grid, synthetic=score == "auto")
    choice = choose_score(raw, ids, pool=cfg.map_pool) if score == "auto" else None
    record = calibration.fit_cross(raw, ids, choice["chosen"] if choice else score, fpr, cfg.map_pool)
    return {"steps": steps, "grid": grid, **record, **({"score_choice": choice} if choice else {})}


def normal_features(run) -> torch.Tensor:
    """Raw (unstandardised, cached) features of every normal image a cross-fitted run was fitted on (split.json)."""
    import json
    split = json.loads((run.path / "split.json").read_text())
    z, _ = extract(run.extractor, [Sample(p, 0) for p in split["train"] + split["val"]], desc="normal features",
                   device=run.device, bit_depth=run.bit_depth)
    return z

"""Decisions for single images: the score's normaliser and a threshold, fitted on normal validation images.

threshold = the k-th smallest of n held-out normal scores, k = ceil((n + 1)(1 - fpr)) (split conformal):
a new normal image exchangeable with those n exceeds it with probability <= fpr, whatever n. When k > n no
order statistic can promise `fpr`; the largest score is used and the rate it does promise, 1 / (n + 1), is
recorded as `fpr_guaranteed`. The min-max is fitted on one part of the validation normals and the threshold
on the other, so the threshold's scores are exchangeable with a test image's. With 2 or 3 validation images
both use all of them and the record says the threshold is in-sample; fewer than 2 is refused.
"""
import numpy as np
import torch

from adlib.errors import AdlibError, warn
from adlib.method import scoring

MIN_VAL, FEW_VAL = 2, 20
FILE = "calibration.json"


def few_images_note(n: int):
    """The warning for n < FEW_VAL validation normals, else None."""
    if n < FEW_VAL:
        return (f"only {n} normal validation images: the threshold's false-positive rate is loose (a rate fpr "
                f"can be promised only from about 1/fpr - 1 images); {FEW_VAL}+ are recommended")
    return None


def check_validation_size(n: int, where: str, warn_few: bool = True):
    """Refuse fewer than MIN_VAL validation normals; warn (once, where asked) below FEW_VAL."""
    if n < MIN_VAL:
        raise AdlibError(f"{where} has {n} normal validation image(s) but calibration needs at least {MIN_VAL}: "
                         f"add normal images to train/good (10 % are held out) or a val/good folder")
    if warn_few and few_images_note(n):
        warn(f"{where} has {few_images_note(n)}")


def parts(n: int, seed: int = 0):
    """(indices for the normaliser, indices for the threshold, disjoint?): a seeded half/half split from n >= 4."""
    if n < 4:
        every = np.arange(n)
        return every, every, False
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:]), True


def fit(raw: dict, score: str, fpr: float = 0.05, seed: int = 0, normalizer=None) -> dict:
    """The calibration record from raw validation scores ({"nll", "diff"} arrays of n normal images).

    normalizer: use this min-max (e.g. the test set's, for the paper's transductive protocol) instead of
    fitting one; the threshold then lives on its scale and uses every validation image."""
    n = len(raw["nll"])
    check_validation_size(n, "the validation split", warn_few=False)
    norm_idx, thr_idx, disjoint = parts(n, seed)
    pick = lambda idx: {"nll": np.asarray(raw["nll"])[idx], "diff": np.asarray(raw["diff"])[idx],
                        "map": None if raw.get("map") is None else raw["map"][torch.as_tensor(idx)]}
    if normalizer is None:
        normalizer = scoring.Normalizer.fit(pick(norm_idx))
    else:
        thr_idx, disjoint = np.arange(n), True
    if score in ("nll", "diff"):  # they need no normaliser: every image goes to the threshold
        thr_idx, disjoint = np.arange(n), True
    values = scoring.image_score(pick(thr_idx), score, normalizer)
    threshold, guaranteed = scoring.conformal_threshold(values, fpr)
    return {"score": score, "normalizer": normalizer.to_dict(), "fpr": fpr, "threshold": threshold,
            "fpr_guaranteed": guaranteed, "n_val": n, "n_normalizer": int(len(norm_idx)),
            "n_threshold": int(len(thr_idx)), "disjoint": disjoint,
            "method": "split conformal: k-th smallest of the threshold part, k = ceil((n+1)(1-fpr))",
            "warning": few_images_note(n), "val_scores": [float(v) for v in values]}


def decide(record: dict, raw: dict) -> tuple:
    """(image scores, anomalous?) of raw scores under a calibration record."""
    values = scoring.image_score(raw, record["score"], scoring.Normalizer(**record["normalizer"]))
    return values, values > record["threshold"]

"""Decisions for single images: the score's normaliser and a threshold, fitted on normal validation images.

threshold = the k-th smallest of n held-out normal scores, k = ceil((n + 1)(1 - fpr)) (split conformal):
a new normal image exchangeable with those n exceeds it with probability <= fpr, whatever n. When k > n no
order statistic can promise `fpr`; the largest score is used and the rate it does promise, 1 / (n + 1), is
recorded as `fpr_guaranteed`. The min-max is fitted on one part of the validation normals and the threshold
on the other, so the threshold's scores are exchangeable with a test image's. With 2 or 3 validation images
both use all of them and the record says the threshold is in-sample; fewer than 2 is refused.

Cross-fitting (`fit_cross`, for closed-form models: nothing trained, refitted in seconds): every normal image,
train and validation, is scored by a model fitted without its fold (K folds; K = n, leave-one-out, up to
LOO_MAX images), and by a normaliser fitted on the other folds' out-of-fold scores, so the threshold rests on
all n normals and neither the model nor the normaliser behind an image's score has seen it (CV+ / jackknife+
style; Barber et al. 2021). The deployed model and normaliser are fitted on all n. The rank rule above gives
`fpr_guaranteed` for n; it is exact for split conformal and approximate here (a test image is scored by the
model of all n, a calibration image by one of n - n/K: with leave-one-out they differ by one image), which
is why benchmarks/few_shot.py measures the realised rate against it.
"""
import json
import math
from pathlib import Path

import numpy as np

from adlib.errors import AdlibError, warn
from adlib.method import scoring

MIN_VAL, FEW_VAL = 2, 20
FEW_NORMALS = 50   # below this many normals (cross-fitted) the train summary warns what few images cost
LOO_MAX = 10       # cross-fitting with K = n (leave-one-out) up to this many normals, else K = 10 folds
FILE = "calibration.json"
MEASURED = Path(__file__).with_name("few_shot.json")  # written by benchmarks/few_shot.py


def few_images_note(n: int, fpr: float = None, what: str = "normal validation images", few: int = FEW_VAL,
                     promised: float = None):
    """The warning for n < `few` calibration normals (or too few to promise `fpr`), else None. It names the rate
    that can be promised (`promised`, else the rank rule's for n) and, when benchmarks/few_shot.py has measured
    it, what so few images cost in AUROC."""
    if promised is None and fpr is not None:
        promised = scoring.conformal_threshold([0.0] * max(n, 1), fpr)[1]
    if n >= few and (promised is None or promised <= fpr):
        return None
    text = f"only {n} {what}"
    if promised is not None and promised > fpr:
        text += (f": the false-positive rate that can be promised is {promised:.1%}, not the {fpr:.1%} asked "
                 f"(that needs at least {math.ceil(1 / fpr - 1)} images)")
    elif promised is not None:
        text += f": the {promised:.1%} false-positive rate promised holds on average, but the rate realised varies with the images"
    else:
        text += ": the threshold's false-positive rate is loose (a rate fpr can be promised only from about 1/fpr - 1 images)"
    cost = measured_cost(n)
    if cost:
        text += f"; {cost}"
    return text + f"; add more good images ({few}+ recommended)"


def measured_cost(n: int):
    """What benchmarks/few_shot.py measured for about n good images (its output file), or None."""
    try:
        m = json.loads(MEASURED.read_text())
        rows = {int(k): v for k, v in m["auroc_loss"].items()}
    except (OSError, ValueError, KeyError):
        return None
    near = max([k for k in rows if k <= n] or [min(rows)])
    return (f"measured on {m['data']} ({m['model']}): {near} good images lost {rows[near]:.3f} image AUROC "
            f"against the full-data model ({m['doc']})")


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


def fit(raw: dict, score: str, fpr: float = 0.05, seed: int = 0, normalizer=None, pool: float = 0.0) -> dict:
    """The calibration record from raw validation scores ({"nll", "diff"} arrays of n normal images).
    pool: how far the local scores' per-position statistics are pooled (`scoring.position_stats`).

    normalizer: use this min-max (e.g. the test set's, for the paper's transductive protocol) instead of
    fitting one; the threshold then lives on its scale and uses every validation image."""
    n = len(raw["nll"])
    check_validation_size(n, "the validation split", warn_few=False)
    norm_idx, thr_idx, disjoint = parts(n, seed)
    pick = lambda idx: scoring.subset(raw, idx)  # noqa: E731
    if normalizer is None:
        normalizer = scoring.Normalizer.fit(pick(norm_idx), pool)
    else:
        thr_idx, disjoint = np.arange(n), True
    if score in scoring.UNNORMALISED:  # they need no normaliser: every image goes to the threshold
        thr_idx, disjoint = np.arange(n), True
    values = scoring.image_score(pick(thr_idx), score, normalizer)
    threshold, guaranteed = scoring.conformal_threshold(values, fpr)
    return {"score": score, "normalizer": normalizer.to_dict(), "fpr": fpr, "threshold": threshold,
            "fpr_guaranteed": guaranteed, "n_val": n, "n_normalizer": int(len(norm_idx)),
            "n_threshold": int(len(thr_idx)), "disjoint": disjoint, "calibration": "split",
            "method": "split conformal: k-th smallest of the threshold part, k = ceil((n+1)(1-fpr))",
            "warning": few_images_note(n, fpr, promised=guaranteed), "val_scores": [float(v) for v in values]}


def auto_folds(n: int) -> int:
    """K when none is asked: leave-one-out up to LOO_MAX normals, else 10 folds.

    Leave-one-out up to 50 normals (n refits, about 2 s each for P = 256, C = 192 on one core) was measured and
    left no gain: at N = 20 the realised false-positive rate stayed 1.0 % (ELPV) / 2.3 % (texture) against 4.8 %
    promised, as with K = 10 (docs/bench/few-shot.md), so the fold models' smaller training set is not what
    makes the threshold conservative, and K = 10 keeps the cost at 10 refits."""
    return n if n <= LOO_MAX else 10


def fold_ids(n: int, k: int = 0, seed: int = 0) -> np.ndarray:
    """The fold (0..k-1) of each of n normal images: a seeded permutation dealt round into k near-equal folds.
    k = 0: `auto_folds(n)`. Each fold's complement must hold 2 images (a normaliser needs 2)."""
    k = k or auto_folds(n)
    if n < 3 or not 2 <= k <= n or n - math.ceil(n / k) < 2:
        raise AdlibError(f"--folds {k}: cross-fitting {n} normal image(s) needs 3 images or more and 2 <= folds <= "
                         f"{max(n, 2)} with 2 images outside each fold; use --folds 0 (automatic) or add normal images")
    ids = np.empty(n, dtype=int)
    ids[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return ids


def fit_cross(raw: dict, folds, score: str, fpr: float = 0.05, pool: float = 0.0) -> dict:
    """The calibration record from out-of-fold raw scores of all n normals (image i's from a model fitted
    without fold folds[i]): image i's score uses a normaliser fitted on the other folds, the threshold all n.
    pool: how far the local scores' per-position statistics are pooled (`scoring.position_stats`)."""
    folds = np.asarray(folds)
    n, k = len(folds), int(folds.max()) + 1
    pick = lambda idx: scoring.subset(raw, idx)  # noqa: E731
    values = np.empty(n)
    for f in range(k):
        held = np.flatnonzero(folds == f)
        norm = scoring.Normalizer.fit(pick(np.flatnonzero(folds != f)), pool)
        values[held] = scoring.image_score(pick(held), score, norm)
    threshold, guaranteed = scoring.conformal_threshold(values, fpr)
    return {"score": score, "normalizer": scoring.Normalizer.fit(raw, pool).to_dict(), "fpr": fpr, "threshold": threshold,
            "fpr_guaranteed": guaranteed, "calibration": "cross-fit", "folds": k, "n_val": n, "n_normals": n,
            "n_normalizer": int(n - np.bincount(folds).max()), "n_threshold": n, "disjoint": True,
            "method": (f"cross-fit, {k} folds ({'leave-one-out' if k == n else 'K-fold'}): each of the {n} normals "
                       f"(train and validation) scored by a model and a normaliser fitted without its fold; threshold "
                       f"= k-th smallest of all {n}, k = ceil((n+1)(1-fpr)); the deployed model and normaliser use all {n}"),
            "warning": few_images_note(n, fpr, "normal images", FEW_NORMALS, guaranteed), "val_scores": [float(v) for v in values]}


def decide(record: dict, raw: dict) -> tuple:
    """(image scores, anomalous?) of raw scores under a calibration record."""
    values = scoring.image_score(raw, record["score"], scoring.Normalizer(**record["normalizer"]))
    return values, values > record["threshold"]

"""Anomaly-detection metrics at image level and pixel level.

Image level (one score per image, label 1 = anomalous): AUROC, average precision (AP) and
F1-max. Pixel level (one anomaly map per image, ground-truth mask True = anomalous): AUROC,
AUPRO, AP and F1-max. `mad` is the mean of the available metrics. Every value returned is a
plain Python float (or None when it cannot be computed because masks were not given).
"""

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from adlib.errors import AdlibError

METRIC_NAMES = ("image_auroc", "image_ap", "image_f1max",
                "pixel_auroc", "aupro", "pixel_ap", "pixel_f1max")
MAX_PIXELS = 2_000_000  # pixel AUROC/AP/F1-max use a fixed random subset above this size
SUBSAMPLE_SEED = 0


def _check_two_classes(labels, what):
    if np.unique(labels).size < 2:
        raise AdlibError(f"{what} contain only one class; AUROC/AP/F1 need both normal (0) "
                         "and anomalous (1) examples")


def f1_max(labels, scores) -> float:
    """Maximum F1 = 2PR/(P+R) over all thresholds (prediction: score >= threshold).

    Precision/recall come from sklearn's `precision_recall_curve`; points with P+R = 0 count
    as F1 = 0.
    """
    precision, recall, _ = precision_recall_curve(np.asarray(labels), np.asarray(scores))
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(f1.max())


def image_metrics(labels, scores) -> dict:
    """Image-level AUROC, AP and F1-max; `labels` are 1 for anomalous images, 0 for normal."""
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    if labels.shape != scores.shape:
        raise AdlibError(f"image labels ({labels.size}) and scores ({scores.size}) differ in length")
    _check_two_classes(labels, "image labels")
    return {"image_auroc": float(roc_auc_score(labels, scores)),
            "image_ap": float(average_precision_score(labels, scores)),
            "image_f1max": f1_max(labels, scores)}


def _check_pixels(masks, maps):
    masks, maps = np.asarray(masks).astype(bool), np.asarray(maps, dtype=float)
    if masks.ndim == 2:
        masks, maps = masks[None], maps[None]
    if masks.ndim != 3 or masks.shape != maps.shape:
        raise AdlibError(f"masks {masks.shape} and anomaly maps {maps.shape} must both be (N, H, W)")
    return masks, maps


def aupro(masks, maps, fpr_limit=0.3, num_thresholds=200) -> float:
    """Normalised area under the per-region-overlap (PRO) curve up to FPR = `fpr_limit`.

    For each of `num_thresholds` thresholds t evenly spanning [min(maps), max(maps)]
    (a pixel is predicted anomalous if its value is > t):
      FPR(t) = fraction of all normal pixels (mask == 0, pooled over images) above t;
      PRO(t) = mean over all connected anomalous regions (8-connectivity, per image) of
               the fraction of the region's pixels above t.
    The curve, anchored at (0, 0) and (1, 1) as in the MVTec AD reference code, is cut at
    `fpr_limit` (linear interpolation), integrated with the trapezoid rule and divided by
    `fpr_limit`, so a perfect map scores 1. Returns nan if the masks hold no anomalous region.
    """
    masks, maps = _check_pixels(masks, maps)
    if not 0 < fpr_limit <= 1:
        raise AdlibError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connectivity inside each image, none across images
    regions, n_regions = ndimage.label(masks, structure=structure)
    if n_regions == 0 or masks.all():
        return float("nan")
    thresholds = np.linspace(maps.min(), maps.max(), num_thresholds)

    def fraction_above(values, weights):
        # above[k] = sum of weights of values > thresholds[k]; searchsorted(left) gives, for
        # each value, how many thresholds lie strictly below it.
        idx = np.searchsorted(thresholds, values, side="left")
        hist = np.bincount(idx, weights=weights, minlength=num_thresholds + 1)
        return np.cumsum(hist[::-1])[::-1][1:]

    normal = maps[~masks]
    fpr = fraction_above(normal, np.full(normal.size, 1.0 / normal.size))
    region_ids = regions[masks]
    sizes = np.bincount(region_ids)  # sizes[0] (background) is never indexed
    pro = fraction_above(maps[masks], 1.0 / (sizes[region_ids] * n_regions))

    # From the highest threshold down both coordinates are non-decreasing.
    fpr = np.concatenate([[0.0], fpr[::-1], [1.0]])
    pro = np.concatenate([[0.0], pro[::-1], [1.0]])
    fpr, pro = np.maximum.accumulate(np.clip(fpr, 0, 1)), np.maximum.accumulate(np.clip(pro, 0, 1))
    i = np.searchsorted(fpr, fpr_limit, side="right")  # points with fpr <= limit
    if i < fpr.size:
        y = pro[i - 1] + (pro[i] - pro[i - 1]) * (fpr_limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1])
        fpr, pro = np.append(fpr[:i], fpr_limit), np.append(pro[:i], y)
    area = np.sum((fpr[1:] - fpr[:-1]) * (pro[1:] + pro[:-1]) / 2)
    return float(area / fpr_limit)


def pixel_metrics(masks, maps, fpr_limit=0.3) -> dict:
    """Pixel-level AUROC, AUPRO, AP and F1-max over all pixels of all images, flattened.

    AUROC, AP and F1-max use every pixel when there are at most MAX_PIXELS (2e6) of them,
    otherwise a random subset of MAX_PIXELS pixels drawn without replacement with the fixed
    seed SUBSAMPLE_SEED, so results are reproducible. AUPRO always uses every pixel.
    """
    masks, maps = _check_pixels(masks, maps)
    labels, scores = masks.ravel().astype(int), maps.ravel()
    if labels.size > MAX_PIXELS:
        keep = np.random.default_rng(SUBSAMPLE_SEED).choice(labels.size, MAX_PIXELS, replace=False)
        labels, scores = labels[keep], scores[keep]
    _check_two_classes(labels, "pixel masks")
    return {"pixel_auroc": float(roc_auc_score(labels, scores)),
            "aupro": aupro(masks, maps, fpr_limit=fpr_limit),
            "pixel_ap": float(average_precision_score(labels, scores)),
            "pixel_f1max": f1_max(labels, scores)}


def all_metrics(labels, scores, masks=None, maps=None) -> dict:
    """All seven metrics (pixel ones None without masks) plus `mad`, the mean of those available."""
    out = image_metrics(labels, scores)
    if masks is None:
        out.update({name: None for name in METRIC_NAMES[3:]})
    else:
        if maps is None:
            raise AdlibError("masks were given without anomaly maps; pass maps= as well")
        out.update(pixel_metrics(masks, maps))
    available = [out[name] for name in METRIC_NAMES if out[name] is not None]
    out["mad"] = float(np.mean(available))
    return {name: out[name] for name in (*METRIC_NAMES, "mad")}

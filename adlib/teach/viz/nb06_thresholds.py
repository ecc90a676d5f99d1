"""Notebook 06's exercise 2: a second threshold that really differs from the calibrated one, and what it trades.

The calibrated threshold is the k-th smallest of n normal validation scores, k = ceil((n + 1)(1 - fpr)) capped at
n (split conformal, `adlib.method.scoring.conformal_threshold`). With few scores several rates give the same k
(1 % and 5 % are both the largest score below 99 images), so "the 1 % threshold" can be the calibrated one again.
`another_rate` picks the smallest round rate above the calibrated one whose threshold is a lower score, and
`tradeoff` counts, at a threshold, the false alarms (validation and test normals) and the detections.
"""
import math

import numpy as np

from adlib.method.scoring import conformal_threshold

ROUND_RATES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def order_index(n: int, fpr: float) -> int:
    """k of the split-conformal threshold: the k-th smallest of n scores."""
    return min(math.ceil((n + 1) * (1 - fpr)), n)


def another_rate(val_scores, fpr: float, rates=ROUND_RATES) -> float:
    """The smallest of `rates` above `fpr` whose split-conformal threshold is a lower validation score than fpr's;
    if none is, the rate that selects the next lower distinct score ((n + 1 - k2 + 1/2) / (n + 1): k2 exactly).
    Raises ValueError when every score equals the threshold (no lower threshold exists)."""
    v = np.sort(np.asarray(val_scores, dtype=float))
    tau, _ = conformal_threshold(v, fpr)
    for a in sorted(rates):
        if a > fpr and conformal_threshold(v, a)[0] < tau:
            return float(a)
    below = np.flatnonzero(v < tau)
    if not len(below):
        raise ValueError("every validation score equals the threshold: no lower threshold to compare")
    k2, n = int(below[-1]) + 1, len(v)
    return (n + 1 - k2 + 0.5) / (n + 1)


def tradeoff(val_scores, scores, t: float, labels=None) -> dict:
    """At threshold t (flag when score > t): validation normals above it, images flagged and, with 0/1 labels,
    the false alarms among normal images and the detections among anomalous ones."""
    v, s = np.asarray(val_scores, dtype=float), np.asarray(scores, dtype=float)
    out = {"threshold": float(t), "n_val": len(v), "val_false_alarms": int((v > t).sum()),
           "val_fpr": float((v > t).mean()) if len(v) else float("nan"), "n": len(s), "flagged": int((s > t).sum())}
    if labels is not None:
        y = np.asarray(labels)
        neg, pos = s[y == 0], s[y == 1]
        out.update(n_normal=len(neg), n_anomalous=len(pos), false_alarms=int((neg > t).sum()),
                   detected=int((pos > t).sum()),
                   test_fpr=float((neg > t).mean()) if len(neg) else float("nan"),
                   detection_rate=float((pos > t).mean()) if len(pos) else float("nan"))
    return out

import math

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from adlib.errors import AdlibError
from adlib.evaluation.metrics import METRIC_NAMES, all_metrics, aupro, f1_max, image_metrics, pixel_metrics


def _image_data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = np.round(labels * 0.8 + rng.normal(size=n), 1)  # rounding creates ties
    return labels, scores


def _pixel_data(seed=0, n=4, size=12):
    """Tiny masks with a few square/diagonal blobs and noisy maps that favour the blobs."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    for m in masks:
        for _ in range(rng.integers(1, 4)):
            r, c = rng.integers(0, size - 3, 2)
            h, w = rng.integers(1, 4, 2)
            m[r:r + h, c:c + w] = True
        m[0, 0] = m[1, 1] = True  # a diagonal pair: one region only with 8-connectivity
    maps = masks * 0.7 + rng.random(masks.shape)
    return masks, maps


def brute_force_aupro(masks, maps, thresholds, fpr_limit=0.3):
    """Plain loops: FPR/PRO per threshold, anchored at (0,0) and (1,1), cut at fpr_limit."""
    regions = []
    for mask, amap in zip(masks, maps):
        lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [amap[lab == k] for k in range(1, n + 1)]
    normal = maps[~masks]
    points = [(0.0, 0.0)]
    for t in sorted(thresholds, reverse=True):
        fpr = np.mean(normal > t)
        pro = np.mean([np.mean(region > t) for region in regions])
        points.append((fpr, pro))
    points.append((1.0, 1.0))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x0 >= fpr_limit:
            break
        if x1 > fpr_limit:  # last segment: interpolate at the limit
            y1 = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            x1 = fpr_limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit


def test_image_metrics_match_sklearn():
    labels, scores = _image_data()
    got = image_metrics(labels, scores)
    assert got["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert got["image_ap"] == pytest.approx(average_precision_score(labels, scores))
    assert all(type(v) is float for v in got.values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_max_matches_brute_force(seed):
    labels, scores = _image_data(seed)
    best = max(f1_score(labels, scores >= t, zero_division=0) for t in np.unique(scores))
    assert f1_max(labels, scores) == pytest.approx(best)
    assert image_metrics(labels, scores)["image_f1max"] == pytest.approx(best)


def test_one_class_labels_raise():
    with pytest.raises(AdlibError, match="only one class"):
        image_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(AdlibError, match="only one class"):
        pixel_metrics(np.zeros((2, 4, 4), bool), np.random.default_rng(0).random((2, 4, 4)))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
def test_aupro_matches_brute_force_all_unique_thresholds(seed, fpr_limit):
    """Every distinct value as a threshold (with ">" and both anchors) is the exact curve."""
    masks, maps = _pixel_data(seed)
    expected = brute_force_aupro(masks, maps, np.unique(maps), fpr_limit)
    assert aupro(masks, maps, fpr_limit) == pytest.approx(expected, abs=1e-9)


def test_aupro_perfect_inverted_and_empty():
    masks, _ = _pixel_data(4)
    perfect = masks.astype(float)
    assert aupro(masks, perfect) == pytest.approx(1.0)
    assert aupro(masks, 1.0 - perfect) < 0.05
    assert math.isnan(aupro(np.zeros_like(masks), perfect))


def test_pixel_metrics_match_sklearn():
    masks, maps = _pixel_data(5)
    got = pixel_metrics(masks, maps)
    labels, scores = masks.ravel(), maps.ravel()
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert got["pixel_ap"] == pytest.approx(average_precision_score(labels, scores))
    assert got["pixel_f1max"] == pytest.approx(f1_max(labels, scores))
    assert got["aupro"] == pytest.approx(aupro(masks, maps))
    assert all(type(v) is float for v in got.values())


def test_all_metrics_with_and_without_masks():
    labels, scores = _image_data(n=4)
    without = all_metrics(labels, scores)
    assert list(without) == [*METRIC_NAMES, "mad"]
    assert all(without[k] is None for k in METRIC_NAMES[3:])
    assert without["mad"] == pytest.approx(np.mean([without[k] for k in METRIC_NAMES[:3]]))

    masks, maps = _pixel_data(6)
    full = all_metrics(labels, scores, masks, maps)
    assert all(type(full[k]) is float for k in full)
    assert full["mad"] == pytest.approx(np.mean([full[k] for k in METRIC_NAMES]))

"""AUPRO is the exact PRO curve (every distinct score a threshold), and pixel metrics keep float32.

Two references written out plainly here: a brute force that loops over every distinct value, and
a transcription of MVTec AD's official evaluation (sort all scores, cumulative FPR/PRO, ties
merged, trapezoid with interpolation at the limit).
"""
import tracemalloc

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from adlib.errors import AdlibError
from adlib.evaluation.metrics import aupro, pixel_metrics
import adlib.evaluation.metrics as metrics
from test_metrics import brute_force_aupro as loops_aupro  # "> t" over every distinct t: the same curve

LIMITS = (0.3, 0.05, 1.0, 0.001)


def brute_force_aupro(masks, maps, fpr_limit):
    """Every distinct value a threshold, FPR and PRO by plain loops (test_metrics.py's brute force)."""
    return loops_aupro(masks, maps, sorted(set(maps.ravel().tolist())), fpr_limit)


def mvtec_official_aupro(masks, maps, fpr_limit):
    """MVTec AD evaluation code (compute_pro + trapezoid), transcribed in float64."""
    fp_changes = np.zeros(maps.shape, np.int64)
    pro_changes = np.zeros(maps.shape, np.float64)
    num_ok_pixels = num_regions = 0
    for i, mask in enumerate(masks):
        labeled, n = ndimage.label(mask, structure=np.ones((3, 3), int))
        num_regions += n
        ok = labeled == 0
        num_ok_pixels += ok.sum()
        fp_changes[i, ok] = 1
        for k in range(n):
            region = labeled == k + 1
            pro_changes[i, region] = 1.0 / region.sum()
    order = np.argsort(maps.ravel())[::-1]
    scores = maps.ravel()[order]
    fprs = np.cumsum(fp_changes.ravel()[order]) / num_ok_pixels
    pros = np.cumsum(pro_changes.ravel()[order]) / num_regions
    keep = np.append(np.diff(scores) != 0, True)  # last pixel of each tie group
    x = np.concatenate([[0.0], np.clip(fprs[keep], 0, 1), [1.0]])
    y = np.concatenate([[0.0], np.clip(pros[keep], 0, 1), [1.0]])
    correction = 0.0
    if fpr_limit not in x:
        ins = np.searchsorted(x, fpr_limit, side="right")
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (fpr_limit - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (fpr_limit - x[ins - 1])
    inside = x <= fpr_limit
    x, y = x[inside], y[inside]
    return (np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction) / fpr_limit


def _case(seed, kind):
    """1-3 small images, several regions each (some touching diagonally, some at the same place
    in two images), maps of the given kind."""
    rng = np.random.default_rng(seed)
    n, h, w = rng.integers(1, 4), rng.integers(6, 13), rng.integers(6, 13)
    masks = np.zeros((n, h, w), bool)
    for m in masks:
        for _ in range(rng.integers(1, 4)):
            r, c = rng.integers(0, h - 2), rng.integers(0, w - 2)
            m[r:r + rng.integers(1, 3), c:c + rng.integers(1, 3)] = True
        m[h - 1, w - 1] = m[h - 2, w - 2] = True  # a diagonal pair: one region with 8-connectivity
    if kind == "noise":
        maps = masks * 0.5 + rng.random(masks.shape)
    elif kind == "outliers":
        maps = masks * 0.5 + rng.random(masks.shape)
        flat = maps.reshape(-1)
        flat[rng.integers(0, flat.size, 3)] = [1000.0, -1000.0, 500.0]
    elif kind == "ties":  # integer-valued: many pixels share each value
        maps = (rng.integers(0, 4, masks.shape) + masks * rng.integers(0, 2, masks.shape)).astype(float)
    elif kind == "constant":
        maps = np.full(masks.shape, 2.5)
    elif kind == "float32":
        maps = (masks * 0.3 + rng.random(masks.shape)).astype(np.float32)
    return masks, maps


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["noise", "outliers", "ties", "constant", "float32"])
def test_aupro_equals_brute_force_and_official(kind, seed):
    masks, maps = _case(seed, kind)
    for limit in LIMITS:
        got = aupro(masks, maps, fpr_limit=limit)
        assert got == pytest.approx(brute_force_aupro(masks, maps, limit), abs=1e-9), limit
        if seed < 2:
            assert got == pytest.approx(mvtec_official_aupro(masks, maps, limit), abs=1e-9), limit


def test_aupro_constant_and_perfect_maps():
    masks, _ = _case(0, "noise")
    assert aupro(masks, np.full(masks.shape, 7.0)) == pytest.approx(0.15)  # the diagonal, cut at 0.3
    assert aupro(masks, np.full(masks.shape, 7.0), fpr_limit=1.0) == pytest.approx(0.5)
    assert aupro(masks, masks.astype(np.float32)) == pytest.approx(1.0)


def _outlier_case():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 32, 32), bool)
    for m in masks:
        for _ in range(2):
            r, c = rng.integers(0, 26, 2)
            m[r:r + 5, c:c + 6] = True
    maps = (masks * 1.4 + rng.random(masks.shape) * 1.6).astype(np.float32)  # values in 0...3
    return masks, maps


def test_aupro_one_hot_normal_pixel_changes_little():
    """One normal pixel at 1000 in maps within 0...3 used to turn 0.98 into 0.15."""
    masks, maps = _outlier_case()
    before = aupro(masks, maps)
    assert not masks[0, 31, 0]
    maps[0, 31, 0] = 1000.0
    after = aupro(masks, maps)
    assert 0.97 < before < 0.99
    assert after == pytest.approx(before, abs=2e-3)  # it moves the curve by 1 / n_normal only
    assert after == pytest.approx(brute_force_aupro(masks, maps, 0.3), abs=1e-9)
    assert after == pytest.approx(mvtec_official_aupro(masks, maps, 0.3), abs=1e-9)


def test_aupro_regions_are_per_image_and_empty_cases():
    # The same blob in two images is two regions: one fully found, one missed -> PRO 1/2 at most.
    masks = np.zeros((2, 5, 5), bool)
    masks[:, 1:3, 1:3] = True
    maps = np.zeros((2, 5, 5), np.float32)
    maps[0, 1:3, 1:3] = 1.0
    assert aupro(masks, maps, fpr_limit=1.0) == pytest.approx(brute_force_aupro(masks, maps, 1.0))
    assert aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.5 + 0.5 * 0.15)  # 1/2, then the diagonal
    assert np.isnan(aupro(np.zeros_like(masks), maps))
    assert np.isnan(aupro(np.ones_like(masks), maps))
    with pytest.raises(AdlibError, match="NaN"):
        aupro(masks, np.where(masks, np.nan, 0.0))


def test_aupro_accepts_float16_float64_and_integer_maps():
    masks, maps = _case(1, "ties")
    expected = brute_force_aupro(masks, maps, 0.3)
    for dtype in (np.float16, np.float32, np.float64, np.uint8, np.int64, np.int32):
        assert aupro(masks, maps.astype(dtype)) == pytest.approx(expected, abs=1e-9), dtype
    assert aupro(masks[0], maps[0]) == pytest.approx(brute_force_aupro(masks[:1], maps[:1], 0.3))


def _big_case():
    rng = np.random.default_rng(1)
    masks = np.zeros((40, 128, 128), bool)
    masks[:, 30:50, 60:90] = True
    maps = (masks * 0.5 + rng.random(masks.shape, dtype=np.float32)).astype(np.float32)
    return masks, maps


def test_pixel_metrics_pass_float32_views_to_sklearn(monkeypatch):
    masks, maps = _big_case()  # 655k pixels: below MAX_PIXELS, so every pixel is used
    seen = []

    def spy(original):
        def wrapped(labels, scores, *args, **kwargs):
            seen.append((scores.dtype, np.shares_memory(scores, maps)))
            return original(labels, scores, *args, **kwargs)
        return wrapped

    for name in ("roc_auc_score", "average_precision_score", "precision_recall_curve"):
        monkeypatch.setattr(metrics, name, spy(getattr(metrics, name)))
    pixel_metrics(masks, maps)
    assert seen and all(seen_item == (np.float32, True) for seen_item in seen), seen


@pytest.mark.parametrize("what", ["aupro", "pixel_metrics"])
def test_no_float64_copy_of_the_maps(monkeypatch, what):
    masks, maps = _big_case()  # float32 maps: 2.6 MB; a float64 copy alone would be 5.2 MB
    monkeypatch.setattr(metrics, "MAX_PIXELS", 10_000)  # subset path: sklearn allocates ~0.8 MB
    function = aupro if what == "aupro" else pixel_metrics
    tracemalloc.start()
    try:
        function(masks, maps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * maps.nbytes, f"peak {peak / 1e6:.1f} MB for {maps.nbytes / 1e6:.1f} MB of maps"


def test_pixel_subsample_uniform_without_replacement(monkeypatch):
    keep = metrics._subsample(1000, 600, seed=0)
    assert keep.size == 600 and np.all(np.diff(keep) > 0) and keep[0] >= 0 and keep[-1] < 1000
    assert np.array_equal(keep, metrics._subsample(1000, 600, seed=0))
    hits = np.zeros(10)
    for seed in range(200):
        np.add.at(hits, metrics._subsample(10, 3, seed), 1)
    assert np.all(np.abs(hits / 200 - 0.3) < 0.1)  # each of 10 items kept with probability 3/10

    monkeypatch.setattr(metrics, "MAX_PIXELS", 1000)
    masks, maps = _outlier_case()  # 4096 pixels
    keep = metrics._subsample(masks.size, 1000, metrics.SUBSAMPLE_SEED)
    got = pixel_metrics(masks, maps)
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel()[keep], maps.ravel()[keep]))
    assert got["aupro"] == pytest.approx(mvtec_official_aupro(masks, maps, 0.3))  # every pixel

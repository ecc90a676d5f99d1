"""Notebook 06's exercise 2 (issue 22): a second threshold that differs from the calibrated one on the run at
hand, and the trade it makes (false alarms against detections)."""
import json
from pathlib import Path

import numpy as np
import pytest

from adlib.method.scoring import conformal_threshold
from adlib.teach.viz.nb06_thresholds import another_rate, order_index, tradeoff

NB = Path(__file__).resolve().parents[1] / "notebooks" / "06_inspect_your_images.ipynb"


def test_with_few_scores_1_and_5_percent_are_the_same_threshold():
    v = np.arange(10.0)                                  # the old exercise's degeneracy: both are the largest score
    assert conformal_threshold(v, 0.01)[0] == conformal_threshold(v, 0.05)[0] == 9.0


@pytest.mark.parametrize("n, fpr", [(2, 0.05), (3, 0.05), (10, 0.05), (50, 0.01), (200, 0.05), (500, 0.3)])
def test_another_rate_gives_a_lower_order_statistic(n, fpr):
    v = np.random.default_rng(n).normal(size=n)
    a2 = another_rate(v, fpr)
    assert a2 > fpr and order_index(n, a2) < order_index(n, fpr)
    assert conformal_threshold(v, a2)[0] < conformal_threshold(v, fpr)[0]


def test_another_rate_prefers_round_rates_and_refuses_a_constant_set():
    v = np.random.default_rng(0).normal(size=200)
    assert another_rate(v, 0.05) == 0.1
    assert another_rate(np.random.default_rng(0).normal(size=50), 0.01) == 0.05
    with pytest.raises(ValueError):
        another_rate(np.ones(5), 0.05)


def test_tradeoff_counts_false_alarms_and_detections():
    val = np.array([0.0, 1.0, 2.0, 3.0])
    s, y = np.array([0.5, 2.5, 4.0, 5.0, 1.5]), np.array([0, 0, 1, 1, 1])
    hi, lo = tradeoff(val, s, 2.0, y), tradeoff(val, s, 1.0, y)
    assert (hi["val_false_alarms"], hi["false_alarms"], hi["detected"], hi["flagged"]) == (1, 1, 2, 3)
    assert (lo["val_false_alarms"], lo["false_alarms"], lo["detected"], lo["flagged"]) == (2, 1, 3, 4)
    assert lo["detection_rate"] == 1.0 and tradeoff(val, s, 1.0)["flagged"] == 4 and "detected" not in tradeoff(val, s, 1.0)


def test_the_notebook_asks_for_a_lower_order_statistic_and_prints_the_trade():
    cells = json.loads(NB.read_text())["cells"]
    ex2 = next("".join(c["source"]) for c in cells if "".join(c["source"]).startswith("# 2."))
    assert "another_rate(val, cal[\"fpr\"])" in ex2 and "k_2 < k_thr" in ex2 and 'tau_2 != cal["threshold"]' in ex2
    assert "np.median(s_all)" not in ex2, "a threshold from the scored images' own median promises nothing"
    assert "per extra detection" in ex2 and "detected" in ex2 and "false alarm" in ex2


def test_ordinals():
    from adlib.teach.viz.nb06_thresholds import ordinal
    assert [ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]

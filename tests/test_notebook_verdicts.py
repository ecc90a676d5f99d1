"""The one rule for AUROC verdicts in the notebooks (adlib.teach.verdicts): Hanley-McNeil standard errors,
and a difference within 2 standard errors is a tie."""
import numpy as np
import pytest

from adlib.evaluation.metrics import image_metrics
from adlib.teach import verdicts
from adlib.teach.viz import theory


def test_standard_error_is_hanley_mcneil_and_shared():
    assert theory.auroc_standard_error is verdicts.auroc_standard_error
    # the figure: about 0.01 at 313 anomalous / 118 normal images and AUROC 0.95
    assert 0.008 < verdicts.auroc_standard_error(0.95, 313, 118) < 0.014
    assert verdicts.auroc_standard_error(1.0, 10, 10) == 0.0
    assert verdicts.auroc_standard_error(0.3, 40, 60) == pytest.approx(verdicts.auroc_standard_error(0.7, 60, 40))


def test_standard_error_matches_repeated_experiments():
    rng = np.random.default_rng(0)
    n_pos, n_neg = 60, 40
    aurocs = []
    for _ in range(400):
        y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
        s = np.r_[rng.normal(1.0, 1, n_pos), rng.normal(0, 1, n_neg)]
        aurocs.append(image_metrics(y, s)["image_auroc"])
    se = verdicts.auroc_standard_error(float(np.mean(aurocs)), n_pos, n_neg)
    assert abs(np.std(aurocs) / se - 1) < 0.25


def test_ties_and_wins_follow_two_standard_errors():
    labels = np.r_[np.ones(313), np.zeros(118)]
    se = verdicts.auroc_se(0.95, labels)
    assert verdicts.compare_aurocs(0.954, 0.948, labels)["verdict"] == "tie"   # 0.006 apart: noise at this n
    assert verdicts.compare_aurocs(0.99, 0.90, labels)["verdict"] == "higher"
    assert verdicts.compare_aurocs(0.90, 0.99, labels)["verdict"] == "lower"
    c = verdicts.compare(0.5 + 2.01 * 0.01, 0.5, 0.01, 0.0)
    assert c["verdict"] == "higher" and verdicts.compare(0.5 + 1.99 * 0.01, 0.5, 0.01, 0.0)["verdict"] == "tie"
    assert verdicts.fmt_auroc(0.95, labels) == f"0.950 ± {se:.3f}"
    assert "level" in verdicts.sentence("a", 0.954, "b", 0.948, labels)
    assert "higher" in verdicts.sentence("a", 0.99, "b", 0.90, labels)
    assert verdicts.level_with_best({"a": 0.954, "b": 0.948, "c": 0.80}, labels) == ["a", "b"]


def test_paired_differences():
    rng = np.random.default_rng(1)
    assert verdicts.compare_paired(rng.normal(0, 1, 50))["verdict"] == "tie"
    assert verdicts.compare_paired(rng.normal(-1, 0.1, 50))["verdict"] == "lower"

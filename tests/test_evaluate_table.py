"""The text table `adlib evaluate` and `adlib compare` print (issue 20): whole column names, one line saying
what mAD is, and the false-positive and detection rates at the calibrated threshold (before, only --json had
them)."""
from adlib.evaluation.bench import format_table

ROW = {"name": "invad", "score": "local-top", "image_auroc": 0.91, "image_ap": 0.88, "image_f1max": 0.8,
       "pixel_auroc": None, "aupro": None, "pixel_ap": None, "pixel_f1max": None, "mad": 0.863, "nfe": 3,
       "score_images_per_second": 412.5, "images_per_second": 6.1, "backbone_ratio": 0.97, "threshold": 1.2345,
       "threshold_fpr_on_val": 0.05, "fpr_guaranteed": 0.25, "test_fpr": 0.1, "test_tpr": 0.75}
REPORT = {"data": "folder:good:bad", "n_train": 30, "n_test": 12, "n_anomalous": 4,
          "backbone_images_per_second": 6.3, "methods": [ROW]}


def test_headers_are_whole_and_mad_is_explained():
    text = format_table(REPORT)
    head = text.splitlines()[1].split()
    for name in ("image_auroc", "mAD", "backbone_ratio", "images/s"):
        assert name in head, head
    assert "scoring images/s" in text and "end-to-end images/s" in text
    assert "score_images/" not in text and "backbone_rati " not in text and "backbone_rati\n" not in text
    assert "pixel_auroc" not in text.splitlines()[1]  # no masks: the pixel columns every row lacks are left out
    legend = next(line for line in text.splitlines() if line.startswith("mAD:"))
    for metric in ("image AUROC, AP, F1-max", "pixel AUROC, AUPRO, AP, F1-max", "seven"):
        assert metric in legend


def test_rates_at_the_calibrated_threshold_are_printed():
    line = next(x for x in format_table(REPORT).splitlines() if "calibrated threshold" in x)
    assert "false-positive rate 10.0% (1 of 8 normal test images flagged)" in line, line
    assert "detection rate (true-positive rate) 75.0%" in line and "(3 of 4 anomalous found)" in line, line
    assert "<= 25.0% (target 5.0%)" in line, line


def test_compare_rows_without_a_threshold_print_no_rate_line():
    rows = [{k: v for k, v in ROW.items() if not k.startswith(("test_", "threshold", "fpr"))}]
    assert "calibrated threshold" not in format_table({**REPORT, "methods": rows})


def test_rows_are_labelled_by_their_scores_not_by_the_method_name():
    """A method with several image scores (InvAD) gets a `score` per row; one score (a baseline's max) gets none,
    whatever the method is called; evaluate's single chosen score asks for its label."""
    import numpy as np
    import torch

    from adlib.evaluation.bench import method_rows
    labels = np.array([0, 0, 1, 1])
    amap = torch.tensor([0.1, 0.2, 0.8, 0.9]).reshape(4, 1, 1).expand(4, 2, 2)
    several = {"nll": np.array([1., 2., 3., 4.]), "max": np.array([.1, .2, .8, .9]), "map": amap}
    assert [r["score"] for r in method_rows("anything", several, labels, None, 8, {})] == ["nll", "max"]
    one = {"max": np.array([.1, .2, .8, .9]), "map": amap}
    assert "score" not in method_rows("invad lookalike", one, labels, None, 8, {})[0]
    assert method_rows("x", one, labels, None, 8, {}, label_scores=True)[0]["score"] == "max"

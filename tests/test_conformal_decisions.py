"""Full-conformal decisions in the kit (adlib/runs/full_conformal.py): a cross-fitted run with fewer than 50 normals
decides by them in predict, evaluate and the report, each decision the one p_value gives; --decision threshold and
the ONNX graph keep the threshold; runs it cannot apply to keep the threshold or are refused in one line."""
import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from adlib import RunConfig, train_run
from adlib.data import Sample
from adlib.errors import AdlibError
from adlib.method import calibration
from adlib.runs import full_conformal
from adlib.runs.run import Run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def few_run(mini, tmp_path_factory):
    """The cpu default (standard on auto features, cross-fitted) on mini's 24 good images."""
    cfg = RunConfig(data=str(mini), image_size=128)
    return train_run(cfg, tmp_path_factory.mktemp("runs") / "few", progress=False)


def _rows(out):
    with open(out / "predictions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def predicted(few_run, mini, tmp_path_factory):
    from adlib.deploy.predict import predict
    out = tmp_path_factory.mktemp("pred") / "out"
    return predict(few_run, [mini / "test"], out, progress=False, engine="torch"), out


def test_a_few_image_cross_fitted_run_decides_by_full_conformal(few_run):
    cal = json.loads((few_run.path / calibration.FILE).read_text())
    assert cal["decision"] == full_conformal.DECISION and cal["n_normals"] == 24 < calibration.FEW_NORMALS
    assert cal["fpr_guaranteed"] == pytest.approx(1 / 25)  # floor(0.05 * 25) / 25: flagged only above all 24
    assert "full conformal" in cal["method"]


def test_predict_flags_by_p_values_that_are_the_rank_among_the_normals(predicted, few_run, mini):
    summary, out = predicted
    rows = _rows(out)
    assert summary["decision"] == "full-conformal" and summary["engine"] == "torch"
    assert all(r["threshold"] == "" and r["p_value"] for r in rows)  # p decides; no threshold is written
    p = np.array([float(r["p_value"]) for r in rows])
    assert np.allclose(p * 25, np.round(p * 25))  # a rank among n + 1 = 25
    assert [r["decision"] for r in rows] == ["anomalous" if v <= 1 / 25 + 1e-9 else "normal" for v in p]
    normals = full_conformal.normal_features(few_run)
    assert normals.shape[0] == 24
    first = rows[0]
    z, _ = few_run.raw_features([Sample(first["path"], 0)])
    assert full_conformal.p_value(few_run.cfg, normals, z[0]) == pytest.approx(float(first["p_value"]))
    anomalous = np.array(["good" not in r["name"] for r in rows])
    assert p[anomalous].mean() < p[~anomalous].mean()  # mini's defects rank above its good images


def test_the_report_says_how_it_decides_and_draws_no_threshold_line(predicted):
    _, out = predicted
    page = (out / "report.html").read_text()
    assert "compared with the 24 good images the run was made from" in page and "(full conformal)" in page
    assert "stroke-dasharray" not in page and "No threshold line" in page and " · p " in page


def test_decision_threshold_decides_by_the_threshold_and_is_part_of_the_folders_identity(predicted, few_run, mini, tmp_path):
    from adlib.deploy.predict import predict
    _, conformal_out = predicted
    s = predict(few_run, [mini / "test"], tmp_path / "t", progress=False, engine="torch", decision="threshold")
    rows = _rows(tmp_path / "t")
    assert s["decision"] == "threshold" and all(r["p_value"] == "" for r in rows)
    assert [r["decision"] for r in rows] == ["anomalous" if float(r["score"]) > s["threshold"] else "normal" for r in rows]
    with pytest.raises(AdlibError, match="--decision"):
        predict(few_run, [mini / "test"], conformal_out, progress=False, engine="torch", decision="threshold")


def test_an_exported_graph_cannot_make_full_conformal_decisions(few_run, mini, tmp_path):
    from adlib.deploy.predict import predict
    for kwargs in ({"engine": "onnx"}, {"onnx": tmp_path / "graph.onnx"}):
        with pytest.raises(AdlibError, match="full conformal.*--decision threshold"):
            predict(few_run, [mini / "test"], tmp_path / "o", progress=False, **kwargs)
    assert not (tmp_path / "o").exists()


def test_evaluate_reports_the_rates_of_the_decisions_predict_makes(few_run, mini):
    from adlib.data import load_spec
    from adlib.evaluation.evaluate import evaluate_run
    data = load_spec(few_run.cfg.data, few_run.cfg.split_seed)
    row = evaluate_run(few_run, data, n_timing=4)["methods"][0]
    raw, test = few_run.raw_features(data.test)
    cal = full_conformal.resolve(few_run, few_run.calibration())
    flags = full_conformal.flags(cal, full_conformal.p_values(few_run.cfg, cal, full_conformal.normal_features(few_run), raw))
    labels = np.array([s.label for s in test])
    assert row["decision"] == "full-conformal" and row["decision_images_per_second"] > 0
    assert row["test_fpr"] == pytest.approx(flags[labels == 0].mean())
    assert row["test_tpr"] == pytest.approx(flags[labels == 1].mean())
    assert evaluate_run(few_run, data, n_timing=4, decision="threshold")["methods"][0]["decision"] == "threshold"


def test_runs_it_does_not_fit_keep_the_threshold_or_are_refused(few_run, tiny_run):
    cfg = few_run.cfg
    assert full_conformal.applies(cfg, 49) and not full_conformal.applies(cfg, 50)
    assert not full_conformal.applies(replace(cfg, calibration="split"), 20)
    assert full_conformal.resolve(tiny_run, tiny_run.calibration())["decision"] == "threshold"  # a trained mlp
    with pytest.raises(AdlibError, match="--decision full-conformal .* --model mlp"):
        full_conformal.resolve(tiny_run, tiny_run.calibration(), "full-conformal")
    old = {k: v for k, v in few_run.calibration().items() if k != "decision"}  # a record written before decisions
    assert full_conformal.resolve(few_run, old)["decision"] == "threshold"
    with pytest.raises(AdlibError, match="--decision sometimes"):
        full_conformal.resolve(few_run, old, "sometimes")


def test_p_values_use_the_records_score(few_run):
    """The decision ranks by the calibration's score (here max instead of the run's local-top) and its steps."""
    normals = full_conformal.normal_features(few_run)
    u = normals[:1] + torch.randn(normals[:1].shape, generator=torch.Generator().manual_seed(0))
    cal = {**few_run.calibration(), "score": "max"}
    by_max = full_conformal.p_values(few_run.cfg, cal, normals, u)
    alone = full_conformal.p_value(replace(few_run.cfg, score="max"), normals, u[0])
    assert by_max[0] == pytest.approx(alone)


def test_evaluate_on_other_data_ranks_its_images_among_the_runs_normals(few_run, mini):
    """A folder of new labelled images needs no validation normals of its own: decisions are predict's."""
    from adlib.data import load_spec
    from adlib.evaluation.evaluate import evaluate_run
    bad = next(p for p in sorted((mini / "test").iterdir()) if p.name != "good")
    data = load_spec(f"folder:{mini / 'test' / 'good'}:{bad}", few_run.cfg.split_seed)
    row = evaluate_run(few_run, data, n_timing=4)["methods"][0]
    assert row["decision"] == "full-conformal" and "ranked among the run's normals" in row["calibration"]
    assert row["n_val"] == 24
    fitted = evaluate_run(few_run, data, n_timing=4, decision="threshold")["methods"][0]
    assert fitted["decision"] == "threshold" and "validation normals of folder:" in fitted["calibration"]


def test_a_run_saved_before_decisions_keeps_the_threshold_on_other_data(few_run, mini, tmp_path):
    import shutil

    from adlib.data import load_spec
    from adlib.evaluation.evaluate import evaluate_run
    old = tmp_path / "old"
    shutil.copytree(few_run.path, old)
    cal = json.loads((old / calibration.FILE).read_text())
    del cal["decision"]
    (old / calibration.FILE).write_text(json.dumps(cal))
    bad = next(p for p in sorted((mini / "test").iterdir()) if p.name != "good")
    data = load_spec(f"folder:{mini / 'test' / 'good'}:{bad}", few_run.cfg.split_seed)
    row = evaluate_run(Run(old), data, n_timing=4)["methods"][0]
    assert row["decision"] == "threshold" and "validation normals of folder:" in row["calibration"]

"""`adlib export`: the ONNX graph gives the kit's torch path's scores, maps and decisions on the same images.

Two tiny runs on a generated miniature (64 px, 4 x 4 latent grid, raw weights so the eps-networks are not ~0):
gaussian+conv with `whiten` (einsum buffers, 3 x 3 convs, L^-1 in the graph) exported end to end through the
CLI with the default (dynamo) exporter, and mlp with `position` through `export_onnx` with another S and score
(calibrated now on the validation normals) and the legacy TorchScript exporter (seconds instead of ~20-40 s). Tolerance (adlib.deploy.export.MAP_TOL / SCORE_TOL): maps rtol 1e-4 /
atol 1e-4, scores rtol 1e-3 / atol 1e-3, and the same decisions against the threshold. A graph with the
standardisation left out must fail that comparison.
"""
import sys

import numpy as np
import pytest
import torch
from torch import nn

from adlib.cli import main
from adlib.data import make_mini_mvtec
from adlib.deploy import export
from adlib.errors import AdlibError
from adlib.runs.run import Run

TINY = ["--iters", "20", "--batch-size", "8", "--image-size", "64"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy 2-core machine: one thread keeps small ops from waiting on each other
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_mini_mvtec(tmp_path_factory.mktemp("export-data") / "cat", seed=3, size=64, n_train=24,
                           n_test_good=2, n_test_per_defect=1)


def _train(data, out, model, standardize):
    assert main(["--threads", "1", "train", "--data", str(data), "--out", str(out), *TINY, "--model", model,
                 "--standardize", standardize]) == 0
    return out


@pytest.fixture(scope="module")
def conv_run(data, tmp_path_factory):
    return _train(data, tmp_path_factory.mktemp("export-runs") / "gconv", "gaussian+conv", "whiten")


@pytest.fixture(scope="module")
def mlp_run(data, tmp_path_factory):
    return _train(data, tmp_path_factory.mktemp("export-runs") / "mlp", "mlp", "position")


@pytest.fixture(scope="module")
def images(data):
    paths = sorted(str(p) for p in (data / "test").rglob("*.png"))
    return export.preprocess(paths, 64)  # 8-bit images: the runs' bit depth decodes as None


def _compare(ref, out):
    """Max differences, after checking shapes and the tolerance; printed for the record (pytest -s)."""
    for key in ("score", "map", "pixel_map", "anomalous"):
        assert np.shape(out[key]) == np.shape(ref[key]), key
    diffs = export.max_differences(ref, out)
    print("onnxruntime vs torch:", {k: f"{v:.2e}" for k, v in diffs.items()})
    return diffs


def test_cli_export_gaussian_conv_whiten_matches_torch(conv_run, data, images, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    assert main(["--threads", "1", "export", str(conv_run), "--out", str(out), "--weights", "model"]) == 0
    assert "wrote" in capsys.readouterr().out
    onnx_scorer = export.OnnxScorer(out, threads=1)
    torch_scorer = export.TorchScorer(Run(conv_run, "model", "cpu"))
    ref, got = torch_scorer(images), onnx_scorer(images)
    _compare(ref, got)
    assert export.agree(ref, got)
    np.testing.assert_allclose(got["map"], ref["map"], **export.MAP_TOL)
    np.testing.assert_allclose(got["score"], ref["score"], **export.SCORE_TOL)
    far = np.abs(ref["score"] - torch_scorer.threshold) > 1e-3 * max(1.0, abs(torch_scorer.threshold))
    assert far.any() and (got["anomalous"] == ref["anomalous"])[far].all()
    # the metadata carries the calibration the torch path decides with
    record, meta = torch_scorer.record, onnx_scorer.meta
    assert onnx_scorer.threshold == record["threshold"]
    assert (int(meta["steps"]), meta["grid"], meta["score"], float(meta["fpr"])) == \
        (record["steps"], record["grid"], record["score"], record["fpr"])
    assert meta["standardize"] == "whiten" and meta["weights"] == "model" and int(meta["image_size"]) == 64
    # one dynamic batch axis: a single image gives its row of the batch
    assert isinstance(onnx_scorer.session.get_inputs()[0].shape[0], str)
    one = onnx_scorer(images[2:3])
    np.testing.assert_allclose(one["map"][0], got["map"][2], rtol=1e-5, atol=1e-5)
    # the graph's own pre-processing (image size and bit depth from its metadata) decodes files as the kit does
    assert torch.equal(onnx_scorer.preprocess(sorted(str(p) for p in (data / "test").rglob("*.png"))), images)
    # an existing file is kept unless --overwrite
    assert main(["export", str(conv_run), "--out", str(out)]) == 2


def test_export_mlp_position_other_steps_and_local_score(mlp_run, images, tmp_path):
    pytest.importorskip("onnxruntime")
    run = Run(mlp_run, "model", "cpu")
    out = tmp_path / "mlp.onnx"
    # the legacy exporter: ~10x faster to export than dynamo (tested above), and it handles mlp (not conv or dit)
    r = export.export_onnx(run, out, steps=2, score="local-top", weights="model", exporter="torchscript")
    assert r["check"]["map_abs"] < 1e-4  # the export's own check, on two random images
    onnx_scorer, torch_scorer = export.OnnxScorer(out, threads=1), export.TorchScorer(run, steps=2, score="local-top")
    assert torch_scorer.record["source"].startswith("fitted now")  # not the saved S = 3 calibration
    ref, got = torch_scorer(images), onnx_scorer(images)
    _compare(ref, got)
    assert export.agree(ref, got)
    assert (got["anomalous"] == ref["anomalous"]).all()
    assert onnx_scorer.meta["points"] == "[0, 500, 999]" and onnx_scorer.threshold == torch_scorer.record["threshold"]
    # the pixel map is the norm map upsampled as scoring.pixel_map does
    from adlib.method.scoring import pixel_map
    np.testing.assert_allclose(got["pixel_map"], pixel_map(torch.from_numpy(got["map"]), 64).numpy(), atol=1e-5)


def test_graph_without_standardisation_fails_the_comparison(mlp_run, images, tmp_path, monkeypatch):
    """The comparison is not vacuous: leave the standardisation out of the graph and it fails."""
    pytest.importorskip("onnxruntime")
    run = Run(mlp_run, "model", "cpu")
    monkeypatch.setattr(export, "standardizer", lambda stats: nn.Identity())
    out = tmp_path / "broken.onnx"
    export.export_onnx(run, out, exporter="torchscript", weights="model")  # the fast exporter suffices for mlp
    ref, got = export.TorchScorer(run)(images), export.OnnxScorer(out, threads=1)(images)
    assert not export.agree(ref, got)
    assert not np.allclose(got["map"], ref["map"], **export.MAP_TOL)


def _fails(capsys, argv, *needles):
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_export_bad_input_is_one_line(mlp_run, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "m.onnx")
    _fails(capsys, ["export", str(tmp_path / "no-run"), "--out", out], "not a run directory")
    (tmp_path / "taken.onnx").write_bytes(b"x")
    _fails(capsys, ["export", str(mlp_run), "--out", str(tmp_path / "taken.onnx")], "exists", "--overwrite")
    _fails(capsys, ["export", str(mlp_run), "--out", str(tmp_path)], "is a folder")
    _fails(capsys, ["export", str(mlp_run), "--out", out, "--fpr", "2"], "--fpr 2")
    _fails(capsys, ["export", str(mlp_run), "--out", out, "--weights", "nope"], "--weights nope")
    _fails(capsys, ["export", str(mlp_run), "--out", out, "--steps", "0"], "--steps 0")
    if "onnx" in sys.modules or _importable("onnx"):
        _fails(capsys, ["export", str(mlp_run), "--out", out, "--opset", "9"], "--opset 9")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    _fails(capsys, ["export", str(mlp_run), "--out", out], "onnx is not installed", "adlib[onnx]")
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_scorer_bad_input(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    with pytest.raises(AdlibError, match="not found"):
        export.OnnxScorer(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(AdlibError, match="not a loadable ONNX graph"):
        export.OnnxScorer(tmp_path / "junk.onnx")
    with pytest.raises(AdlibError, match="B x 3 x 64 x 64"):
        export._as_images(torch.zeros(2, 3, 32, 32), 64)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(AdlibError, match="onnxruntime is not installed"):
        export.OnnxScorer(tmp_path / "junk.onnx")


def _importable(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None

"""`adlib predict --engine auto|torch|onnx`, `--onnx FILE`: the exported graph under onnxruntime writes the CSV,
maps and report the torch engine writes; auto picks it when `adlib export RUN` has written the graph for these
settings; a graph of other settings or another run is refused in one line, nothing written; DIR keeps its engine.

A copy of the session's tiny run (mlp: the fast legacy TorchScript exporter, a few seconds), exported with
`adlib export RUN --score nll` (the default path RUN/export/ema-3-paper-nll-0.05.onnx; the nll score, calibrated
now, flags 16 of the miniature's 20 test images, so both decisions occur).
"""
import csv
import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image
from test_predict import _files, _fails, _rows

from adlib.cli import main
from adlib.deploy import export
from adlib.errors import AdlibWarning

pytest.importorskip("onnxruntime")
NLL = ["--score", "nll"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: torch on one thread


@pytest.fixture(scope="module")
def run_dir(tiny_run, tmp_path_factory):
    """A copy of the tiny run (the session's run keeps no export/), with its nll graph at the default path."""
    run = shutil.copytree(tiny_run.path, tmp_path_factory.mktemp("onnx-run") / "run")
    assert main(["--threads", "1", "export", str(run), *NLL, "--exporter", "torchscript"]) == 0
    assert (run / "export" / "ema-3-paper-nll-0.05.onnx").is_file()
    return run


def test_export_keeps_the_graph_at_the_default_path(run_dir, graph, capsys):
    before = graph.read_bytes()
    _fails(capsys, ["export", str(run_dir), *NLL, "--exporter", "torchscript"], graph, "exists", "--overwrite")
    assert graph.read_bytes() == before


@pytest.fixture(scope="module")
def graph(run_dir):
    return run_dir / "export" / "ema-3-paper-nll-0.05.onnx"


def _predict(run, inputs, out, *extra) -> str:
    """The exit status of main(predict ...)."""
    return main(["predict", str(run), *map(str, inputs), "--out", str(out), "--batch-size", "8", *map(str, extra)])


@pytest.fixture(scope="module")
def outs(run_dir, graph, mini, tmp_path_factory):
    """The miniature's test folder predicted with the torch engine and with --onnx (same settings)."""
    base = tmp_path_factory.mktemp("onnx-predict")
    assert _predict(run_dir, [mini / "test"], base / "torch", *NLL, "--engine", "torch") == 0
    assert _predict(run_dir, [mini / "test"], base / "onnx", *NLL, "--onnx", graph) == 0
    return base / "torch", base / "onnx"


def _state(out) -> dict:
    return json.loads((out / "predict.json").read_text())


def test_onnx_engine_writes_what_torch_writes(outs, graph):
    ref, got = outs
    assert (_state(ref)["engine"], _state(got)["engine"]) == ("torch", "onnx")
    assert _state(got)["onnx"] == str(graph.resolve())
    a, b = _rows(ref), _rows(got)
    assert [r["name"] for r in a] == [r["name"] for r in b] and len(a) == 20
    for key in ("path", "threshold", "decision", "x", "y", "map"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    decisions = [r["decision"] for r in a]
    assert 0 < decisions.count("normal") < len(decisions)  # both decisions occur
    np.testing.assert_allclose([float(r["score"]) for r in b], [float(r["score"]) for r in a], **export.SCORE_TOL)
    for r in a:  # the overlays: at most a level of rounding apart, in a few pixels
        with Image.open(ref / r["map"]) as x, Image.open(got / r["map"]) as y:
            assert x.size == y.size
            d = np.abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int))
        assert d.max() <= 2 and (d > 0).mean() < 0.01, (r["name"], d.max(), (d > 0).mean())
        assert (got / "thumbs" / f"{r['name']}.jpg").is_file()
    html = (got / "report.html").read_text()
    assert all(f'"maps/{r["name"]}"' in html for r in b)
    summary = {k: _state(got)[k] for k in ("images", "anomalous", "normal", "skipped", "calibration")}
    assert summary == {k: _state(ref)[k] for k in summary}


def test_auto_picks_the_exported_graph_for_these_settings(run_dir, graph, mini, tmp_path, capsys):
    good = mini / "test" / "good"
    assert _predict(run_dir, [good], tmp_path / "a", *NLL, "--no-maps") == 0
    err = capsys.readouterr().err
    assert _state(tmp_path / "a")["engine"] == "onnx" and f"engine: onnxruntime, {graph.resolve()}" in err
    assert "hint" not in err
    # no graph for the run's own score (local-top): torch, and a hint naming the export command
    assert _predict(run_dir, [good], tmp_path / "b", "--no-maps") == 0
    err = capsys.readouterr().err
    lines = [x.rsplit("\r", 1)[-1].strip() for x in err.splitlines()]
    assert _state(tmp_path / "b")["engine"] == "torch" and "engine: torch (auto: no exported graph" in err
    assert [x for x in lines if x.startswith("hint: ")] == \
        [f"hint: `adlib export {run_dir}` once makes predict ~3x faster (onnxruntime; then --engine auto uses it)"]
    # onnxruntime missing: torch, no hint
    with pytest.MonkeyPatch.context() as m:
        m.setitem(sys.modules, "onnxruntime", None)
        assert _predict(run_dir, [good], tmp_path / "c", *NLL, "--no-maps") == 0
    err = capsys.readouterr().err
    assert _state(tmp_path / "c")["engine"] == "torch" and "onnxruntime is not installed" in err and "hint" not in err
    assert _state(tmp_path / "c")["engine_reason"] == "auto: onnxruntime is not installed"
    # the same scores either way (the calibration record, hence the threshold, is the run's)
    a, c = _rows(tmp_path / "a"), _rows(tmp_path / "c")
    np.testing.assert_allclose([float(r["score"]) for r in a], [float(r["score"]) for r in c], **export.SCORE_TOL)
    assert [r["decision"] for r in a] == [r["decision"] for r in c]


def test_mismatched_or_broken_graphs_are_refused(run_dir, graph, mini, tmp_path, capsys):
    out, test = tmp_path / "o", mini / "test" / "spot"
    base = ["predict", str(run_dir), str(test), "--out", str(out)]
    _fails(capsys, base + ["--onnx", str(graph), "--score", "diff"], graph, "--score nll", "--score diff")
    _fails(capsys, base + ["--onnx", str(graph), *NLL, "--steps", "2"], "--steps 3", "--steps 2")
    _fails(capsys, base + ["--onnx", str(graph)], "--score nll", "--score local-top", "the run's default")
    _fails(capsys, base + ["--onnx", str(graph), *NLL, "--fpr", "0.5"], "--fpr 0.05", "--fpr 0.5")
    _fails(capsys, base + ["--onnx", str(graph), *NLL, "--weights", "model"], "--weights ema", "--weights model")
    _fails(capsys, base + ["--engine", "onnx"], "ema-3-paper-local-top-0.05.onnx", "does not exist", "adlib export")
    _fails(capsys, base + ["--onnx", str(graph), "--engine", "torch"], "--onnx", "--engine torch")
    # another run (the same one with other weights): its fingerprint differs
    other = shutil.copytree(run_dir, tmp_path / "other", ignore=shutil.ignore_patterns("export"))
    from safetensors.torch import load_file, save_file
    weights = other / "ema" / "diffusion_pytorch_model.safetensors"
    save_file({k: v + 0.01 for k, v in load_file(weights).items()}, weights)
    _fails(capsys, ["predict", str(other), str(test), "--out", str(out), "--onnx", str(graph), *NLL],
           graph, "another run", "--engine torch")
    # a graph whose threshold is not the run's calibration (no fingerprint recorded: an older export)
    import onnx
    model = onnx.load(str(graph))
    props = {p.key: p.value for p in model.metadata_props if p.key != "run_fingerprint"}
    props["threshold"] = repr(float(props["threshold"]) + 1)
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(tmp_path / "old.onnx"))
    _fails(capsys, base + ["--onnx", str(tmp_path / "old.onnx"), *NLL], "threshold", "changed since the export")
    # missing, corrupt, not adlib's, onnxruntime missing
    _fails(capsys, base + ["--onnx", str(tmp_path / "none.onnx"), *NLL], "none.onnx not found")
    (tmp_path / "junk.onnx").write_bytes(b"\x08garbage" * 100)
    _fails(capsys, base + ["--onnx", str(tmp_path / "junk.onnx"), *NLL], "not a loadable ONNX graph")
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    _fails(capsys, base + ["--onnx", str(tmp_path / "bare.onnx"), *NLL], "not written by `adlib export`")
    with pytest.MonkeyPatch.context() as m:
        m.setitem(sys.modules, "onnxruntime", None)
        _fails(capsys, base + ["--onnx", str(graph), *NLL], "onnxruntime is not installed", "adlib[onnx]")
        _fails(capsys, base + ["--engine", "onnx", *NLL], "onnxruntime is not installed")
    assert not out.exists()
    # a stale graph at the default path: auto warns and scores with torch
    stale = shutil.copytree(other, tmp_path / "stale")
    (stale / "export").mkdir()
    shutil.copy(graph, stale / "export" / graph.name)
    with pytest.warns(AdlibWarning, match="not using the exported graph: .* another run"):
        assert _predict(stale, [test], out, *NLL, "--no-maps") == 0
    assert _state(out)["engine"] == "torch" and _state(out)["engine_reason"].endswith("does not match")


def test_a_rerun_keeps_the_engine_of_its_folder(outs, run_dir, graph, mini, tmp_path, capsys):
    ref, got = outs
    for src, extra, needles in [(ref, ["--onnx", str(graph)], ["--engine torch, not --engine onnx"]),
                                (ref, ["--engine", "onnx"], ["--engine torch, not --engine onnx"]),
                                (got, ["--engine", "torch"], ["--engine onnx, not --engine torch"])]:
        out = shutil.copytree(src, tmp_path / f"{src.name}-{len(list(tmp_path.iterdir()))}")
        before = _files(out)
        _fails(capsys, ["predict", str(run_dir), str(mini / "test"), "--out", str(out), *NLL, *extra], out, *needles)
        assert _files(out) == before
    # auto continues each folder with the engine it was started with (the graph exists for these settings)
    for src, engine in [(ref, "torch"), (got, "onnx")]:
        out = shutil.copytree(src, tmp_path / f"{engine}-again")
        with open(out / "predictions.csv", newline="") as f:
            rows = list(csv.reader(f))
        with open(out / "predictions.csv", "w", newline="") as f:  # as if interrupted after 8 images
            csv.writer(f).writerows(rows[:9])
        assert _predict(run_dir, [mini / "test"], out, *NLL) == 0
        assert _state(out)["engine"] == engine and len(_rows(out)) == 20
        assert "continues" in _state(out)["engine_reason"] or engine == "onnx"
        assert f"engine: {'onnxruntime' if engine == 'onnx' else 'torch'}" in capsys.readouterr().err
        assert (out / "predictions.csv").read_bytes() == (src / "predictions.csv").read_bytes()


def test_predict_json_of_an_older_version_means_torch(outs, run_dir, mini, tmp_path, capsys):
    """A predict.json written before --engine existed: torch predictions, continued by auto and --engine torch."""
    ref, _ = outs
    out = shutil.copytree(ref, tmp_path / "old")
    state = _state(out)
    for key in ("engine", "engine_reason", "onnx"):
        del state[key]
    (out / "predict.json").write_text(json.dumps(state))
    assert _predict(run_dir, [mini / "test"], out, *NLL) == 0
    assert _state(out)["engine"] == "torch"

"""The `adlib` command line: help, make-mini-mvtec, and bad input -> one line on stderr, exit status 2.

Most cases run `adlib.cli.main` in-process (fast); a few go through a real `python -m adlib` subprocess.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from adlib.cli import main
from adlib.data import load_mask
from adlib.errors import AdlibError
from adlib.runs.config import RunConfig
from cli_support import TINY, _fails, _private_cache, _train, _visible_lines, cat, data  # noqa: F401


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: torch on one thread


@pytest.fixture(scope="module")
def run_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-run-cache")


@pytest.fixture(scope="module")
def run64(data, run_cache, tmp_path_factory):
    """A tiny run at 64 px trained through the CLI (its features cached in run_cache)."""
    out = tmp_path_factory.mktemp("cli-runs") / "run"
    old = os.environ.get("ADLIB_CACHE")
    os.environ["ADLIB_CACHE"] = str(run_cache)
    try:
        assert main(_train(data, out)) == 0
    finally:
        if old is None:
            os.environ.pop("ADLIB_CACHE", None)
        else:
            os.environ["ADLIB_CACHE"] = old
    return out


def _subprocess(args, tmp_path):
    env = {**os.environ, "ADLIB_CACHE": str(tmp_path / "sub-cache"), "OMP_NUM_THREADS": "1"}
    # bytes, decoded by hand: text=True would turn the progress bars' \r into line breaks
    r = subprocess.run([sys.executable, "-m", "adlib", *args], capture_output=True, env=env, timeout=300)
    r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
    return r


# --- help and make-mini-mvtec --------------------------------------------------------------------

@pytest.mark.parametrize("argv", [[], ["train"], ["evaluate"], ["compare"], ["make-mini-mvtec"]])
def test_help_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    assert "usage: adlib" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2


def test_make_mini_mvtec(tmp_path, capsys):
    path = tmp_path / "made"
    assert main(["make-mini-mvtec", str(path), "--size", "64", "--seed", "2"]) == 0
    assert str(path) in capsys.readouterr().out
    assert len(list((path / "train" / "good").glob("*.png"))) > 0
    assert len(list((path / "ground_truth").rglob("*_mask.png"))) > 0
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}

    line = _fails(capsys, ["make-mini-mvtec", str(path), "--size", "64", "--seed", "3"], path, "--overwrite")
    assert "not empty" in line
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made"]  # no temporary folder left behind

    assert main(["make-mini-mvtec", str(path), "--size", "64", "--seed", "3", "--overwrite"]) == 0
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made"]


def test_make_mini_mvtec_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    _fails(capsys, ["make-mini-mvtec", str(tmp_path / "x"), "--size", "64"], tmp_path / "x")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep.txt"]


# --- training: success, and the run's split record -----------------------------------------------

def test_train_writes_a_run(run64):
    for name in ("config.json", "split.json", "stats.safetensors", "calibration.json"):
        assert (run64 / name).is_file(), name
    # the default model is closed-form: stored once in model/, no ema/ copy and no loss curve (issue 20)
    assert (run64 / "model" / "config.json").is_file() and not (run64 / "ema").exists()
    assert not (run64 / "loss.csv").exists()
    split = json.loads((run64 / "split.json").read_text())
    assert split["skipped"] == 0
    assert len(split["train"]) == 22 and len(split["val"]) == 2 and len(split["test"]) == 5
    cfg = json.loads((run64 / "config.json").read_text())
    assert cfg["image_size"] == 64 and cfg["iters"] == 0 and cfg["standardize"] == RunConfig().standardize


# --- 1. missing or empty train/good --------------------------------------------------------------

@pytest.mark.parametrize("how", ["missing", "empty"])
def test_missing_or_empty_train_good(cat, tmp_path, capsys, how):
    good = cat / "train" / "good"
    shutil.rmtree(good)
    if how == "empty":
        good.mkdir()
    out = tmp_path / "run"
    _fails(capsys, _train(cat, out), good)
    assert not out.exists()


def test_debug_reraises(cat, tmp_path):
    shutil.rmtree(cat / "train" / "good")
    with pytest.raises(AdlibError, match="train/good"):
        main(["--debug", *_train(cat, tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# --- 2. undecodable images -----------------------------------------------------------------------

def test_undecodable_training_image(cat, tmp_path, capsys):
    bad = cat / "train" / "good" / "zzz_garbage.png"
    bad.write_bytes(b"\x00garbage, not a PNG\xff" * 50)
    out = tmp_path / "run"
    _fails(capsys, _train(cat, out), bad, "--skip-bad")
    assert not out.exists()

    assert main(_train(cat, out, "--skip-bad")) == 0
    assert "trained" in capsys.readouterr().out
    split = json.loads((out / "split.json").read_text())
    assert split["skipped"] == 1
    assert str(bad) not in split["train"] + split["val"]  # the split lists (and its digest) hold what was kept
    assert split["skipped_files"] == [str(bad)]


def test_undecodable_image_subprocess(cat, tmp_path):
    bad = cat / "train" / "good" / "zzz_garbage.png"
    bad.write_bytes(b"not an image at all")
    out = tmp_path / "run"
    r = _subprocess(_train(cat, out), tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = _visible_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0], r.stderr
    assert not out.exists()


# --- 3. an anomalous image without its mask ------------------------------------------------------

def test_missing_mask(cat, tmp_path, capsys):
    (cat / "ground_truth" / "spot" / "000_mask.png").unlink()
    out = tmp_path / "run"
    _fails(capsys, _train(cat, out), cat / "test" / "spot" / "000.png", "000_mask.png")
    assert not out.exists()


def test_missing_mask_at_evaluation(cat, run64, tmp_path, capsys):
    (cat / "ground_truth" / "hole" / "000_mask.png").unlink()
    _fails(capsys, ["evaluate", str(run64), "--data", str(cat), "--json", str(tmp_path / "r.json")],
           cat / "test" / "hole" / "000.png")
    assert not (tmp_path / "r.json").exists()


# --- 4. a mask whose size differs from its image -------------------------------------------------

def test_mask_size_mismatch(cat, run64, tmp_path, capsys):
    img = cat / "test" / "scratch" / "000.png"
    mask = cat / "ground_truth" / "scratch" / "000_mask.png"
    Image.open(mask).resize((48, 40), Image.NEAREST).save(mask)
    with pytest.raises(AdlibError, match="48x40"):
        load_mask(mask, img, 64)
    report = tmp_path / "r.json"
    line = _fails(capsys, ["evaluate", str(run64), "--data", str(cat), "--json", str(report)], mask, img)
    assert "48x40" in line and "64x64" in line
    assert not report.exists()


def test_evaluate_runs_on_good_data(run64, data, run_cache, tmp_path, capsys, monkeypatch):
    # the control for the two tests above: the same run on intact data evaluates fine
    monkeypatch.setenv("ADLIB_CACHE", str(run_cache))  # same files, same paths: reuse the val features
    report = tmp_path / "r.json"
    assert main(["evaluate", str(run64), "--data", str(data), "--json", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert rep["n_test"] == 5 and rep["n_anomalous"] == 3
    assert rep["methods"][0]["pixel_auroc"] is not None
    # a local score: calibrated now (statistics and threshold on the validation normals), decided with it
    assert main(["evaluate", str(run64), "--data", str(data), "--score", "local-top", "--json", str(report)]) == 0
    row = json.loads(report.read_text())["methods"][0]
    assert row["score"] == "local-top" and row["threshold"] == row["threshold"] and 0 <= row["image_auroc"] <= 1


def test_evaluate_a_non_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _fails(capsys, ["evaluate", str(tmp_path / "empty")], tmp_path / "empty" / "config.json")


# --- 5. a run directory that does not match --------------------------------------------------------

def test_existing_run_and_mismatched_resume(run64, data, capsys):
    files = {p: p.read_bytes() for p in run64.rglob("*") if p.is_file()}
    _fails(capsys, _train(data, run64), run64, "--resume")  # again, without --resume
    _fails(capsys, _train(data, run64, "--resume", "--standardize", "channel"), run64, "standardize", "channel")
    _fails(capsys, _train(data, run64, "--resume", "--image-size", "96"), run64, "--image-size")
    _fails(capsys, _train(data, run64, "--resume", "--backbone", "b4"), run64, "backbone")
    _fails(capsys, _train(data, run64, "--resume", "--model", "unet"), run64, "model")
    # everything else that decides the run's numbers is compared too (only --device may change; --iters decides
    # nothing for this closed-form run, which records iters 0)
    for option, value in [("--lr", "0.01"), ("--split-seed", "3"), ("--seed", "2"),
                          ("--warmup", "0.5"), ("--batch-size", "2"), ("--bit-depth", "12")]:
        _fails(capsys, _train(data, run64, "--resume", option, value), run64, option, value)
    _fails(capsys, ["train", "--data", str(data) + "/", "--out", str(run64), *TINY, "--resume"], run64, "--data")
    assert {p: p.read_bytes() for p in run64.rglob("*") if p.is_file()} == files  # the run is untouched


# --- 6. unknown SPEC -----------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["foo:bar", "elpv:nope", "mvtec:{tmp}/nowhere", "{tmp}/nowhere"])
def test_unknown_spec(spec, tmp_path, capsys):
    spec = spec.format(tmp=tmp_path)
    out = tmp_path / "run"
    line = _fails(capsys, ["train", "--data", spec, "--out", str(out), *TINY], spec)
    assert "elpv:mono" in line
    assert not out.exists()


def test_unknown_spec_subprocess(tmp_path):
    r = _subprocess(["--help"], tmp_path)
    assert r.returncode == 0 and "make-mini-mvtec" in r.stdout, r.stderr
    out = tmp_path / "run"
    r = _subprocess(["train", "--data", "foo:bar", "--out", str(out), *TINY], tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "foo:bar" in r.stderr
    assert r.stdout == ""
    assert not out.exists()


# --- 7. --device cuda without CUDA -----------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_cuda_without_cuda(cat, tmp_path, capsys):
    out = tmp_path / "run"
    _fails(capsys, _train(cat, out, "--device", "cuda"), "--device cuda", "cpu")
    assert not out.exists()


# --- 8. NaN/inf features -------------------------------------------------------------------------

@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_features(cat, tmp_path, capsys, monkeypatch, value):
    from adlib.features.backbone import FeatureExtractor

    def forward(self, images):
        return torch.full((len(images), self.channels, self.grid, self.grid), value)

    monkeypatch.setattr(FeatureExtractor, "forward", forward)
    out = tmp_path / "run"
    _fails(capsys, _train(cat, out), "NaN/inf", cat / "train" / "good")
    assert not out.exists()
    assert not list((tmp_path / "feature-cache").rglob("*.safetensors"))  # nothing cached either


# --- 9. --backbone b4 without its weight file ------------------------------------------------------

def test_b4_without_weights(cat, tmp_path, capsys, monkeypatch):
    from adlib.features.backbone import B4_FILE, B4_URL
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("ADLIB_WEIGHTS", str(weights))
    out = tmp_path / "run"
    _fails(capsys, _train(cat, out, "--backbone", "b4"), weights / B4_FILE, B4_URL, "ADLIB_WEIGHTS")
    assert not out.exists()


# --- other options checked before anything is written ---------------------------------------------

def test_bad_image_size(cat, tmp_path, capsys):
    out = tmp_path / "run"
    _fails(capsys, ["train", "--data", str(cat), "--out", str(out), "--image-size", "50", "--iters", "4"],
           "--image-size 50")
    assert not out.exists()


@pytest.mark.parametrize("option,value", [("--iters", "0"), ("--iters", "-3"), ("--batch-size", "0"),
                                          ("--lr", "-1"), ("--lr", "nan"), ("--image-size", "0")])
def test_non_positive_training_options(cat, tmp_path, capsys, option, value):
    # these used to train nothing, train on NaN losses, or fail with a traceback after writing the run
    out = tmp_path / "run"
    _fails(capsys, [*_train(cat, out), option, value], f"{option} {float(value) if option == '--lr' else value}",
           "positive")
    assert not out.exists()


@pytest.mark.parametrize("steps", ["0", "-1", "5000"])
def test_evaluate_bad_steps(run64, tmp_path, capsys, steps):
    _fails(capsys, ["evaluate", str(run64), "--steps", steps, "--json", str(tmp_path / "r.json")], f"--steps {steps}")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("steps", ["1,x", "1,0", ""])
def test_select_bad_steps(run64, capsys, steps):
    _fails(capsys, ["select", str(run64), "--steps", steps], "--steps")


@pytest.mark.parametrize("argv, needle", [(["--model", "nope"], "--model 'nope'"), (["--bit-depth", "7"], "--bit-depth 7")])
def test_bad_options_leave_no_run(cat, tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    _fails(capsys, [*_train(cat, out), *argv], needle)
    assert not out.exists()


@pytest.mark.parametrize("steps", ["1,x", "1,0", ""])
def test_compare_bad_steps(cat, tmp_path, capsys, steps):
    out = tmp_path / "run"
    _fails(capsys, ["compare", "--data", str(cat), "--out", str(out), *TINY, "--steps", steps], "--steps")
    assert not out.exists()


def test_cache_info_and_clear(data, tmp_path, capsys):
    assert main(_train(data, tmp_path / "run")) == 0
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "feature-cache" in out and " 0 entries" not in out and "ADLIB_CACHE_MAX_MB" in out
    assert main(["cache", "clear"]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["cache", "info"]) == 0 and " 0 entries" in capsys.readouterr().out

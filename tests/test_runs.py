"""Run folders that stay trustworthy: atomic files and folders, calibration that is saved and then used,
thresholds on the right scale, too few validation images refused, and the run's device used throughout."""
import json
import os

import pytest
import torch

from adlib.data import load_mvtec
from adlib.errors import AdlibError, AdlibWarning
from adlib.evaluation.evaluate import evaluate_run
import adlib.files as files
from adlib.method import calibration, scoring
from adlib.runs.config import RunConfig
from adlib.runs.run import Run, check_options


# --- atomic files and folders --------------------------------------------------------------------

def test_a_crash_between_the_folder_renames_loses_nothing(tmp_path, monkeypatch):
    target = tmp_path / "ema"
    target.mkdir()
    (target / "w.txt").write_text("old")
    real, calls = os.replace, []

    def dies_on_the_second_rename(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise OSError("power cut")
        real(a, b)
    monkeypatch.setattr(files.os, "replace", dies_on_the_second_rename)
    with pytest.raises(OSError):
        files.atomic_replace_dir(lambda d: (d / "w.txt").write_text("new"), target)
    monkeypatch.setattr(files.os, "replace", real)
    assert files.recover_dir(target).joinpath("w.txt").read_text() == "old"  # the old weights come back
    files.atomic_replace_dir(lambda d: (d / "w.txt").write_text("new"), target)
    assert (target / "w.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ema"]  # nothing left aside


def test_config_json_is_never_half_written(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    RunConfig(lr=1e-3).save(path)
    monkeypatch.setattr(files.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        RunConfig(lr=5e-4).save(path)
    assert RunConfig.load(path).lr == 1e-3  # the old file is intact, no temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


# --- options checked before the run folder exists ------------------------------------------------

def test_options_are_checked_before_any_file_is_written():
    check_options(RunConfig(batch_size=16), num_processes=4)
    with pytest.raises(AdlibError, match="--batch-size 16 .* multiple of 3"):
        check_options(RunConfig(batch_size=16), num_processes=3)
    with pytest.raises(AdlibError, match="--model 'nope'"):
        check_options(RunConfig(model="nope"))
    with pytest.raises(AdlibError, match="model settings"):
        check_options(RunConfig(model_kwargs=dict(widthh=3)))
    check_options(RunConfig(model="dit-paper", backbone="b4"))  # 1.2 B parameters, built on the meta device


def test_resume_compares_the_whole_configuration():
    saved = RunConfig(data="elpv:mono", iters=100)
    saved.check_resume(RunConfig(data="elpv:mono", iters=100, device="cpu"), "r")  # the device may change
    for change in [dict(data="elpv:poly"), dict(split_seed=1), dict(lr=3e-3), dict(iters=200),
                   dict(model_kwargs=dict(hidden=256)), dict(ema_decay=0.99), dict(t_focus=0.5)]:
        key = next(iter(change))
        with pytest.raises(AdlibError, match="--" + key.replace("_", "-")):
            saved.check_resume(RunConfig(**{"data": "elpv:mono", "iters": 100, **change}), "r")


def test_too_few_validation_images_are_refused_and_few_warned():
    with pytest.raises(AdlibError, match="at least 2"):
        calibration.check_validation_size(1, "--data x")
    with pytest.warns(AdlibWarning, match="only 5 normal validation images"):
        calibration.check_validation_size(5, "--data x")


def test_a_one_image_validation_split_makes_no_run(tmp_path, monkeypatch):
    from adlib import train_run
    from adlib.data import make_mini_mvtec
    monkeypatch.setenv("ADLIB_CACHE", str(tmp_path / "cache"))
    data = make_mini_mvtec(tmp_path / "cat", seed=1, size=64, n_train=12, n_test_good=1, n_test_per_defect=1)
    with pytest.raises(AdlibError, match="1 normal validation image"):
        train_run(RunConfig(data=str(data), image_size=64, iters=2, batch_size=2, calibration="split"), tmp_path / "run",
                  progress=False)  # a cross-fitted (closed-form) run would calibrate on all 12 normals instead
    assert not (tmp_path / "run").exists()


# --- calibration: saved, used, on the right scale -------------------------------------------------

def test_calibration_parts_are_disjoint_and_recorded(tiny_run):
    cal = json.loads((tiny_run.path / "calibration.json").read_text())
    assert cal["n_val"] == 2 and not cal["disjoint"]  # 2 images: both parts use both (in-sample, said so)
    norm, thr, disjoint = calibration.parts(40)
    assert disjoint and not set(norm) & set(thr) and len(norm) + len(thr) == 40
    assert 0 < cal["fpr_guaranteed"] and cal["threshold"] == max(cal["val_scores"])


def test_evaluate_decides_with_the_saved_calibration(tiny_run, mini, monkeypatch):
    saved = json.loads((tiny_run.path / "calibration.json").read_text())
    saved["threshold"] = 123.25  # a value no refit could produce: evaluate must read the file
    (tiny_run.path / "calibration.json").write_text(json.dumps(saved))
    try:
        monkeypatch.setattr(calibration, "fit", lambda *a, **k: pytest.fail("evaluate re-fitted the calibration"))
        row = evaluate_run(tiny_run, load_mvtec(mini), n_timing=4)["methods"][0]
        assert row["threshold"] == 123.25 and row["calibration"].endswith("calibration.json")
    finally:
        saved["threshold"] = max(saved["val_scores"])
        (tiny_run.path / "calibration.json").write_text(json.dumps(saved))


def test_transductive_threshold_lives_on_the_test_scale(tiny_run, mini):
    plain = evaluate_run(tiny_run, load_mvtec(mini), n_timing=4)["methods"][0]
    trans = evaluate_run(tiny_run, load_mvtec(mini), transductive=True, n_timing=4)["methods"][0]
    assert "transductive" in trans["calibration"]
    data = load_mvtec(mini)
    val, test = tiny_run.scores(tiny_run.features(data.val)[0]), tiny_run.scores(tiny_run.features(data.test)[0])
    on_test_scale = scoring.image_score(val, tiny_run.cfg.score, scoring.Normalizer.fit(test, tiny_run.cfg.map_pool))  # test scale
    # float32 scores of the same images in other batch shapes differ by ~1e-6 relative (CI: 1.7e-6, 2 threads)
    assert trans["threshold"] == pytest.approx(scoring.conformal_threshold(on_test_scale, 0.05)[0], rel=1e-5)
    assert trans["threshold"] != pytest.approx(plain["threshold"], rel=1e-5)


# --- the run's device, throughout ----------------------------------------------------------------

def test_training_extracts_features_on_the_training_device(mini, tmp_path, monkeypatch):
    from adlib import train_run
    import adlib.runs.run as run_mod
    seen, real = [], run_mod.extract

    def recording(*a, **k):
        seen.append(str(k.get("device")))
        return real(*a, **k)
    monkeypatch.setattr(run_mod, "extract", recording)
    run = train_run(RunConfig(data=str(mini), image_size=128, iters=2, batch_size=4, device="cpu", model="mlp",
                              model_kwargs=dict(hidden=16, depth=1)), tmp_path / "r", progress=False)
    assert seen and all(d == "cpu" for d in seen)  # not left to extract's default
    assert run.device == "cpu" and Run(run.path).device == "cpu"  # the run's device, not a hard-coded one


def test_a_cuda_run_opens_on_a_machine_without_cuda(tiny_run, monkeypatch, tmp_path):
    import shutil
    copy = shutil.copytree(tiny_run.path, tmp_path / "r")
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "device": "cuda"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Run(copy).device == "cpu"


def test_bit_depth_is_resolved_and_saved(tiny_run):
    assert tiny_run.cfg.bit_depth == 8 and tiny_run.bit_depth is None  # 8-bit PNGs: 1/255, the cache shared

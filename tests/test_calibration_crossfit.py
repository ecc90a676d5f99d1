"""Cross-fitted calibration (issue 20, "Twenty good images"): every normal image is scored by a model and a
normaliser fitted without its fold, the threshold rests on all n, the record says so, few images are warned
about with the rate that can be promised, and runs made before keep their split calibration."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from adlib.errors import AdlibError, AdlibWarning
from adlib.method import calibration, scoring
from adlib.runs import crossfit
from adlib.runs.config import RunConfig

FIXTURE = Path(__file__).parent / "fixtures" / "run-e48d345"


def features(n=12, c=6, grid=4, seed=0):
    return torch.randn(n, c, grid, grid, generator=torch.Generator().manual_seed(seed))


CFG = RunConfig(model="gaussian", standardize="channel", image_size=64, steps=3)


def test_scores_are_out_of_fold():
    """Image i's raw score comes from the model fitted without its fold: perturbing another image of the same fold
    leaves it unchanged, perturbing an image of another fold changes it (in-sample scoring would fail both)."""
    z, folds = features(), calibration.fold_ids(12, 4, seed=0)
    base = crossfit.out_of_fold(CFG, z, folds, 3, "paper")
    i = 0
    same = int(np.flatnonzero((folds == folds[i]) & (np.arange(12) != i))[0])
    other = int(np.flatnonzero(folds != folds[i])[0])
    for j, changes in ((same, False), (other, True)):
        z2 = z.clone()
        z2[j] += 5.0
        got = crossfit.out_of_fold(CFG, z2, folds, 3, "paper")
        assert (not np.isclose(got["nll"][i], base["nll"][i])) == changes, (j, changes)
    stats, model = crossfit.fit_normals(CFG, z[torch.as_tensor(np.flatnonzero(folds != folds[i]))])  # by hand
    from adlib.features.standardize import standardize
    from adlib.method.inversion import invert, make_grid
    direct = scoring.raw_scores(invert(model, standardize(z[i:i + 1], stats), make_grid(3, "paper")))
    np.testing.assert_allclose(direct["nll"][0], base["nll"][i], rtol=1e-9)
    stats_all, model_all = crossfit.fit_normals(CFG, z)
    inside = scoring.raw_scores(invert(model_all, standardize(z[i:i + 1], stats_all), make_grid(3, "paper")))
    assert not np.isclose(inside["nll"][0], base["nll"][i])  # the model of all n has seen image i


def test_threshold_uses_all_n_and_the_normaliser_excludes_the_fold():
    z = features(n=30)
    rec = crossfit.calibrate(CFG, z, 3, "paper", "local-top", fpr=0.1)
    assert rec["calibration"] == "cross-fit" and rec["disjoint"] and rec["n_threshold"] == rec["n_normals"] == 30
    assert rec["folds"] == 10 and len(rec["val_scores"]) == 30
    k = math.ceil(31 * 0.9)
    assert rec["threshold"] == sorted(rec["val_scores"])[k - 1] and rec["fpr_guaranteed"] == pytest.approx((31 - k) / 31)
    folds = calibration.fold_ids(30, 0, CFG.split_seed)
    raw = crossfit.out_of_fold(CFG, z, folds, 3, "paper")
    i = 7
    rest = np.flatnonzero(folds != folds[i])
    norm = scoring.Normalizer.fit({"nll": raw["nll"][rest], "diff": raw["diff"][rest], "map": raw["map"][rest]})
    one = {"nll": raw["nll"][i:i + 1], "diff": raw["diff"][i:i + 1], "map": raw["map"][i:i + 1]}
    assert scoring.image_score(one, "local-top", norm)[0] == pytest.approx(rec["val_scores"][i])
    everyone = scoring.Normalizer.fit(raw).to_dict()  # the deployed normaliser: all n out-of-fold scores
    assert rec["normalizer"]["map_mean"] == pytest.approx(everyone["map_mean"])


def test_folds_are_checked_and_leave_one_out_when_few():
    assert calibration.auto_folds(8) == 8 and calibration.auto_folds(200) == 10
    ids = calibration.fold_ids(23, 5, seed=1)
    assert sorted(np.bincount(ids)) == [4, 4, 5, 5, 5]
    for n, k in ((2, 0), (10, 1), (10, 11), (3, 2)):  # (3, 2): a fold of 2 leaves 1 for its normaliser
        with pytest.raises(AdlibError, match="--folds"):
            calibration.fold_ids(n, k)


def test_few_images_warning_names_the_promise():
    note = calibration.few_images_note(10, 0.05, "normal images", calibration.FEW_NORMALS, promised=1 / 11)
    assert "9.1%" in note and "5.0% asked" in note and "19 images" in note and "more good images" in note
    assert calibration.few_images_note(400, 0.05, "normal images", calibration.FEW_NORMALS) is None
    assert "only 30 normal images" in calibration.few_images_note(30, 0.05, "normal images", calibration.FEW_NORMALS)


def test_measured_cost_is_read_from_the_benchmark_file(tmp_path, monkeypatch):
    path = tmp_path / "few_shot.json"
    path.write_text(json.dumps({"data": "D", "model": "M", "doc": "docs/x.md", "auroc_loss": {"10": 0.2, "50": 0.01}}))
    monkeypatch.setattr(calibration, "MEASURED", path)
    assert "10 good images lost 0.200" in calibration.few_images_note(12, 0.05, "normal images", 50)
    assert "50 good images lost 0.010" in calibration.measured_cost(70)
    monkeypatch.setattr(calibration, "MEASURED", tmp_path / "absent.json")
    assert calibration.measured_cost(12) is None


def test_calibration_choice_and_val_share_are_checked():
    assert crossfit.resolve(RunConfig(model="gaussian")) == "cross-fit"
    assert crossfit.resolve(RunConfig(model="mlp")) == "split"
    with pytest.raises(AdlibError, match="--calibration cross-fit"):
        crossfit.resolve(RunConfig(model="gaussian+conv", calibration="cross-fit"))
    from adlib.data.datasets import Dataset, Sample, with_val_share
    data = Dataset("x", [Sample(f"{i}.png", 0) for i in range(27)], [Sample(f"v{i}.png", 0) for i in range(3)], [], False)
    split = with_val_share(data, 0.3, seed=0)
    assert len(split.val) == 9 and len(split.train) == 21 and with_val_share(data, -1) is data
    with pytest.raises(AdlibError, match="--val-share"):
        with_val_share(data, 1.5)
    with pytest.raises(AdlibError, match="val/good"):
        with_val_share(Dataset("x", data.train, data.val, [], False, {"val": "val/good"}), 0.2)


def test_a_run_calibrates_on_every_normal_and_warns_when_few(tmp_path, monkeypatch):
    from adlib import train_run
    from adlib.data import make_mini_mvtec
    monkeypatch.setenv("ADLIB_CACHE", str(tmp_path / "cache"))
    data = make_mini_mvtec(tmp_path / "cat", seed=1, size=64, n_train=12, n_test_good=1, n_test_per_defect=1)
    with pytest.warns(AdlibWarning, match="only 12 normal images: the false-positive rate that can be promised is 7.7%"):
        run = train_run(RunConfig(data=str(data), image_size=64), tmp_path / "run", progress=False)
    cal = json.loads((run.path / "calibration.json").read_text())
    assert cal["calibration"] == "cross-fit" and cal["n_threshold"] == 12 and cal["fpr_guaranteed"] == pytest.approx(1 / 13)
    assert json.loads((run.path / "split.json").read_text())["fitted_on"] == "train+val"
    assert RunConfig.load(run.path / "config.json").calibration == "cross-fit"
    assert run.calibration(fpr=0.2)["calibration"] == "cross-fit"  # another rate: cross-fitted again, not split


def test_a_run_made_before_cross_fitting_keeps_its_split_calibration():
    cfg = RunConfig.load(FIXTURE / "config.json")
    assert "calibration" not in json.loads((FIXTURE / "config.json").read_text()) and cfg.calibration == "split"
    record = json.loads((FIXTURE / "calibration.json").read_text())
    raw = {"nll": np.array([1.6e5]), "diff": np.array([30.0]), "map": torch.full((1, 2, 2), 280.0)}
    values, flags = calibration.decide(record, raw)
    assert values.shape == (1,) and flags.dtype == bool

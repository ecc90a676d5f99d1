"""A run folder written by an earlier version (commit e48d345, before the package was re-laid into floors)
still opens and scores identically: the fixture holds that run and the scores it gave then."""
import json
import shutil
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).parent / "fixtures" / "run-e48d345"


def test_a_run_written_at_e48d345_loads_and_scores_identically(tmp_path, monkeypatch):
    """Scored through the torch backbone it was written with: onnxruntime's features (the CPU default since
    adlib/features/engine.py) differ in float32 rounding, ~1e-5 relative in the NLL, which is not what this checks."""
    monkeypatch.setenv("ADLIB_FEATURE_ENGINE", "torch")
    from adlib import Run
    from adlib.data import load_spec, make_mini_mvtec
    mini = make_mini_mvtec(tmp_path / "mini", seed=0, size=48, n_train=16, n_test_good=4, n_test_per_defect=2)
    run_dir = shutil.copytree(FIXTURE, tmp_path / "run")
    run = Run(run_dir)
    z, kept = run.features(load_spec(str(mini)).test)
    got = run.scores(z)
    expected = json.loads((FIXTURE / "expected-scores.json").read_text())
    assert len(kept) == len(expected["nll"]) == 10
    for key in ("nll", "map"):
        np.testing.assert_allclose(np.asarray(got[key], dtype=np.float64), np.asarray(expected[key]), rtol=1e-5,
                                   atol=1e-5, err_msg=key)
    # diff = max A - min A: a difference of two map values, so its error is up to twice the map's absolute error
    # (float32 rounding of the DDIM step, written since as one multiply-add: adlib/method/inversion.py ddim_step)
    map_atol = 1e-5 * (1 + np.abs(np.asarray(expected["map"])).max())
    np.testing.assert_allclose(np.asarray(got["diff"], dtype=np.float64), np.asarray(expected["diff"]), rtol=0,
                               atol=2 * map_atol, err_msg="diff")
    assert run.calibration()["threshold"] == json.loads((FIXTURE / "calibration.json").read_text())["threshold"]

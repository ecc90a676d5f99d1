"""Issue 20: a closed-form run of few images keeps its normal features, not its P x C x C fit, and scores the same.

adlib/runs/refit.py: the run stores RUN/normals.safetensors and refits whitening and Gaussian when loaded."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def runs(mini, tmp_path_factory):
    """The same `--model gaussian` run stored compact (the default with few images) and stored in full."""
    from adlib import RunConfig, train_run
    from adlib.runs import refit
    cfg = RunConfig(data=str(mini), image_size=64, model="gaussian", device="cpu")
    compact = train_run(cfg, tmp_path_factory.mktemp("compact") / "run", progress=False)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(refit, "worth_it", lambda *a: False)
        full = train_run(cfg, tmp_path_factory.mktemp("full") / "run", progress=False)
    return compact, full


def _size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_a_few_image_closed_form_run_keeps_its_features_not_its_fit(runs):
    compact, full = runs
    assert (compact.path / "normals.safetensors").is_file() and not (full.path / "normals.safetensors").exists()
    assert "chol" not in load_file(compact.path / "stats.safetensors")
    weights = load_file(next((compact.path / "model").glob("*.safetensors")))
    assert "eigvec" not in weights and "eigval" in weights
    assert _size(compact.path) < _size(full.path) / 2
    assert json.loads((compact.path / "config.json").read_text())["iters"] == 0  # nothing trained, no iterations


def test_the_compact_run_refits_the_same_model_and_scores_the_same(runs, mini):
    from adlib.data import load_spec
    compact, full = runs
    from adlib.features.standardize import choice_record
    for k in ("mean", "chol"):  # the standardisation itself, bit for bit; the choice as recorded
        assert torch.equal(compact.stats[k], full.stats[k]), k
    assert choice_record(compact.stats) == choice_record(full.stats)
    for k, v in full.model.state_dict().items():
        assert torch.allclose(compact.model.state_dict()[k], v, rtol=0, atol=1e-6), k
    samples = load_spec(str(mini)).test[:6]
    a, b = compact.scores(compact.features(samples)[0]), full.scores(full.features(samples)[0])
    for key in ("nll", "diff", "map"):
        np.testing.assert_allclose(np.asarray(a[key], dtype=np.float64), np.asarray(b[key], dtype=np.float64),
                                   rtol=1e-6, atol=1e-6, err_msg=key)
    assert compact.calibration()["threshold"] == pytest.approx(full.calibration()["threshold"], abs=1e-6)


def test_a_changed_feature_file_changes_the_fingerprint(runs, tmp_path):
    import shutil
    from adlib import Run
    from adlib.runs.run import fingerprint
    copy = shutil.copytree(runs[0].path, tmp_path / "run")
    before = fingerprint(Run(copy), "ema")
    data = bytearray((copy / "normals.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "normals.safetensors").write_bytes(bytes(data))
    assert fingerprint(Run(copy), "ema") != before


def test_a_compact_run_reopens_without_the_refit_warning(runs):
    """Refitting the run's own features reproduces the fit (the choice's rounded record is not compared)."""
    import warnings
    from adlib import Run
    from adlib.errors import AdlibWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error", AdlibWarning)
        Run(runs[0].path)

"""`--score auto` (issue 19): the image score of a closed-form run chosen during cross-fitted calibration, from
synthetic anomalies of out-of-fold normals (adlib/runs/crossfit.py `choose_score`), recorded in the calibration
and in config.json (`score_choice`); and `max`, the plain maximum of the norm map. Tiny synthetic features."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from adlib.errors import AdlibError
from adlib.method import SCORES, calibration, scoring
from adlib.runs import crossfit
from adlib.runs.config import RunConfig

CFG = RunConfig(model="standard", standardize="auto", score="auto", image_size=64, steps=3)


def features(n=12, c=6, grid=4, seed=0):
    return torch.randn(n, c, grid, grid, generator=torch.Generator().manual_seed(seed))


def test_max_is_the_plain_maximum_of_the_map():
    maps = torch.rand(5, 4, 4, generator=torch.Generator().manual_seed(1))
    raw = {"nll": np.zeros(5), "diff": np.zeros(5), "map": maps}
    assert "max" in SCORES and "max" in scoring.UNNORMALISED
    np.testing.assert_allclose(scoring.image_score(raw, "max"), maps.flatten(1).max(1).values.double().numpy())


def test_synthetic_anomalies_are_seeded_local_and_leave_the_input():
    z = features()
    before = z.clone()
    fake = scoring.synthetic_anomalies(z, seed=3)
    assert torch.equal(z, before) and torch.equal(fake, scoring.synthetic_anomalies(z, seed=3))
    changed = (fake != z).any(1).flatten(1).sum(1)
    assert (changed <= 16).all() and (changed > 0).sum() >= len(z) - 2  # a swap may land on itself, rarely


def maps_raw(maps):
    return {"nll": maps.flatten(1).pow(2).sum(1).double().numpy(), "diff": np.zeros(len(maps)), "map": maps}


def test_choice_follows_the_synthetic_auroc():
    """Normal maps ~1 everywhere except a loud, variable position 0 (an edge that is always there); the fakes
    lift a quiet position a little. The maximum sees only position 0 (chance), local-top standardises it away."""
    g = torch.Generator().manual_seed(0)
    n = 20
    normal = 1 + 0.01 * torch.randn(n, 4, 4, generator=g)
    normal[:, 0, 0] = 10 + torch.randn(n, generator=g)
    fake = normal.clone()
    fake[:, 1, 1] += 1.0
    raw = {**maps_raw(normal), "synthetic": maps_raw(fake)}
    folds = calibration.fold_ids(n, 5, seed=0)
    choice = crossfit.choose_score(raw, folds)
    assert choice["chosen"] == "local-top" and choice["synthetic_auroc"]["local-top"] > 0.95
    assert choice["synthetic_auroc"]["max"] < 0.7 and choice["n_normals"] == n
    # the other way round: with `nll` against `max` on fakes that only raise the loud position
    fake2 = normal.clone()
    fake2[:, 0, 0] += 5
    raw2 = {**maps_raw(normal), "synthetic": maps_raw(fake2)}
    got = crossfit.choose_score(raw2, folds, candidates=("diff", "max"))
    assert got["chosen"] == "max" and got["synthetic_auroc"]["diff"] == 0.5  # diff is all 0: a tie, chance
    tie = crossfit.choose_score({**maps_raw(normal), "synthetic": maps_raw(normal + 100)}, folds)
    assert tie["chosen"] == crossfit.SCORE_CANDIDATES[0]  # ties go to the first candidate


def test_fold_normaliser_never_sees_the_fold():
    """Changing fold f's normal maps cannot change the criterion's normaliser for fold f: the synthetic scores of
    fold f's fakes under local-top depend only on the other folds' normals (and the fakes themselves)."""
    g = torch.Generator().manual_seed(2)
    normal = 1 + 0.1 * torch.randn(15, 4, 4, generator=g)
    fake = normal + 0.3
    folds = calibration.fold_ids(15, 3, seed=0)
    base = crossfit.choose_score({**maps_raw(normal), "synthetic": maps_raw(fake)}, folds)
    moved = normal.clone()
    moved[folds == 0] -= 0.3  # now fold 0's normals equal... its fakes minus 0.6: easier, and only its own images
    again = crossfit.choose_score({**maps_raw(moved), "synthetic": maps_raw(fake)}, folds)
    assert again["synthetic_auroc"]["local-top"] >= base["synthetic_auroc"]["local-top"]


def test_calibrate_with_auto_records_the_choice():
    z = features(n=14, c=8)
    rec = crossfit.calibrate(CFG, z, 3, "paper", "auto", fpr=0.1)
    ch = rec["score_choice"]
    assert rec["score"] == ch["chosen"] in crossfit.SCORE_CANDIDATES
    assert set(ch["synthetic_auroc"]) == set(crossfit.SCORE_CANDIDATES) and ch["n_normals"] == 14
    assert all(0 <= v <= 1 for v in ch["synthetic_auroc"].values())
    fixed = crossfit.calibrate(CFG, z, 3, "paper", ch["chosen"], fpr=0.1)  # the same numbers as asking it directly
    assert "score_choice" not in fixed and fixed["threshold"] == rec["threshold"]
    assert fixed["val_scores"] == rec["val_scores"]


def test_auto_needs_cross_fitting():
    assert crossfit.resolve(CFG) == "cross-fit"
    with pytest.raises(AdlibError, match="--score auto"):
        crossfit.resolve(replace(CFG, calibration="split"))
    with pytest.raises(AdlibError, match="--score auto"):
        crossfit.resolve(replace(CFG, model="mlp", model_kwargs={"hidden": 8, "depth": 1}))


def test_config_keeps_the_choice_and_resumes_from_auto(tmp_path):
    saved = replace(CFG, score="max", score_choice={"chosen": "max", "synthetic_auroc": {"local-top": 0.9, "max": 0.95}})
    saved.save(tmp_path / "config.json")
    back = RunConfig.load(tmp_path / "config.json")
    assert back.score == "max" and back.score_choice["chosen"] == "max"
    back.check_resume(CFG, tmp_path)  # asked auto: compared by what it resolved to
    with pytest.raises(AdlibError, match="--score"):
        back.check_resume(replace(CFG, score="local-top"), tmp_path)


def test_train_cli_accepts_score_auto():
    from adlib.cli.main import parser
    a = parser().parse_args(["train", "--out", "x", "--score", "auto", "--model", "standard"])
    assert a.score == "auto"

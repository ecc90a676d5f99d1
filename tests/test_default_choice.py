"""The label-free choice of the Gaussian (`--standardize auto`, adlib/features/covariance.py) and its eps.

Stationary fields must pick pooling, aligned fields with many images the per-position Gaussian, and N < C
must never give a rank-deficient covariance (the failure of per-position whitening on few images).
"""
import math

import numpy as np
import torch

from adlib.features.covariance import choose_gaussian
from adlib.features.standardize import choice_record, fit_stats, standardize
from adlib.method import scoring
from adlib.method.inversion import invert, make_grid
from adlib.models import EpsStandard, build_model


def _stationary(n, c=8, grid=6, seed=0):
    """Every position drawn from one Gaussian (a texture): same mean, same correlated covariance."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(c, c, generator=g) / c ** 0.5
    mu = torch.randn(c, generator=g)
    x = torch.randn(n, grid * grid, c, generator=g) @ a.T + mu
    return x.permute(0, 2, 1).reshape(n, c, grid, grid)


def _aligned(n, c=4, grid=4, seed=0):
    """Each position its own mean and strongly different covariance (aligned parts)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(grid * grid, c, c, generator=g) * 2
    mu = torch.randn(grid * grid, c, generator=g) * 3
    x = torch.einsum("pcd,npd->npc", a, torch.randn(n, grid * grid, c, generator=g)) + mu
    return x.permute(0, 2, 1).reshape(n, c, grid, grid)


def test_stationary_field_picks_pooling():
    choice = choose_gaussian(_stationary(30))
    assert choice["shared"] or choice["rho"] >= 0.5, choice["held_out_nll"]


def test_aligned_field_with_many_images_picks_per_position():
    choice = choose_gaussian(_aligned(400))
    assert not choice["shared"] and choice["rho"] <= 0.2, choice["held_out_nll"]


def test_fewer_images_than_channels_is_never_rank_deficient():
    c, n = 24, 10
    z = _stationary(n, c=c, grid=4, seed=1) + 0.3 * _aligned(n, c=c, grid=4, seed=2)
    stats = fit_stats(z, "auto")
    sigma = stats["chol"].double() @ stats["chol"].double().transpose(1, 2)
    lam = torch.linalg.eigvalsh(sigma)
    assert (lam > 0).all() and lam.min() > 0.01 * 0.99            # at least the ridge in every direction
    # rank deficiency makes every training image equally far (leverage (N-1)/N): here they differ
    d2 = standardize(z, stats).pow(2).flatten(1).sum(1)
    assert d2.std() / d2.mean() > 0.02
    record = choice_record(stats)
    assert record["chosen"] in record["held_out_nll"] and record["n_fit"] + record["n_held_out"] == n
    assert record["held_out_nll"][record["chosen"]] == min(record["held_out_nll"].values())
    assert record["chosen"] != "rho=0"                               # the per-position fit is the worst held out


def test_other_modes_record_no_choice():
    assert choice_record(fit_stats(_stationary(6), "whiten")) == {}


def test_standard_eps_scales_whitened_features_globally():
    """After the chosen whitening eps is N(0, I)'s: S steps multiply x by one number, so maps keep their ranking."""
    z = torch.randn(3, 8, 6, 6)
    model = build_model("standard", 8, 6)
    assert isinstance(model, EpsStandard) and model.fit_base(z) is model
    out = invert(model, z, make_grid(3, "paper"))
    ratio = out / z
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4)


def test_raw_baselines_undo_the_standardisation():
    """`padim (raw)` scores standardised features exactly as PaDiM on the raw ones; and it differs from `padim`."""
    from adlib.evaluation.baselines import PaDiM
    from adlib.evaluation.bench import baseline_methods
    from adlib.features.standardize import unstandardize
    z = _stationary(12, c=6, grid=4) * 3 + 1
    for mode in ("channel", "whiten", "auto"):
        stats = fit_stats(z, mode)
        assert torch.allclose(unstandardize(standardize(z, stats), stats), z, atol=1e-4)
    stats = fit_stats(z, "whiten")
    w = standardize(z, stats)
    rows = {name: f for name, f, _ in baseline_methods(None, w, recon=(), stats=stats)}
    assert {"padim", "knn", "padim (raw)", "knn (raw)"} <= set(rows)
    raw = PaDiM().fit(z).map(z[:3])
    assert torch.allclose(rows["padim (raw)"](w[:3])["map"], raw, rtol=1e-3, atol=1e-3)
    assert not torch.allclose(rows["padim"](w[:3])["map"], raw, rtol=1e-2)


def test_whitening_matches_the_triangular_solve_and_frees_its_inverse():
    """standardize multiplies by a cached L^-1: equal to solving L y = z - mu, and gone once the stats are."""
    import gc

    from adlib.features import standardize as module
    z = _stationary(12, c=6, grid=4) * 3 + 1
    stats = fit_stats(z, "whiten")
    x = (z.flatten(2).permute(2, 1, 0) - stats["mean"].transpose(1, 2))
    solved = torch.linalg.solve_triangular(stats["chol"], x, upper=False).permute(2, 1, 0).reshape(z.shape)
    assert torch.allclose(standardize(z, stats), solved, atol=1e-4)
    assert stats["chol"] in module._WHITENERS
    before = len(module._WHITENERS)
    del stats
    gc.collect()
    assert len(module._WHITENERS) == before - 1  # the cross-fitting folds' many fits leave nothing behind


# --- the score pooled by the same rho, and the choice made once -----------------------------------

def test_map_statistics_pooled_by_pool():
    """pool 0: each position its own mean/std (variance shrunk by the prior only); pool 1: one mean and one std."""
    from adlib.method.scoring import position_stats
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(30, 4, 4, generator=g) * torch.linspace(1, 5, 16).reshape(4, 4)
    m0, s0 = position_stats(maps, pool=0.0)
    m1, s1 = position_stats(maps, pool=1.0)
    assert torch.allclose(torch.tensor(m0, dtype=torch.float64), maps.double().flatten(1).mean(0))
    assert len(set(round(v, 12) for v in m1)) == 1 and len(set(round(v, 12) for v in s1)) == 1
    assert abs(m1[0] - sum(m0) / 16) < 1e-12
    half = torch.tensor(position_stats(maps, pool=0.5)[0])
    assert torch.allclose(half, (torch.tensor(m0) + torch.tensor(m1)) / 2)


def _aligned_maps(n, seed=0):
    """Norm maps of aligned content: a fixed pattern of means, the same noise (0.1) at every position."""
    g = torch.Generator().manual_seed(seed)
    return torch.linspace(1, 3, 256).reshape(16, 16) + 0.1 * torch.randn(n, 16, 16, generator=g)


def _moving_maps(n, seed=0):
    """Norm maps of a part at a random shift: a 6 x 6 block (3) on a background (1), moved by up to 3 positions."""
    g = torch.Generator().manual_seed(seed)
    maps = 1 + 0.1 * torch.randn(n, 16, 16, generator=g)
    for m, (dy, dx) in zip(maps, torch.randint(-3, 4, (n, 2), generator=g).tolist()):
        m[5 + dy:11 + dy, 5 + dx:11 + dx] += 2
    return maps


def test_moving_content_tells_a_moving_part_from_aligned_content_and_from_noise():
    """The positions' spread differs where a part comes and goes; sampling noise alone (20 maps: a per-position std
    scatters by ~16 %) is taken out by the split halves."""
    from adlib.method.scoring import MOVING, moving_content
    assert moving_content(_moving_maps(20)) > 2 * MOVING
    assert moving_content(_aligned_maps(20)) < MOVING / 2
    noise = torch.randn(20, 16, 16, generator=torch.Generator().manual_seed(3))
    raw_scatter = float(noise.std(0).log().std())
    assert raw_scatter > 0.1 and moving_content(noise) < raw_scatter / 2
    assert math.isnan(moving_content(_moving_maps(7)))  # too few maps to say
    assert moving_content(_moving_maps(20)) == moving_content(_moving_maps(20))  # seeded


def test_the_maps_mean_is_pooled_only_where_the_content_moves():
    """Aligned: each position keeps its own mean (what is usual there), the spread pooled by `pool`; moving: both
    pooled; too few maps to measure: both pooled (as before the rule); pool 0: nothing pooled."""
    from adlib.method.scoring import Normalizer, position_stats
    raw = lambda maps: {"nll": np.zeros(len(maps)), "diff": np.arange(len(maps), dtype=float), "map": maps}  # noqa: E731
    aligned = Normalizer.fit(raw(_aligned_maps(20)), pool=0.9)
    assert aligned.map_mean_pool == 0.0 and aligned.map_pool == 0.9 and aligned.map_moving < 0.15
    mean, std = position_stats(_aligned_maps(20), pool=0.9, pool_mean=0.0)
    assert aligned.map_mean == mean and aligned.map_std == std
    assert np.allclose(aligned.map_mean, _aligned_maps(20).mean(0).flatten())
    moving = Normalizer.fit(raw(_moving_maps(20)), pool=0.9)
    assert moving.map_mean_pool == 0.9 and moving.map_moving > 0.6
    assert moving.map_mean == position_stats(_moving_maps(20), pool=0.9)[0]
    few = Normalizer.fit(raw(_moving_maps(5)), pool=0.9)
    assert few.map_mean_pool == 0.9 and few.map_moving is None
    assert Normalizer.fit(raw(_moving_maps(20)), pool=0.0).map_mean_pool == 0.0


def test_a_record_made_before_the_mean_had_its_own_pool_still_loads():
    from adlib.method.scoring import Normalizer
    old = {"nll_min": 0.0, "nll_max": 1.0, "diff_min": 0.0, "diff_max": 1.0, "map_mean": [1.0] * 4,
           "map_std": [0.5] * 4, "map_pool": 0.8}
    norm = Normalizer(**old)
    assert norm.map_mean_pool is None and np.allclose(norm.local(torch.full((1, 2, 2), 2.0), "local-top"), 2.0)


def test_fully_pooled_local_top_ranks_like_the_top_of_the_map():
    """With one mean and std for the map (pool 1, content that moves), local-top is a monotone function of the mean
    of its 4 largest values."""
    from adlib.method.scoring import TOP_K, Normalizer
    g = torch.Generator().manual_seed(1)
    normal, test = _moving_maps(20), torch.rand(15, 16, 16, generator=g) * 2
    norm = Normalizer.fit({"nll": torch.zeros(20).numpy(), "diff": torch.arange(20.).numpy(), "map": normal}, pool=1.0)
    top = test.flatten(1).topk(TOP_K, dim=1).values.mean(1)
    assert (torch.as_tensor(norm.local(test, "local-top")).argsort() == top.argsort()).all()
    assert norm.map_pool == 1.0 and norm.map_mean_pool == 1.0


def test_map_pool_is_the_chosen_rho_and_zero_otherwise():
    from adlib import RunConfig
    assert RunConfig().map_pool == 0.0  # nothing chosen yet
    assert RunConfig(standardize_choice={"rho": 0.7, "shared": False}).map_pool == 0.7
    assert RunConfig(standardize="whiten", standardize_choice={"rho": 0.7}).map_pool == 0.0


def test_folds_refit_the_runs_choice_instead_of_choosing_again(monkeypatch):
    """crossfit.fit_normals with a recorded choice fits that Gaussian (no second choice of 12 candidates)."""
    import adlib.features.covariance as cov
    from adlib import RunConfig
    from adlib.runs import crossfit
    z = _stationary(40)
    cfg, stats = crossfit.with_choice(RunConfig(model="standard"), z)
    assert cfg.standardize_choice["chosen"] == choice_record(stats)["chosen"]
    monkeypatch.setattr(cov, "choose_gaussian", lambda *a, **k: (_ for _ in ()).throw(AssertionError("chose again")))
    again, _ = crossfit.fit_normals(cfg, z)
    assert torch.equal(again["chol"], stats["chol"]) and torch.equal(again["mean"], stats["mean"])
    assert choice_record(again) == cfg.standardize_choice
    given, _ = crossfit.fit_normals(cfg, z, stats)  # with_choice's stats are used as they are, not refitted
    assert given is stats


def test_a_default_run_pools_its_score_by_the_rho_it_chose(mini, tmp_path):
    """train -> config.json's choice -> calibration.json's normaliser pooled by that rho (no second path to 0)."""
    import json
    from adlib import RunConfig, train_run
    run = train_run(RunConfig(data=str(mini), image_size=128), tmp_path / "run", progress=False)
    rho = json.loads((run.path / "config.json").read_text())["standardize_choice"]["rho"]
    cal = json.loads((run.path / "calibration.json").read_text())
    assert cal["calibration"] == "cross-fit" and cal["normalizer"]["map_pool"] == rho == run.cfg.map_pool
    moving = cal["normalizer"]["map_moving"]  # the mean pooled by rho only where the content moves
    assert cal["normalizer"]["map_mean_pool"] == (rho if moving is None or moving >= scoring.MOVING else 0.0)
    assert run.calibration()["normalizer"]["map_pool"] == rho  # reopened: the saved record
    from adlib.runs.choice import describe  # train's summary line and the report say it
    assert describe(run.cfg, cal["normalizer"]).startswith(f"standardize auto chose {run.cfg.standardize_choice['chosen']}")


def test_the_choice_is_told_with_its_reason():
    from adlib import RunConfig
    from adlib.runs.choice import describe
    cfg = RunConfig(standardize_choice={"chosen": "rho=0.9", "rho": 0.9, "held_out_nll": {"rho=0.9": 1.0, "rho=0": 2.0},
                                        "n_held_out": 4, "n_fit": 16})
    norm = {"map_mean": [0.0], "map_pool": 0.9, "map_mean_pool": 0.0, "map_moving": 0.12}
    assert "its mean kept per position (the content stays in place: moving-content 0.12 < 0.3)" in describe(cfg, norm)
    moving = describe(cfg, {**norm, "map_mean_pool": 0.9, "map_moving": 0.5})
    assert "pooled by 0.9, its mean pooled by the same amount (the content moves between images" in moving
    assert "too few normal maps" in describe(cfg, {**norm, "map_mean_pool": 0.9, "map_moving": None})
    assert describe(cfg, {"map_pool": 0.9}).endswith("held out)")  # a record from before: the Gaussian alone
    assert describe(RunConfig(standardize="whiten")) == ""

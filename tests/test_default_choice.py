"""The label-free choice of the Gaussian (`--standardize auto`, adlib/features/covariance.py) and its eps.

Stationary fields must pick pooling, aligned fields with many images the per-position Gaussian, and N < C
must never give a rank-deficient covariance (the failure of per-position whitening on few images).
"""
import torch

from adlib.features.covariance import choose_gaussian
from adlib.features.standardize import choice_record, fit_stats, standardize
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

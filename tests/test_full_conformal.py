"""Full conformal decisions (adlib/runs/full_conformal.py): the Woodbury fast path equals the refit, and the rate it
flags normals at is the rank rule's 1 / (n + 1)."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from adlib import RunConfig
from adlib.runs import crossfit, full_conformal


def _normals(n: int, seed: int = 0) -> torch.Tensor:
    """n feature maps (6 channels, 4 x 4) with a per-position mean and correlated channels."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(6, 6, generator=g) / 2 + torch.eye(6)
    base = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    return base + torch.einsum("cd,ndhw->nchw", mix, torch.randn(n, 6, 4, 4, generator=torch.Generator().manual_seed(seed + 1)))


@pytest.mark.parametrize("choice", [{"rho": 0.9, "shared": False}, {"rho": 0.0, "shared": False},
                                    {"rho": 1.0, "shared": False}, {"rho": 1.0, "shared": True}])
def test_the_closed_form_maps_equal_the_refitted_models(choice):
    z = _normals(13)
    cfg, _ = crossfit.with_choice(RunConfig(model="standard"), z[:12])
    cfg = replace(cfg, standardize_choice={**cfg.standardize_choice, **choice})
    assert full_conformal.has_fast_path(cfg)
    fast, slow = full_conformal.in_sample_maps(cfg, z), full_conformal.refit_maps(cfg, z)
    assert fast.shape == slow.shape == (13, 4, 4)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)


def test_models_without_a_closed_form_refit_the_long_way(monkeypatch):
    z = _normals(11)
    cfg, _ = crossfit.with_choice(RunConfig(model="gaussian", standardize="whiten"), z[:10])
    assert not full_conformal.has_fast_path(cfg)
    monkeypatch.setattr(full_conformal, "in_sample_maps", lambda *a: (_ for _ in ()).throw(AssertionError("fast path")))
    assert len(full_conformal.in_sample_scores(cfg, z[:10], z[10])) == 11


def test_an_outlier_gets_the_smallest_p_and_a_normal_a_larger_one():
    z = _normals(21)
    cfg, _ = crossfit.with_choice(RunConfig(model="standard"), z[:20])
    odd = z[20].clone()
    odd[:, 1, 1] += 40.0  # one position far off: a local defect
    assert full_conformal.p_value(cfg, z[:20], odd) == pytest.approx(1 / 21)
    assert full_conformal.p_value(cfg, z[:20], z[20]) > 1 / 21


def test_normals_exchangeable_with_the_n_are_flagged_at_the_rank_rules_rate():
    """Over fresh draws of n = 9 normals and one more normal u, P(p(u) <= 0.1) = 1 / (n + 1) = 0.1 exactly; 300 seeded
    trials (standard error 0.017) land within 0.05 of it, where the cross-fitted threshold only bounds it."""
    flagged = []
    for t in range(300):
        z = _normals(10, seed=10 * t)
        cfg, _ = crossfit.with_choice(RunConfig(model="standard"), z[:9])
        flagged.append(full_conformal.p_value(cfg, z[:9], z[9]) <= 0.1)
    assert abs(np.mean(flagged) - 0.1) < 0.05

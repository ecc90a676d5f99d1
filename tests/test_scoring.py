"""Scores on inverted latents: NLL, norm map, Diff, normalisation, thresholds."""
import numpy as np
import torch

from adlib import scoring


def test_nll_is_the_gaussian_negative_log_density():
    x = torch.randn(5, 6, 4, 4)
    ref = -torch.distributions.Normal(0.0, 1.0).log_prob(x.double()).flatten(1).sum(1)
    assert torch.allclose(scoring.nll(x), ref)


def test_norm_map_diff_and_pixel_map():
    x = torch.zeros(2, 3, 4, 4)
    x[0, :, 1, 2] = torch.tensor([3.0, 4.0, 0.0])
    a = scoring.norm_map(x)
    assert a.shape == (2, 4, 4) and a[0, 1, 2] == 5.0 and a[1].abs().sum() == 0
    assert scoring.diff(a).tolist() == [5.0, 0.0]
    p = scoring.pixel_map(a, 32)
    assert p.shape == (2, 32, 32) and p[0].max() > 0 and p[1].abs().max() == 0


def test_combined_uses_validation_min_max_and_scores_one_image_alone():
    val = {"nll": np.array([10.0, 20.0]), "diff": np.array([1.0, 3.0])}
    norm = scoring.Normalizer.fit(val)
    one = {"nll": np.array([15.0]), "diff": np.array([5.0])}
    assert np.allclose(norm.combined(one), [0.5 + 2.0])
    assert np.allclose(scoring.image_score(one, "nll"), [15.0])


def test_threshold_has_the_asked_false_positive_rate():
    normal = np.random.default_rng(0).normal(size=10_000)
    th = scoring.calibrate_threshold(normal, fpr=0.05)
    assert abs((normal > th).mean() - 0.05) < 1e-3


def test_raw_scores_agree_with_the_formulas():
    x = 3 * torch.randn(4, 192, 16, 16)
    s = scoring.raw_scores(x)
    assert np.allclose(s["nll"], scoring.nll(x).numpy(), rtol=1e-6)
    a = x.double().pow(2).sum(1).sqrt()
    assert np.allclose(s["diff"], (a.amax((1, 2)) - a.amin((1, 2))).numpy(), rtol=1e-5)

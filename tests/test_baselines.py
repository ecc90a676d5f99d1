"""Baselines against plain implementations."""
import numpy as np
import torch

from adlib.evaluation.baselines import KNN, PaDiM, reconstruction_map


def test_padim_matches_explicit_mahalanobis():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(30, 5, 2, 3, generator=g), torch.randn(4, 5, 2, 3, generator=g)
    got = PaDiM(eps=0.01).fit(train).map(test)
    x = train.double().numpy()
    for i in range(2):
        for j in range(3):
            f = x[:, :, i, j]
            mu, cov = f.mean(0), np.cov(f, rowvar=False) + 0.01 * np.eye(5)
            d = test.double().numpy()[:, :, i, j] - mu
            ref = np.sqrt(np.einsum("bc,cd,bd->b", d, np.linalg.inv(cov), d))
            assert np.allclose(got[:, i, j].numpy(), ref, atol=1e-4)


def test_padim_survives_rank_deficient_covariance():
    train = torch.randn(3, 20, 2, 2)  # 3 samples, 20 channels: covariance has rank 2
    assert torch.isfinite(PaDiM().fit(train).map(torch.randn(2, 20, 2, 2))).all()


def test_knn_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    train, test = torch.randn(6, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    knn = KNN(fraction=1.0).fit(train)
    bank = train.permute(0, 2, 3, 1).reshape(-1, 4)
    q = test.permute(0, 2, 3, 1).reshape(-1, 4)
    ref = torch.cdist(q, bank).min(1).values.reshape(2, 3, 3)
    assert torch.allclose(knn.map(test), ref, atol=1e-5)
    assert len(KNN(fraction=0.25).fit(train).bank) == int(0.25 * 54)


def test_reconstruction_with_an_oracle_denoiser_is_exact():
    z = torch.randn(2, 3, 2, 2)
    # eps computed from the true z: denoising then returns z exactly, so the error map is zero.
    from adlib.schedule import ABAR
    oracle = lambda x, t: (x - ABAR[t].float().sqrt().view(-1, 1, 1, 1) * z) / (1 - ABAR[t].float()).sqrt().view(-1, 1, 1, 1)  # noqa: E731
    assert reconstruction_map(oracle, z, 0.3, 5).abs().max() < 1e-3


def test_whitening_gives_padim_distances():
    from adlib.features.standardize import fit_stats, standardize
    z = torch.randn(50, 6, 3, 3, generator=torch.Generator().manual_seed(2)) * torch.linspace(0.5, 3, 6).view(1, 6, 1, 1)
    y = standardize(z[:4], fit_stats(z, "whiten"))
    assert torch.allclose(y.norm(dim=1), PaDiM().fit(z).map(z[:4]), atol=1e-4)


def _eps(x, t):  # a denoiser that is not an oracle, so the map depends on the noise drawn
    return 0.5 * torch.tanh(x)


def test_reconstruction_does_not_depend_on_the_batch_size():
    from adlib.evaluation.bench import baseline_methods
    z = torch.randn(12, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    maps = [baseline_methods(_eps, z, recon=((0.3, 3),), batch_size=b)[0][1](z)["map"] for b in (4, 12, 5)]
    assert torch.allclose(maps[0], maps[1], atol=1e-6) and torch.allclose(maps[2], maps[1], atol=1e-6)
    # samples keep their own noise: equal features at different indices get different maps
    same = baseline_methods(_eps, z, recon=((0.3, 3),), batch_size=4)[0][1](z[:1].repeat(2, 1, 1, 1))["map"]
    assert not torch.allclose(same[0], same[1])
    # a batch's `first` says where it starts among all samples
    assert torch.allclose(reconstruction_map(_eps, z[4:8], 0.3, 3, first=4), maps[1][4:8], atol=1e-6)


def test_reconstruction_noise_is_drawn_on_the_features_device(monkeypatch):
    z = torch.randn(3, 2, 2, 2)
    seen, randn = [], torch.randn

    def recording(*args, **kwargs):
        g = kwargs.get("generator")
        seen.append((kwargs.get("device"), None if g is None else g.device))
        return randn(*args, **kwargs)
    monkeypatch.setattr(torch, "randn", recording)
    reconstruction_map(_eps, z, 0.3, 3)
    assert seen and all(d is not None and torch.device(d) == z.device and g == z.device for d, g in seen)


def test_reconstruction_noise_is_seeded_once_per_scorer():
    from adlib.evaluation.scorers import reconstruction_scorer
    z = torch.randn(5, 3, 2, 2, generator=torch.Generator().manual_seed(4))
    a, b = reconstruction_scorer(_eps, 0.3, 3, 2, seed=0), reconstruction_scorer(_eps, 0.3, 3, 2, seed=1)
    assert torch.equal(a(z)["map"], a(z)["map"])  # the same samples, the same noise, every call
    assert not torch.allclose(a(z)["map"], b(z)["map"])

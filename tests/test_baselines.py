"""Baselines against plain implementations."""
import numpy as np
import torch

from adlib.baselines import KNN, PaDiM, reconstruction_map


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
    from adlib.diffusion import ABAR
    oracle = lambda x, t: (x - ABAR[t].float().sqrt().view(-1, 1, 1, 1) * z) / (1 - ABAR[t].float()).sqrt().view(-1, 1, 1, 1)  # noqa: E731
    assert reconstruction_map(oracle, z, 0.3, 5).abs().max() < 1e-3


def test_whitening_gives_padim_distances():
    from adlib.standardize import fit_stats, standardize
    z = torch.randn(50, 6, 3, 3, generator=torch.Generator().manual_seed(2)) * torch.linspace(0.5, 3, 6).view(1, 6, 1, 1)
    y = standardize(z[:4], fit_stats(z, "whiten"))
    assert torch.allclose(y.norm(dim=1), PaDiM().fit(z).map(z[:4]), atol=1e-4)

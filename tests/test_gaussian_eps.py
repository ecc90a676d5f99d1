"""EpsGaussian: the closed-form eps of a per-position Gaussian (DESIGN §6), checked against the formula,
against exact whitening, against PaDiM, and for the gains few DDIM steps leave per eigen-direction."""
import time

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.covariance import ledoit_wolf_shrinkage

from adlib.evaluation.baselines import PaDiM
from adlib.method.inversion import invert, make_grid
from adlib.models import EpsGaussian, load_model, select_shrinkage
from adlib.models.gaussian import ledoit_wolf
from adlib.schedule import ABAR, T

LAMS = [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]
DESIGN_S3 = [0.50, 0.30, 0.13, 0.12, 0.28, 0.51]  # DESIGN §6, reference grid, relative to Sigma^-1/2


def gaussian_model(lams, grid=2, seed=0):
    """An EpsGaussian (float64) with known mu, and Sigma = U diag(lams) U^T, U a random rotation per position."""
    g = torch.Generator().manual_seed(seed)
    c, p = len(lams), grid * grid
    m = EpsGaussian(channels=c, grid=grid).double()
    m.mean.copy_(torch.randn(c, grid, grid, generator=g, dtype=torch.float64))
    m.eigvec.copy_(torch.linalg.qr(torch.randn(p, c, c, generator=g, dtype=torch.float64))[0])
    m.eigval.copy_(torch.tensor(lams, dtype=torch.float64).repeat(p, 1))
    return m


def sample(m, n, seed=1):
    """n draws of N(mu, Sigma) at every position: B x C x h x w."""
    c, h, w = m.mean.shape
    e = torch.randn(n, h * w, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = torch.einsum("pck,npk->ncp", m.eigvec, e * m.eigval.sqrt())
    return x.reshape(n, c, h, w) + m.mean


def whiten(m, x):
    """Sigma^-1/2 (x - mu) per position, in the eigenbasis's original coordinates."""
    u = m._rotate(x, 1.0) / m.eigval.T.sqrt()
    return torch.einsum("pck,bkp->bcp", m.eigvec, u).reshape(x.shape)


def gain_1d(lam, points):
    """The derivation: along an eigen-direction eps = g_t u with g_t = sqrt(1-a_t) / (a_t lam + 1 - a_t)
    (u centred), so one DDIM step multiplies u by sqrt(a'/a) (1 - sqrt(1-a) g) + sqrt(1-a') g."""
    u, a = 1.0, ABAR.numpy()
    for t, t2 in zip(points, points[1:]):
        g = np.sqrt(1 - a[t]) / (a[t] * lam + 1 - a[t])
        u *= np.sqrt(a[t2] / a[t]) * (1 - np.sqrt(1 - a[t]) * g) + np.sqrt(1 - a[t2]) * g
    return u


# (a) the formula, and the fit behind it ---------------------------------------------------------------------

def test_eps_matches_the_formula_with_a_direct_inverse():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 5, 3, 3, generator=g, dtype=torch.float64)
    z = z + 0.8 * z.roll(1, dims=1) + torch.randn(5, 3, 3, generator=g, dtype=torch.float64)  # correlated, mu != 0
    m = EpsGaussian.fit(z, dtype=torch.float64, shrinkage=0.3, ridge=0.01)
    zp = z.flatten(2).permute(2, 0, 1).numpy()                      # P x N x C
    covs = np.stack([np.cov(zp[p].T) for p in range(9)])
    sigmas = 0.7 * covs + 0.3 * covs.mean(0) + 0.01 * np.eye(5)    # shrunk toward the pooled covariance
    mus = zp.mean(1)
    x = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 333, 999, T])                             # T: abar = 0, where eps = x
    eps = m(x, t).flatten(2).numpy()
    for b in range(4):
        a = ABAR[t[b]].item()
        for p in range(9):
            want = np.sqrt(1 - a) * np.linalg.inv(a * sigmas[p] + (1 - a) * np.eye(5)) @ (x[b, :, p // 3, p % 3].numpy()
                                                                                        - np.sqrt(a) * mus[p])
            np.testing.assert_allclose(eps[b, :, p], want, rtol=1e-9, atol=1e-12)
    assert torch.allclose(m(x, torch.tensor(T)), x, atol=1e-12)  # a scalar t is broadcast; abar = 0: eps = x


def test_window_pools_the_neighbours_samples():
    z = torch.randn(30, 4, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = EpsGaussian.fit(z, dtype=torch.float64, window=3, ridge=0.0)
    for (i, j) in [(0, 0), (1, 2), (3, 3)]:
        near = [z[:, :, a, b] for a in range(max(0, i - 1), min(4, i + 2)) for b in range(max(0, j - 1), min(4, j + 2))]
        s = torch.cat(near).numpy()
        p = i * 4 + j
        np.testing.assert_allclose(m.mean[:, i, j].numpy(), s.mean(0), atol=1e-12)
        sigma = (m.eigvec[p] * m.eigval[p]) @ m.eigvec[p].T
        np.testing.assert_allclose(sigma.numpy(), np.cov(s.T), atol=1e-10)
    whole = EpsGaussian.fit(z, dtype=torch.float64, window=7)      # k >= 2 grid - 1: one Gaussian for all
    assert torch.allclose(whole.eigval, whole.eigval[:1].expand_as(whole.eigval))


def test_ledoit_wolf_matches_sklearn():
    z = torch.randn(50, 8, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = z * torch.linspace(0.2, 3, 8, dtype=torch.float64).view(1, 8, 1, 1)
    want = [ledoit_wolf_shrinkage(z[:, :, i, j].numpy()) for i in range(2) for j in range(2)]
    np.testing.assert_allclose(ledoit_wolf(z).numpy(), want, rtol=1e-10)
    m = EpsGaussian.fit(z, dtype=torch.float64, shrinkage="ledoit-wolf")
    np.testing.assert_allclose(m.rho.numpy(), want, rtol=1e-10)  # the rho used, per position, is kept
    with pytest.raises(ValueError, match="shrinkage"):
        EpsGaussian.fit(z, shrinkage=1.5)


def test_select_shrinkage_prefers_pooling_for_a_stationary_texture():
    """Every position draws from the same Gaussian and N < C: pooling must beat per-position estimates."""
    m = gaussian_model(list(np.geomspace(0.05, 5, 12)), grid=4)
    m.eigvec.copy_(m.eigvec[:1].expand_as(m.eigvec)), m.mean.zero_()
    best, table = select_shrinkage(sample(m, 10, seed=1), sample(m, 50, seed=2), rhos=[0.0, 0.5, 0.9, 1.0])
    assert best >= 0.9 and table[best] < table[0.0], table
    auto = EpsGaussian.fit(sample(m, 20, seed=3), shrinkage="auto")  # chosen on a held-out fifth of its own data
    assert auto.rho.min() >= 0.8 and (auto.rho == auto.rho[0]).all()
    assert EpsGaussian.fit(sample(m, 20, seed=3), shrinkage=0.25).rho.eq(0.25).all()


# (b) few steps whiten each eigen-direction only partly --------------------------------------------------------

def test_many_steps_approach_exact_whitening():
    m = gaussian_model(list(np.geomspace(1e-2, 10, 6)))
    x = sample(m, 200)
    a0, ae = ABAR[0].item(), ABAR[T - 1].item()                  # the paper grid runs from t = 0 to t = 999
    v0, ve = a0 * m.eigval + 1 - a0, ae * m.eigval + 1 - ae       # Var of x_t per direction: abar lam + 1 - abar
    # the exact flow map from abar_0 (z is taken as x_0) to abar_999, per eigen-direction
    u = m._rotate(x, a0 ** 0.5) * (ve / v0).sqrt().T
    exact = torch.einsum("pck,bkp->bcp", m.eigvec, u).reshape(x.shape) + ae ** 0.5 * m.mean
    errors = []
    for s in (3, 10, 100, 999):
        points = make_grid(s, "paper")
        out = invert(m, x, points)
        errors.append(((out - exact).norm() / exact.norm()).item())
        # per direction, the library's latent is the 1-D recursion's gain times the exact map
        gains = torch.tensor([gain_1d(lam, points) for lam in m.eigval[0].tolist()], dtype=torch.float64)
        want = torch.einsum("pck,bkp->bcp", m.eigvec, m._rotate(x, a0 ** 0.5) * gains[:, None]).reshape(x.shape)
        assert torch.allclose(out - ae ** 0.5 * m.mean, want, atol=1e-9)
    assert errors == sorted(errors, reverse=True) and errors[0] > 0.3 and errors[-1] < 0.01, errors
    # ...and the exact map is Sigma^-1/2 (x - mu) up to abar_0 = 1 - 1e-4 and abar_999 = 4e-5
    assert (exact - whiten(m, x)).norm() / exact.norm() < 0.02


def test_gains_at_three_steps_match_the_derivation_and_design():
    """Gain of an S-step inversion per eigen-direction relative to exact whitening Sigma^-1/2, measured on
    the library (x = mu + sqrt(lam) u_k, minus the image of mu: the map is affine) and derived in 1-D."""
    m = gaussian_model(LAMS, grid=1)
    for s, design in [(3, DESIGN_S3), (5, [0.51, 0.69]), (50, [0.56, 0.97])]:
        points = make_grid(s, "reference")
        x = m.mean + (m.eigvec[0] * m.eigval[0].sqrt()).T[:, :, None, None]   # row k: mu + sqrt(lam_k) u_k
        moved = invert(m, x, points) - invert(m, m.mean[None], points)
        measured = torch.einsum("ck,kc->k", m.eigvec[0], moved[:, :, 0, 0]).numpy()  # u_k^T (x_S - image of mu)
        derived = np.array([gain_1d(lam, points) * np.sqrt(lam) for lam in LAMS])
        np.testing.assert_allclose(measured, derived, rtol=1e-8)
        got = derived if len(design) == 6 else derived[[0, -1]]
        np.testing.assert_allclose(got, design, atol=0.005)
        print(f"S={s} reference-grid gains vs Sigma^-1/2:", np.round(derived, 3))
    # Whatever S, a direction with lam near 1 - abar_0 = 1e-4 stays below whitening: z is taken as x_0, whose
    # variance is abar_0 lam + 1e-4, so the exact flow map gives 1/sqrt(1 + 1e-4/lam) = 0.71 of Sigma^-1/2 at
    # lam = 1e-4 (S = 999: 0.686); the lower gains at S = 3 for lam ~ 0.01-0.1 are the few steps' own error.
    assert abs(gain_1d(1e-4, make_grid(999, "reference")) * 1e-2 - 0.686) < 0.005


# (c) NLL of the latent -> half the sum of squared Mahalanobis distances ---------------------------------------

def test_nll_approaches_half_the_mahalanobis_sum():
    m = gaussian_model(list(np.geomspace(1e-2, 10, 6)), grid=2)
    x = sample(m, 100)
    half_maha2 = 0.5 * m.mahalanobis_map(x).pow(2).flatten(1).sum(1)
    gaps = []
    for s in (3, 10, 100, 999):
        half_sq = 0.5 * invert(m, x, make_grid(s, "reference")).pow(2).flatten(1).sum(1)  # NLL - const
        gaps.append(((half_sq - half_maha2).abs() / half_maha2).mean().item())
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 0.5 and gaps[-1] < 0.02, gaps


# (d) the norm map is PaDiM's distance map ---------------------------------------------------------------------

def test_norm_map_ranks_like_padim():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(8, 8, generator=g)
    z = torch.einsum("cd,ndhw->nchw", mix, torch.randn(120, 8, 4, 4, generator=g))
    test = torch.einsum("cd,ndhw->nchw", mix, torch.randn(20, 8, 4, 4, generator=g))
    test[:10] += 0.7 * torch.randn(10, 8, 4, 4, generator=g)      # some anomalous positions
    padim = PaDiM(eps=0.01).fit(z).map(test)
    m = EpsGaussian.fit(z, dtype=torch.float64, shrinkage=0.0, ridge=0.01)
    assert torch.allclose(m.mahalanobis_map(test).float(), padim, rtol=1e-4)
    rho = {s: spearmanr(invert(m, test.double(), make_grid(s, "paper")).norm(dim=1).flatten(), padim.flatten())[0]
           for s in (3, 100)}
    print("Spearman(norm map, PaDiM):", rho)
    assert rho[100] > 0.99, rho


# (e) save / load ----------------------------------------------------------------------------------------------

def test_round_trip(tmp_path):
    z = torch.randn(30, 6, 3, 3, generator=torch.Generator().manual_seed(0))
    m = EpsGaussian.fit(z, shrinkage=0.4, window=3)
    x, t = torch.randn(2, 6, 3, 3), torch.tensor([0, 666])
    m.save_pretrained(tmp_path)
    back = load_model(tmp_path)
    assert type(back) is EpsGaussian and back.config.shrinkage == 0.4 and back.config.window == 3
    assert torch.equal(back(x, t), m(x, t)) and torch.equal(back.eigvec, m.eigvec)


def test_mixed_precision_leaves_the_gaussian_in_float32():
    """Training on a GPU runs under bf16 autocast; the closed-form eps opts out (here: CPU autocast)."""
    m = gaussian_model(list(np.geomspace(1e-2, 10, 6)))
    x, t, m = sample(m, 4).float(), torch.tensor([0, 10, 500, 999]), m.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x, t)
    assert y.dtype == torch.float32 and torch.equal(y, m(x, t))


# (f) fitting takes seconds at ELPV's size ---------------------------------------------------------------------

def test_fit_is_fast_at_full_size():
    z = torch.randn(600, 192, 16, 16, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    m = EpsGaussian.fit(z, shrinkage=0.5)
    took = time.perf_counter() - t0
    print(f"EpsGaussian.fit N=600 C=192 16x16: {took:.1f} s")
    assert took < 120 and torch.isfinite(m.eigvec).all() and (m.eigval > 0).all()

"""The N(0, I) prior in d dimensions (notebook 01): the chi density of ||x||, norms of shifted or scaled
Gaussians, the NLL as a function of the norm, the reverse-scoring figure, and local anomalies that keep
the NLL but not the Diff."""
import math

import numpy as np
import plotly.graph_objects as go
import torch
from scipy.special import gammaln

from .base import ANOMALOUS, NORMAL, _auroc

DIMENSIONS = (1, 2, 4, 8, 16, 32, 64, 192, 768, 3072, 12288, 49152)  # 49152 = 192 x 16 x 16


def chi_pdf(r, d: int) -> np.ndarray:
    """Density of ||x|| for x ~ N(0, I_d): r^(d-1) exp(-r^2/2) / (2^(d/2-1) Gamma(d/2)), in log space."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = (d - 1) * np.log(r) - r ** 2 / 2 - (d / 2 - 1) * math.log(2) - gammaln(d / 2)
    return np.where(r > 0, np.exp(log_p), 0.0 if d > 1 else math.sqrt(2 / math.pi))


def sample_norms(d: int, n: int, shift: float = 0.0, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """||x|| for n draws of x ~ N(shift * 1, scale^2 I_d), without materialising x.

    ||x||^2 / scale^2 is non-central chi^2 with d degrees of freedom and lambda = d shift^2 / scale^2.
    """
    g = np.random.default_rng(seed)
    lam = d * shift ** 2 / scale ** 2
    sq = g.noncentral_chisquare(d, lam, n) if lam > 0 else g.chisquare(d, n)
    return scale * np.sqrt(sq)


def prior_nll_from_norm(r, d: int) -> np.ndarray:
    """-log N(x; 0, I_d) depends on x only through r = ||x||: r^2 / 2 + d/2 log(2 pi)."""
    return 0.5 * np.asarray(r, dtype=np.float64) ** 2 + 0.5 * d * math.log(2 * math.pi)


def prior_figure(d: int, shift: float = 0.0, scale: float = 1.0, n: int = 2000, seed: int = 0):
    """Histograms of ||x|| for prior samples and a shifted/scaled 'anomalous' set, with the chi_d curve.

    Returns (figure, {"auroc_nll": ..., "mean_norm": ..., "sqrt_d": ...}). NLL is monotone in ||x||,
    so its AUROC is that of the norm; below 0.5 the anomalies look *more* likely than normal data.
    """
    normal = sample_norms(d, n, 0.0, 1.0, seed)
    odd = sample_norms(d, n, shift, scale, seed + 1)
    labels = np.r_[np.zeros(n), np.ones(n)]
    auroc = _auroc(labels, prior_nll_from_norm(np.r_[normal, odd], d))
    lo, hi = min(normal.min(), odd.min()), max(normal.max(), odd.max())
    r = np.linspace(max(lo - 0.1 * (hi - lo), 1e-6), hi + 0.1 * (hi - lo), 400)
    fig = go.Figure()
    fig.add_histogram(x=normal, histnorm="probability density", name="x ~ N(0, I)", opacity=0.6,
                      marker_color=NORMAL, nbinsx=60)
    fig.add_histogram(x=odd, histnorm="probability density", opacity=0.6, marker_color=ANOMALOUS, nbinsx=60,
                      name=f"anomalous: N({shift:g}, {scale:g}² I)")
    fig.add_scatter(x=r, y=chi_pdf(r, d), mode="lines", name=f"chi_{d} density", line=dict(color="black"))
    fig.add_vline(x=math.sqrt(d), line_dash="dash", annotation_text="√d")
    verdict = "reverse scoring: anomalies look MORE likely" if auroc < 0.5 else "NLL ranks anomalies higher"
    fig.update_layout(barmode="overlay", height=380, margin=dict(t=60, b=40),
                      title=f"‖x‖ in d = {d}: NLL AUROC = {auroc:.3f} ({verdict})",
                      xaxis_title="‖x‖", yaxis_title="density", legend=dict(x=0.01, y=0.99))
    return fig, {"auroc_nll": auroc, "mean_norm": float(normal.mean()), "sqrt_d": math.sqrt(d)}


def local_anomaly_latents(channels: int = 192, grid: int = 8, n: int = 200, patch: int = 2,
                          local_scale: float = 2.0, seed: int = 0):
    """Prior samples (n x C x g x g) and 'local' anomalies with the same expected ||x||^2.

    In each anomalous sample a random patch x patch block of positions is scaled by `local_scale` and all
    other positions are scaled down by s_rest, with k positions in the patch of P:
    k local_scale^2 + (P - k) s_rest^2 = P, so E||x||^2 (hence the NLL) is unchanged while the norm map
    gets a bright spot. Returns (x, labels).
    """
    g = torch.Generator().manual_seed(seed)
    P, k = grid * grid, patch * patch
    if k * local_scale ** 2 >= P:
        raise ValueError(f"local_scale={local_scale} is too large for a {patch}x{patch} patch in {grid}x{grid}")
    rest = math.sqrt((P - k * local_scale ** 2) / (P - k))
    x = torch.randn(2 * n, channels, grid, grid, generator=g, dtype=torch.float64)
    corners = torch.randint(0, grid - patch + 1, (n, 2), generator=g)
    for i, (y0, x0) in enumerate(corners.tolist()):
        f = torch.full((grid, grid), rest, dtype=torch.float64)
        f[y0:y0 + patch, x0:x0 + patch] = local_scale
        x[n + i] *= f
    return x, np.r_[np.zeros(n), np.ones(n)]

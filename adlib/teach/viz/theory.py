"""The N(0, I) prior in d dimensions (notebook 01): the chi density of ||x||, norms of shifted or scaled
Gaussians, the NLL as a function of the norm, the reverse-scoring figure and its exact AUROC (an F
distribution), and local anomalies that keep the NLL but not the Diff."""
import math

import numpy as np
import plotly.graph_objects as go
import torch
from scipy.special import gammaln

from adlib.teach.verdicts import auroc_standard_error  # noqa: F401  (one implementation, re-exported)
from adlib.teach.viz.base import ANOMALOUS, NORMAL, _auroc

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


def chi_mean(d: int) -> float:
    """E||x|| for x ~ N(0, I_d): sqrt(2) Gamma((d+1)/2) / Gamma(d/2), ~ sqrt(d - 1/2) -- a little below sqrt(d)."""
    return float(math.sqrt(2) * math.exp(gammaln((d + 1) / 2) - gammaln(d / 2)))


def chi_sd(d: int) -> float:
    """sd ||x|| for x ~ N(0, I_d): sqrt(d - E||x||^2) -> 1/sqrt(2); relative width sd/mean ~ 1/sqrt(2 d)."""
    return float(math.sqrt(max(d - chi_mean(d) ** 2, 0.0)))


def nll_auroc_theory(d: int, shift: float = 0.0, scale: float = 1.0) -> float:
    """Exact AUROC of the NLL (monotone in ||x||) for normals N(0, I_d) against anomalies N(shift 1, scale^2 I_d).

    ||normal||^2 = Y ~ chi^2_d and ||anomaly||^2 = scale^2 X', X' ~ noncentral chi^2_d(lam = d shift^2 / scale^2),
    so AUROC = P(scale^2 X' > Y) = P((X'/d) / (Y/d) > 1 / scale^2): the survival function of the (noncentral)
    F(d, d) distribution at 1 / scale^2. Below 0.5: reverse scoring.
    """
    from scipy import stats
    lam = d * shift ** 2 / scale ** 2
    dist = stats.ncf(d, d, lam) if lam > 0 else stats.f(d, d)
    return float(dist.sf(1.0 / scale ** 2))


def dimension_for_auroc(target: float, scale: float, shift: float = 0.0, d_max: int = 10 ** 6) -> int:
    """Smallest d whose nll_auroc_theory(d, shift, scale) is at least as decisive as `target` (below it for
    target < 0.5, above it otherwise); the AUROC moves monotonically away from 0.5 with d when shift = 0.
    Raises ValueError if even d_max does not reach it."""
    def reached(d):
        a = nll_auroc_theory(d, shift, scale)
        return a <= target if target < 0.5 else a >= target
    if not reached(d_max):
        raise ValueError(f"AUROC {target} is not reached for scale {scale}, shift {shift} up to d = {d_max}")
    lo, hi = 0, d_max  # reached(hi), not reached(lo) (d = 0 means no data)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reached(mid) else (mid, hi)
    return hi


def reverse_scoring_figure(d: int, scales=(0.9, 1.1), measured: dict = None, dims=None):
    """The exact NLL AUROC (nll_auroc_theory) against d, one curve per anomaly scale, with the Monte-Carlo
    values `measured` {scale: auroc} at d as markers: the higher d, the farther from 0.5, in either direction."""
    dims = np.unique(np.r_[np.geomspace(1, 4096, 40).round().astype(int), d]) if dims is None else np.asarray(dims)
    fig = go.Figure()
    for s in scales:
        color = ANOMALOUS if s < 1 else NORMAL
        fig.add_scatter(x=dims, y=[nll_auroc_theory(int(n), 0.0, s) for n in dims], mode="lines",
                        line=dict(color=color), name=f"theory, scale {s:g}")
        if measured and s in measured:
            fig.add_scatter(x=[d], y=[measured[s]], mode="markers", marker=dict(color=color, size=10, symbol="x"),
                            name=f"measured at d = {d}, scale {s:g}")
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    fig.update_layout(height=340, margin=dict(t=50, b=40), title="NLL AUROC of N(0, scale² I) anomalies against d",
                      xaxis=dict(title="d", type="log"), yaxis=dict(title="AUROC", range=[0, 1]))
    return fig

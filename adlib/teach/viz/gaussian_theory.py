"""What a Gaussian already gives InvAD (DESIGN §6), for notebook 05: the gains of few DDIM steps, toys, figures.

For z ~ N(mu, Sigma), Sigma = U diag(lam) U^T, the optimal eps is linear (adlib.models.EpsGaussian). Along an
eigen-direction, with the centred coordinate u = u_k^T (x_t - sqrt(abar_t) mu),

    eps*(x_t, t) = g_t u,      g_t = sqrt(1 - abar_t) / (abar_t lam + 1 - abar_t),

and one DDIM step t -> t' (adlib.method.inversion.ddim_step) multiplies u by

    sqrt(abar_t' / abar_t) (1 - sqrt(1 - abar_t) g_t) + sqrt(1 - abar_t') g_t .

S steps multiply u by the product of these factors. Exact whitening, Sigma^-1/2 (x - mu), multiplies it by
1 / sqrt(lam), so the gain *relative to whitening* is sqrt(lam) times that product (1 = exact whitening). The
exact probability-flow map from abar_0 to abar_S multiplies u by sqrt(v_S / v_0), v = abar lam + 1 - abar.

Here: those gains (`step_gains`, `flow_gains`) and the same measured on adlib's own inversion
(`measured_gains`), an EpsGaussian of a known mu and Sigma (`gaussian_eps`), Gaussian toy feature maps with
local outliers (`toy_features`), the figures of notebook 05 and `GainExplorer` (a slider for S).
"""
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from adlib.method.inversion import GRIDS, invert, make_grid
from adlib.models import EpsGaussian
from adlib.schedule import ABAR
from adlib.teach.viz.base import ANOMALOUS, NORMAL
from adlib.teach.viz.explorers import _Explorer

DESIGN_LAMS = (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0)  # the eigenvalues DESIGN §6 quotes gains for
STEP_OPTIONS = (1, 2, 3, 5, 10, 20, 50, 100, 1000)


def gaussian_eps(mean, cov, grid: int = 1) -> EpsGaussian:
    """The closed-form eps (float64) of N(mean, cov) at each of grid x grid positions: mean (C,), cov (C, C)."""
    mean = torch.as_tensor(np.asarray(mean), dtype=torch.float64)
    lam, vec = torch.linalg.eigh(torch.as_tensor(np.asarray(cov), dtype=torch.float64))
    c, p = len(mean), grid * grid
    model = EpsGaussian(channels=c, grid=grid).double()
    model.mean.copy_(mean[:, None, None].expand(c, grid, grid))
    model.eigval.copy_(lam.expand(p, c))
    model.eigvec.copy_(vec.expand(p, c, c))
    return model


def invert_vectors(model, x, points, trajectory: bool = False):
    """DDIM inversion (adlib.method.inversion.invert) of points x (n x C) with a grid-1 model: the n x C end points,
    and with trajectory=True also the (S + 1) x n x C states."""
    z = torch.as_tensor(np.asarray(x), dtype=torch.float64)[:, :, None, None]
    end, states = invert(model, z, points, trajectory=True)
    end = end[:, :, 0, 0].numpy()
    return (end, np.stack([s[:, :, 0, 0].numpy() for s in states])) if trajectory else end


def whiten(x, mean, cov) -> np.ndarray:
    """Sigma^-1/2 (x - mu) for points x (n x C), with the symmetric inverse square root U diag(lam^-1/2) U^T."""
    lam, vec = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    return (np.asarray(x, dtype=np.float64) - mean) @ (vec / np.sqrt(lam)) @ vec.T


def _abar(points):
    a = ABAR.numpy()
    return [a[t] for t in points]


def step_gains(lams, points) -> np.ndarray:
    """Gain of the DDIM inversion on `points` per eigenvalue, relative to exact whitening (the derivation above)."""
    lams = np.asarray(lams, dtype=np.float64)
    u = np.ones_like(lams)
    for a, a2 in zip(_abar(points), _abar(points[1:])):
        g = np.sqrt(1 - a) / (a * lams + 1 - a)
        u = u * (np.sqrt(a2 / a) * (1 - np.sqrt(1 - a) * g) + np.sqrt(1 - a2) * g)
    return u * np.sqrt(lams)


def flow_gains(lams, points) -> np.ndarray:
    """Gain of the exact probability-flow map from points[0] to points[-1], relative to exact whitening:
    sqrt(lam (abar_S lam + 1 - abar_S) / (abar_0 lam + 1 - abar_0)). Below 1 only where lam is near 1 - abar_0 =
    1e-4: z is taken as x_0, whose variance already holds that much noise."""
    lams = np.asarray(lams, dtype=np.float64)
    a0, a_s = _abar([points[0], points[-1]])
    return np.sqrt(lams * (a_s * lams + 1 - a_s) / (a0 * lams + 1 - a0))


def measured_gains(lams, points, seed: int = 0) -> np.ndarray:
    """The same gains measured on adlib.method.inversion.invert: a Gaussian with these eigenvalues along random
    directions u_k; x_k = mu + sqrt(lam_k) u_k (whitened: u_k, one Mahalanobis unit) is inverted, and the gain is
    u_k^T (x_S(x_k) - x_S(mu)) (the map is affine, so the image of mu is subtracted)."""
    lams = np.asarray(lams, dtype=np.float64)
    g = torch.Generator().manual_seed(seed)
    c = len(lams)
    vec = torch.linalg.qr(torch.randn(c, c, generator=g, dtype=torch.float64))[0].numpy()
    mean = torch.randn(c, generator=g, dtype=torch.float64).numpy()
    model = gaussian_eps(mean, (vec * lams) @ vec.T)
    x = mean + (vec * np.sqrt(lams)).T
    moved = invert_vectors(model, x, points) - invert_vectors(model, mean[None], points)
    return np.einsum("ck,kc->k", vec, moved)


def toy_features(lams, grid: int = 4, n_train: int = 400, n_test: int = 40, n_outliers: int = 40,
                 shift: float = 4.0, seed: int = 0) -> dict:
    """Gaussian feature maps with known statistics: at position (i, j), N(mu_ij, U_ij diag(lams) U_ij^T) with a
    random mean and rotation per position. Returns train (n_train maps), test (n_test normal maps, then
    n_outliers maps with one random position moved by `shift` Mahalanobis units along a random direction),
    labels, mean (C x h x w) and cov (P x C x C), all float64 tensors."""
    g = torch.Generator().manual_seed(seed)
    lams = torch.as_tensor(np.asarray(lams), dtype=torch.float64)
    c, p = len(lams), grid * grid
    vec = torch.linalg.qr(torch.randn(p, c, c, generator=g, dtype=torch.float64))[0]
    mean = torch.randn(c, grid, grid, generator=g, dtype=torch.float64)
    root = vec * lams.sqrt()                                            # Sigma^1/2 up to a rotation: P x C x C

    def draw(n):
        e = torch.randn(n, p, c, generator=g, dtype=torch.float64)
        return torch.einsum("pck,npk->ncp", root, e).reshape(n, c, grid, grid) + mean

    train, test = draw(n_train), draw(n_test + n_outliers)
    for b in range(n_test, n_test + n_outliers):
        pos = int(torch.randint(0, p, (1,), generator=g))
        d = torch.randn(c, generator=g, dtype=torch.float64)
        test[b, :, pos // grid, pos % grid] += shift * root[pos] @ (d / d.norm())
    labels = np.r_[np.zeros(n_test, dtype=int), np.ones(n_outliers, dtype=int)]
    return {"train": train, "test": test, "labels": labels, "mean": mean, "cov": root @ root.transpose(1, 2)}


# ---- figures -------------------------------------------------------------------------------------------------

def eps_gain_figure(lams, names=None, height: int = 340):
    """g_t = sqrt(1 - abar_t) / (abar_t lam + 1 - abar_t) against t for each eigenvalue: how strongly eps*
    pushes along that direction (g_t = 1 / sqrt(lam) ... 1: from Sigma^-1-like to the identity)."""
    t = np.arange(0, 1000)
    a = ABAR.numpy()[t]
    fig = go.Figure()
    for k, lam in enumerate(lams):
        name = names[k] if names else f"λ = {lam:g}"
        fig.add_scatter(x=t, y=np.sqrt(1 - a) / (a * lam + 1 - a), mode="lines", name=name)
    fig.add_scatter(x=t, y=np.sqrt(1 - a), mode="lines", name="√(1 − ᾱ_t) (λ = 1)",
                    line=dict(color="gray", dash="dot"))
    fig.update_layout(height=height, margin=dict(t=50, b=40), title="ε* = g_t · u per eigen-direction",
                      xaxis_title="t", yaxis=dict(title="g_t", type="log"))
    return fig


def eps_field_figure(samples, model, t: int, span: float = 3.0, n: int = 13, height: int = 420):
    """2-D samples and the arrows of eps(x, t) of a grid-1 model with C = 2, on an n x n lattice around them."""
    import plotly.figure_factory as ff
    samples = np.asarray(samples)
    lo, hi = samples.mean(0) - span * samples.std(0).max(), samples.mean(0) + span * samples.std(0).max()
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
    pts = np.c_[gx.ravel(), gy.ravel()]
    with torch.no_grad():
        eps = model(torch.as_tensor(pts, dtype=torch.float64)[:, :, None, None], torch.tensor(t))[:, :, 0, 0].numpy()
    scale = 0.8 * (hi[0] - lo[0]) / n / max(np.linalg.norm(eps, axis=1).max(), 1e-12)
    fig = ff.create_quiver(pts[:, 0], pts[:, 1], eps[:, 0], eps[:, 1], scale=scale, arrow_scale=0.25,
                           name=f"ε*(x, t = {t})", line=dict(color="black", width=1))
    fig.add_scatter(x=samples[:, 0], y=samples[:, 1], mode="markers", name="samples z",
                    marker=dict(color=NORMAL, size=3, opacity=0.35))
    fig.update_layout(height=height, margin=dict(t=50, b=40), xaxis_title="z₁",
                      yaxis=dict(title="z₂", scaleanchor="x"),
                      title=f"ε*(x, t = {t}) points away from the mean, most strongly across the thin direction")
    return fig


def flow_figure(samples, states, labels, target, few=None, few_name: str = "", height: int = 460):
    """Trajectories of the DDIM inversion in 2-D: samples (light), the exact whitening of the samples,
    the paths of a few points (states: (S + 1) x n x 2; labels: n ints, 1 = outlier), their end points beside
    their targets Sigma^-1/2 (x - mu), and optionally the end points of a few-step inversion."""
    samples, states, labels, target = map(np.asarray, (samples, states, labels, target))
    fig = go.Figure()
    fig.add_scatter(x=samples[:, 0], y=samples[:, 1], mode="markers", name="samples z ~ N(μ, Σ)",
                    marker=dict(color="lightgray", size=3))
    for i in range(states.shape[1]):
        color = ANOMALOUS if labels[i] else NORMAL
        fig.add_scatter(x=states[:, i, 0], y=states[:, i, 1], mode="lines", line=dict(color=color, width=1.5),
                        name="outlier path" if labels[i] else "normal path", legendgroup=str(labels[i]),
                        showlegend=bool(i == int(np.argmax(labels == labels[i]))))
    fig.add_scatter(x=states[-1, :, 0], y=states[-1, :, 1], mode="markers", name="end point x_T",
                    marker=dict(color=[ANOMALOUS if lab else NORMAL for lab in labels], size=8))
    fig.add_scatter(x=target[:, 0], y=target[:, 1], mode="markers", name="Σ^-1/2 (x − μ)",
                    marker=dict(symbol="circle-open", color="black", size=14, line=dict(width=2)))
    if few is not None:
        few = np.asarray(few)
        fig.add_scatter(x=few[:, 0], y=few[:, 1], mode="markers", name=few_name or "few steps",
                        marker=dict(symbol="x", color="darkorange", size=9))
    t = np.linspace(0, 2 * np.pi, 200)
    for r in (1, 2, 3, 4):
        fig.add_scatter(x=r * np.cos(t), y=r * np.sin(t), mode="lines", line=dict(color="gray", width=0.7, dash="dot"),
                        name="‖x_T‖ = 1, 2, 3, 4", legendgroup="rings", showlegend=r == 1, hoverinfo="skip")
    fig.update_layout(height=height, margin=dict(t=50, b=40), xaxis_title="coordinate 1",
                      yaxis=dict(title="coordinate 2", scaleanchor="x"),
                      title="DDIM inversion with the Gaussian ε*: from the data to its whitening")
    return fig


def lines_figure(x, series: dict, title: str, xaxis: str, yaxis: str, log_x: bool = True, log_y: bool = False,
                 height: int = 340):
    """{name: y values} against x, one line with markers each."""
    fig = go.Figure()
    for name, y in series.items():
        fig.add_scatter(x=list(x), y=list(y), mode="lines+markers", name=name)
    fig.update_layout(height=height, margin=dict(t=50, b=40), title=title,
                      xaxis=dict(title=xaxis, type="log" if log_x else "linear"),
                      yaxis=dict(title=yaxis, type="log" if log_y else "linear"))
    return fig


def gain_figure(lams, formula: dict, measured: dict = None, lams_measured=None, grid: str = "reference",
                height: int = 380):
    """Gain relative to exact whitening against the eigenvalue: {label: gains} as lines (the formula, on
    `lams`), {label: gains} as markers (measured on the library, on `lams_measured`), the exact flow map dashed."""
    fig = go.Figure()
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    for k, (name, g) in enumerate(formula.items()):
        fig.add_scatter(x=lams, y=g, mode="lines", name=f"{name}: formula", line=dict(color=colors[k % 7]))
        if measured and name in measured:
            fig.add_scatter(x=lams_measured, y=measured[name], mode="markers", name=f"{name}: adlib.invert",
                            marker=dict(color=colors[k % 7], size=9, symbol="circle-open", line=dict(width=2)))
    fig.add_scatter(x=lams, y=flow_gains(lams, make_grid(1000, "reference")), mode="lines", name="exact flow map",
                    line=dict(color="black", dash="dash"))
    fig.add_vline(x=1.0, line_dash="dot", line_color="gray", annotation_text="whitened: λ = 1")
    fig.update_layout(height=height, margin=dict(t=50, b=40), yaxis=dict(title="gain vs Σ^-1/2", range=[0, 1.05]),
                      xaxis=dict(title="eigenvalue λ of Σ", type="log"),
                      title=f"what S DDIM steps leave of exact whitening, per eigen-direction ({grid} grid)")
    return fig


class GainExplorer(_Explorer):
    """A slider for S and a grid choice -> left: the gain per eigenvalue (formula line, adlib.invert markers,
    the exact flow map dashed); right: a Mahalanobis unit circle of a 2-D Gaussian N(mean, cov) after S steps,
    in its raw coordinates (an ellipse: each direction has its own gain) and after whitening (a circle: one
    gain for all, so rankings survive)."""

    def __init__(self, mean, cov, steps: int = 3, grid: str = "reference", n_ring: int = 60):
        import ipywidgets as w
        self.mean, self.cov = np.asarray(mean, dtype=np.float64), np.asarray(cov, dtype=np.float64)
        self.lams = np.linalg.eigvalsh(self.cov)
        angle = np.linspace(0, 2 * np.pi, n_ring)
        self.circle = np.c_[np.cos(angle), np.sin(angle)]                   # whitened: one Mahalanobis unit
        lam, vec = np.linalg.eigh(self.cov)
        self.ring = self.mean + self.circle @ (vec * np.sqrt(lam)) @ vec.T  # x = mu + Sigma^1/2 c
        self.model = gaussian_eps(self.mean, self.cov)
        self.white = gaussian_eps(np.zeros(2), np.eye(2))                    # the same data, whitened first
        options = sorted(set(STEP_OPTIONS) | {int(steps)})
        self.steps = w.SelectionSlider(options=options, value=int(steps), description="S")
        self.grid = w.Dropdown(options=list(GRIDS), value=grid, description="grid")
        self.numbers = None
        self._wire([self.steps, self.grid])

    def figure_for(self, steps: int, grid: str):
        if grid == "paper" and steps > 999:
            steps = 999  # the paper grid stops at t = 999
        points = make_grid(steps, grid)
        lams = np.geomspace(1e-4, 10, 81)
        marks = np.array(sorted(set(DESIGN_LAMS) | set(np.round(self.lams, 6))))
        formula, measured = step_gains(lams, points), measured_gains(marks, points)
        raw = invert_vectors(self.model, self.ring, points) - invert_vectors(self.model, self.mean[None], points)
        white = invert_vectors(self.white, self.circle, points)
        toy = step_gains(self.lams, points)
        one = float(step_gains([1.0], points)[0])
        fig = make_subplots(rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.1, subplot_titles=[
            f"gain per eigenvalue, S = {steps}", f"a Mahalanobis unit circle after {steps} steps"])
        fig.add_scatter(x=lams, y=formula, mode="lines", name="formula", line=dict(color=NORMAL), row=1, col=1)
        fig.add_scatter(x=marks, y=measured, mode="markers", name="adlib.invert", row=1, col=1,
                        marker=dict(color=NORMAL, size=9, symbol="circle-open", line=dict(width=2)))
        fig.add_scatter(x=lams, y=flow_gains(lams, points), mode="lines", name="exact flow map", row=1, col=1,
                        line=dict(color="black", dash="dash"))
        fig.add_scatter(x=self.lams, y=toy, mode="markers", name="the toy's λ", row=1, col=1,
                        marker=dict(color=ANOMALOUS, size=11, symbol="diamond"))
        fig.add_scatter(x=self.circle[:, 0], y=self.circle[:, 1], mode="lines", name="exact whitening (unit circle)",
                        line=dict(color="black", dash="dash"), row=1, col=2)
        fig.add_scatter(x=raw[:, 0], y=raw[:, 1], mode="lines", name="raw coordinates", line=dict(color=ANOMALOUS),
                        row=1, col=2)
        fig.add_scatter(x=white[:, 0], y=white[:, 1], mode="lines", name="whitened first (λ = 1)",
                        line=dict(color=NORMAL), row=1, col=2)
        fig.update_xaxes(type="log", title_text="λ", row=1, col=1)
        fig.update_yaxes(range=[0, 1.05], title_text="gain vs Σ^-1/2", row=1, col=1)
        fig.update_xaxes(range=[-1.2, 1.2], row=1, col=2)
        fig.update_yaxes(range=[-1.2, 1.2], scaleanchor="x2", row=1, col=2)
        fig.update_layout(height=420, margin=dict(t=90, b=40), title=(
            f"S = {steps} ({grid} grid): the toy's two directions keep {toy.min():.2f} and {toy.max():.2f} of "
            f"whitening (ratio {toy.max() / toy.min():.2f});<br>whitened first, both keep {one:.2f}"))
        error = float(np.abs(measured - step_gains(marks, points)).max())
        self.numbers = {"steps": steps, "grid": grid, "toy_gains": toy.tolist(), "ratio": float(toy.max() / toy.min()),
                        "whitened_gain": one, "max_formula_error": error}
        return fig

    def update(self, change=None):
        self.figure = self.figure_for(self.steps.value, self.grid.value)
        self._refresh()
        return self.figure

"""A 2-D toy of the whole method (notebook 03): train an eps-network on points in the plane, invert normal points
and outliers with the kit's own DDIM code, and look at where they land.

The points go through adlib.method.inversion as N x 2 x 1 x 1 "feature maps" (C = 2 channels, a 1 x 1 grid), so the same
`training_loss`, `ddim_step` and `invert` that handle EfficientNet features handle the toy. One inversion step
t -> t' with eps = eps_theta(x_t, t):

    x_t' = sqrt(abar_t') (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) + sqrt(1 - abar_t') eps .

In d = 2 the prior's norm ||x_T|| has the chi_2 density r exp(-r^2 / 2) (mode 1, mean sqrt(pi / 2)). The NLL
||x_T||^2 / 2 + log 2 pi ranks points by their norm alone; the norm's own density, -log chi_2(||x_T||), also flags
points that land too close to the origin (a ring's empty centre maps there: the flow keeps the symmetry).
ToyExplorer (toy2d_explorer.py, which imports this module) puts a slider for S on `toy_figure`.
"""
import math

import numpy as np
import plotly.graph_objects as go
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from plotly.subplots import make_subplots
from torch import nn

from adlib.method.inversion import ddim_step, make_grid
from adlib.models.controls import ZeroEps
from adlib.schedule import ABAR, T, training_loss
from adlib.teach.viz.base import ANOMALOUS, NORMAL, _auroc
from adlib.teach.viz.theory import chi_pdf

KINDS = ("ring", "gaussian")
RING_RADIUS, RING_WIDTH = 2.0, 0.15
GAUSS_MEAN, GAUSS_COV = (0.5, -0.5), ((1.0, 0.6), (0.6, 0.6))


def toy_data(kind: str = "ring", n: int = 2000, seed: int = 0) -> torch.Tensor:
    """n normal points (n x 2, float32): a ring of radius 2 with N(0, 0.15^2) radial noise, or N(mu, Sigma)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "ring":
        angle = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
        r = RING_RADIUS + RING_WIDTH * torch.randn(n, generator=g, dtype=torch.float64)
        return torch.stack([r * angle.cos(), r * angle.sin()], 1).float()
    if kind == "gaussian":
        root = torch.linalg.cholesky(torch.tensor(GAUSS_COV, dtype=torch.float64))
        return (torch.randn(n, 2, generator=g, dtype=torch.float64) @ root.T + torch.tensor(GAUSS_MEAN)).float()
    raise ValueError(f"unknown toy {kind!r}: use one of {KINDS}")


def toy_outliers(kind: str = "ring", n: int = 40, seed: int = 1, where: str = None, with_groups: bool = False):
    """n outliers (n x 2, float32), centre ones first. where = "centre" (ring only: N(0, 0.3^2 I) in the ring's
    empty middle), "outside" (radius 3.5-4.5 around the ring; for the Gaussian, 3.5-4.5 Mahalanobis units from
    the mean) or "both" (n // 2 centre, the rest outside; the ring's default, "outside" the Gaussian's).
    with_groups=True returns (points, groups) with a "centre"/"outside" label per point."""
    where = where or ("both" if kind == "ring" else "outside")
    if kind not in KINDS or where not in ("centre", "outside", "both") or (kind == "gaussian" and where != "outside"):
        raise ValueError(f"no {where!r} outliers for the {kind!r} toy (the Gaussian's centre is its mode)")
    n_centre = {"centre": n, "outside": 0, "both": n // 2}[where]
    g = torch.Generator().manual_seed(seed)
    centre = 0.3 * torch.randn(n_centre, 2, generator=g, dtype=torch.float64)
    angle = 2 * math.pi * torch.rand(n - n_centre, generator=g, dtype=torch.float64)
    r = 3.5 + torch.rand(n - n_centre, generator=g, dtype=torch.float64)
    outside = torch.stack([r * angle.cos(), r * angle.sin()], 1)
    if kind == "gaussian":
        outside = outside @ torch.linalg.cholesky(torch.tensor(GAUSS_COV, dtype=torch.float64)).T
        outside = outside + torch.tensor(GAUSS_MEAN, dtype=torch.float64)
    points = torch.cat([centre, outside]).float()
    groups = np.array(["centre"] * n_centre + ["outside"] * (n - n_centre))
    return (points, groups) if with_groups else points


class ToyEps(ModelMixin, ConfigMixin):
    """eps_theta(x, t) for points: an MLP on [x, sin(w t), cos(w t)] (geometric frequencies w). Takes x as N x 2 or
    N x 2 x 1 x 1 and t as N ints, returns eps in x's shape: callable the way adlib.method.inversion expects."""

    @register_to_config
    def __init__(self, dim: int = 2, hidden: int = 64, depth: int = 3, freqs: int = 8):
        super().__init__()
        w = torch.exp(torch.linspace(0, math.log(200.0), freqs)) * math.pi / T
        self.register_buffer("freq", w, persistent=False)
        layers, width = [], dim + 2 * freqs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, x, t):
        a = t.to(self.freq)[:, None] * self.freq
        h = torch.cat([x.reshape(len(x), -1).to(a.dtype), a.sin(), a.cos()], 1)
        return self.net(h).view(x.shape)


def _image_shaped(points) -> torch.Tensor:
    return torch.as_tensor(np.asarray(points), dtype=torch.float32).reshape(-1, 2, 1, 1)


def train_toy(points, iters: int = 1000, batch: int = 256, lr: float = 3e-3, hidden: int = 64, depth: int = 3,
              seed: int = 0) -> ToyEps:
    """A ToyEps trained with adlib.schedule.training_loss (the DDPM loss of the real features) on the points as
    N x 2 x 1 x 1 maps; Adam with a cosine learning rate. Deterministic for a seed (its own generators; the global
    RNG is left as it was). The per-iteration losses are kept in `model.losses`."""
    z = _image_shaped(points)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ToyEps(hidden=hidden, depth=depth)
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    losses = []
    model.train()
    for _ in range(iters):
        loss = training_loss(model, z[torch.randint(0, len(z), (batch,), generator=g)], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.losses = losses
    return model.eval()


@torch.no_grad()
def mean_loss(model, points, repeats: int = 8, seed: int = 0) -> float:
    """training_loss over all points, averaged over `repeats` draws of (t, noise); eps = 0 scores about 1."""
    g, z = torch.Generator().manual_seed(seed), _image_shaped(points)
    return float(np.mean([training_loss(model, z, generator=g).item() for _ in range(repeats)]))


zero_eps = ZeroEps()  # the untrained control eps = 0: inversion then only rescales x by sqrt(abar_S / abar_0)


@torch.no_grad()
def trajectories(model, points, steps: int = 3, grid="reference") -> np.ndarray:
    """The S + 1 positions ((S + 1) x n x 2) of each point along the DDIM inversion on make_grid(steps, grid),
    one adlib.method.inversion.ddim_step per grid interval: the last one is adlib.method.inversion.invert's output."""
    x = _image_shaped(points)
    states, grid_points = [x], make_grid(steps, grid)
    for t_from, t_to in zip(grid_points, grid_points[1:]):
        eps = model(x, torch.full((len(x),), t_from, dtype=torch.long)).to(x.dtype)
        x = ddim_step(x, eps, ABAR[t_from].item(), ABAR[t_to].item())
        states.append(x)
    return torch.stack(states)[..., 0, 0].numpy()


def norm_nll(r) -> np.ndarray:
    """-log chi_2(r) = r^2 / 2 - log r: high where the prior's norms are rare, far out AND near 0."""
    return -np.log(np.maximum(chi_pdf(np.maximum(np.asarray(r, dtype=np.float64), 1e-12), 2), 1e-300))


def landing_numbers(normal_end, outlier_end, groups=None) -> dict:
    """AUROC (outliers = positive) of ||x_T|| (the NLL's ranking) and of -log chi_2(||x_T||), and the mean
    landing norm per class; with groups (a label per outlier) also both per group."""
    rn, ro = np.linalg.norm(normal_end, axis=1), np.linalg.norm(outlier_end, axis=1)
    out = {"mean_norm_normal": float(rn.mean()), "mean_norm_outlier": float(ro.mean())}
    sets = {"": np.ones(len(ro), bool)}
    if groups is not None:
        groups = np.asarray(groups)
        sets.update({f"_{name}": groups == name for name in dict.fromkeys(groups)})
    for suffix, keep in sets.items():
        labels = np.r_[np.zeros(len(rn)), np.ones(int(keep.sum()))]
        out[f"auroc_norm{suffix}"] = _auroc(labels, np.r_[rn, ro[keep]])
        out[f"auroc_typicality{suffix}"] = _auroc(labels, norm_nll(np.r_[rn, ro[keep]]))
        if suffix:
            out[f"mean_norm{suffix}"] = float(ro[keep].mean())
    return out


def _paths(states):
    """(S + 1) x n x 2 -> one line per point, separated by None, as x and y lists for a single trace."""
    pad = np.full((1, states.shape[1], 2), np.nan)
    xy = np.concatenate([states, pad]).transpose(1, 0, 2).reshape(-1, 2)
    return [None if np.isnan(v) else float(v) for v in xy[:, 0]], [None if np.isnan(v) else float(v) for v in xy[:, 1]]


def toy_figure(train, normal_states, outlier_states, groups=None, steps: int = None, grid="reference",
               height: int = 440):
    """Left: training points, then normal test points and outliers with their inversion paths (states:
    (S + 1) x n x 2, from trajectories) and landing points; right: histograms of the landing norms ||x_T|| of
    both against the chi_2 density of the prior. Returns (figure, landing_numbers(...)); the AUROCs in the title."""
    train, ns, os_ = np.asarray(train), np.asarray(normal_states), np.asarray(outlier_states)
    nums = landing_numbers(ns[-1], os_[-1], groups)
    steps = steps if steps is not None else len(ns) - 1
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.08, subplot_titles=[
        f"{steps} DDIM inversion steps ({grid} grid): from x₀ to x_T", "landing norms ‖x_T‖ against the prior"])
    fig.add_scatter(x=train[:, 0], y=train[:, 1], mode="markers", name="training points", row=1, col=1,
                    marker=dict(color="lightgray", size=3))
    for states, name, color, symbol in ((ns, "normal", NORMAL, "circle"), (os_, "outlier", ANOMALOUS, "x")):
        x, y = _paths(states)
        fig.add_scatter(x=states[0, :, 0], y=states[0, :, 1], mode="markers", name=f"{name} x₀", row=1, col=1,
                        marker=dict(color=color, size=6, symbol="circle-open"), legendgroup=name)
        fig.add_scatter(x=x, y=y, mode="lines", name=f"{name} paths", line=dict(color=color, width=1),
                        opacity=0.5, row=1, col=1, legendgroup=name)
        fig.add_scatter(x=states[-1, :, 0], y=states[-1, :, 1], mode="markers", name=f"{name} x_T", row=1, col=1,
                        marker=dict(color=color, size=7, symbol=symbol), legendgroup=name)
    angle = np.linspace(0, 2 * np.pi, 200)
    fig.add_scatter(x=np.cos(angle), y=np.sin(angle), mode="lines", name="‖x‖ = 1 (the χ₂ mode)", row=1, col=1,
                    line=dict(color="black", width=1, dash="dot"), hoverinfo="skip")
    rn, ro = np.linalg.norm(ns[-1], axis=1), np.linalg.norm(os_[-1], axis=1)
    for r, name, color in ((rn, "normal ‖x_T‖", NORMAL), (ro, "outlier ‖x_T‖", ANOMALOUS)):
        fig.add_histogram(x=r, histnorm="probability density", name=name, marker_color=color, opacity=0.6,
                          nbinsx=30, row=1, col=2)
    r = np.linspace(0, max(4.0, float(np.r_[rn, ro].max()) * 1.05), 300)
    fig.add_scatter(x=r, y=chi_pdf(r, 2), mode="lines", name="χ₂ density (the prior's ‖x‖)", row=1, col=2,
                    line=dict(color="black"))
    fig.update_xaxes(title_text="x₁", row=1, col=1)
    fig.update_yaxes(title_text="x₂", scaleanchor="x", row=1, col=1)
    fig.update_xaxes(title_text="‖x_T‖", row=1, col=2)
    fig.update_yaxes(title_text="density", row=1, col=2)
    fig.update_layout(barmode="overlay", height=height, margin=dict(t=90, b=40), title=(
        f"S = {steps}: AUROC of ‖x_T‖ (= NLL) {nums['auroc_norm']:.3f}, of −log χ₂(‖x_T‖) "
        f"{nums['auroc_typicality']:.3f}<br>mean ‖x_T‖: normal {nums['mean_norm_normal']:.2f}, outliers "
        f"{nums['mean_norm_outlier']:.2f}" + "".join(f", {g} {nums[f'mean_norm_{g}']:.2f}"
                                                     for g in dict.fromkeys(groups if groups is not None else []))))
    return fig, nums

"""Plotly figures and ipywidgets explorers for the notebooks.

Figure builders are plain functions (numbers in, `go.Figure` out); explorers wire widgets to them with
`observe` and keep the last figure in `.figure`, shown in an `ipywidgets.Output` below the controls.
The figure goes into the Output widget by setting its `outputs` state, not by displaying inside
`with out:`: papermill/nbclient imitate a captured Output widget by echoing every output back to the
kernel while the cell runs, and with ipykernel 7 that race lost the cell's final `idle` message, so
headless runs hung. Callbacks are ordinary methods, so tests drive them without a browser. Figures use plotly's default renderer (the `notebook` renderer embeds plotly.js and
random div ids into every output).
"""
import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from scipy.special import gammaln

from . import scoring
from .metrics import image_metrics

NORMAL, ANOMALOUS, DEFECT = "#1f77b4", "#d62728", "#ff7f0e"
DIMENSIONS = (1, 2, 4, 8, 16, 32, 64, 192, 768, 3072, 12288, 49152)  # 49152 = 192 x 16 x 16

# The paper's MVTec AD ablation (unified, image AUROC in %, DESIGN.md section 2): score -> {S: AUROC}.
PAPER_ABLATION = {
    "nll": {3: 96.1, 5: 95.2, 10: 93.0, 50: 89.7, 100: 89.4, 1000: 89.1},
    "diff": {3: 98.4, 5: 98.1, 10: 95.8, 50: 83.2, 100: 82.2, 1000: 82.0},
    "combined": {3: 99.0, 5: 98.9, 10: 98.4, 50: 96.0, 100: 95.7, 1000: 95.4},
}
PAPER_RECONSTRUCTION = {3: 64.9, 5: 75.0, 10: 97.9, 1000: 98.2}  # same weights, K denoising steps
SCORE_LABELS = {"nll": "NLL only", "diff": "Diff only", "combined": "NLL + Diff"}


def _auroc(labels, scores) -> float:
    return image_metrics(labels, scores)["image_auroc"]


# --------------------------------------------------------------------------- 01: the prior in d dimensions

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


def score_histograms(scores: dict, labels, names=("nll", "diff"), height=340, extra_title=""):
    """One panel per score: normal vs anomalous histograms, AUROC in each panel title."""
    labels = np.asarray(labels)
    aurocs = {k: _auroc(labels, scores[k]) for k in names}
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[
        f"{SCORE_LABELS.get(k, k)}: AUROC {aurocs[k]:.3f}" for k in names])
    for j, k in enumerate(names, 1):
        v = np.asarray(scores[k], dtype=np.float64)
        for lab, name, color in ((0, "normal", NORMAL), (1, "anomalous", ANOMALOUS)):
            fig.add_histogram(x=v[labels == lab], name=name, marker_color=color, opacity=0.6, nbinsx=30,
                              legendgroup=name, showlegend=j == 1, row=1, col=j)
        fig.update_xaxes(title_text=k, row=1, col=j)
    fig.update_layout(barmode="overlay", height=height, margin=dict(t=70, b=40), title=extra_title or None)
    return fig, aurocs


def display_data(fig) -> dict:
    """`fig` as one nbformat display_data output: the default renderer's mime bundle.

    Not IPython's display formatter: plotly figures have `_ipython_display_`, so formatting one displays
    it as a side effect (into the cell, or nowhere from a widget callback) and returns nothing."""
    import plotly.io as pio
    data = dict(fig._repr_mimebundle_())  # empty outside a kernel, where plotly picks no default renderer
    if "application/vnd.plotly.v1+json" not in data:
        data.update(pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict()))
    data["text/plain"] = f"<plotly figure: {fig.layout.title.text}>"
    return {"output_type": "display_data", "data": data, "metadata": {}}


class _Explorer:
    """`.widget` = the controls above an Output widget holding `.figure`; `display(explorer)` shows it."""
    figure = None

    def _wire(self, controls):
        import ipywidgets as w
        self.out = w.Output()
        self.widget = w.VBox([w.HBox(controls), self.out])
        for c in controls:
            c.observe(self.update, names="value")
        self.update()

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def _refresh(self):
        self.out.outputs = (display_data(self.figure),)


class PriorExplorer(_Explorer):
    """Sliders for d and for the shift / scale of an anomalous N(shift, scale^2 I) -> prior_figure."""

    def __init__(self, d: int = 192, shift: float = 0.0, scale: float = 0.8, n: int = 2000, seed: int = 0):
        import ipywidgets as w
        self.n, self.seed = n, seed
        options = sorted(set(DIMENSIONS) | {int(d)})
        self.d = w.SelectionSlider(options=options, value=int(d), description="d")
        self.shift = w.FloatSlider(value=shift, min=-1.0, max=1.0, step=0.05, description="shift")
        self.scale = w.FloatSlider(value=scale, min=0.5, max=1.5, step=0.01, description="scale")
        self.numbers = None
        self._wire([self.d, self.shift, self.scale])

    def update(self, change=None):
        self.figure, self.numbers = prior_figure(self.d.value, self.shift.value, self.scale.value, self.n, self.seed)
        self._refresh()
        return self.figure


class LocalAnomalyExplorer(_Explorer):
    """Sliders for the patch size and brightness of a local anomaly -> NLL vs Diff histograms."""

    def __init__(self, channels: int = 192, grid: int = 8, n: int = 200, patch: int = 2, local_scale: float = 2.0,
                 seed: int = 0):
        import ipywidgets as w
        self.channels, self.grid, self.n, self.seed = channels, grid, n, seed
        self.patch = w.IntSlider(value=patch, min=1, max=max(1, grid // 2), description="patch")
        self.local_scale = w.FloatSlider(value=local_scale, min=1.0, max=3.0, step=0.1, description="local scale")
        self.aurocs = None
        self._wire([self.patch, self.local_scale])

    def update(self, change=None):
        p, ls = self.patch.value, self.local_scale.value
        limit = math.sqrt(self.grid ** 2 / (p * p)) * 0.99
        if ls >= limit:  # keep E||x||^2 reachable: clamp rather than fail inside a callback
            ls = float(np.floor(limit * 10) / 10)
        x, labels = local_anomaly_latents(self.channels, self.grid, self.n, p, ls, self.seed)
        s = scoring.raw_scores(x)
        self.figure, self.aurocs = score_histograms(
            s, labels, extra_title=f"local anomaly: {p}x{p} positions x{ls:g}, the rest scaled to keep E‖x‖² = d")
        self._refresh()
        return self.figure


# --------------------------------------------------------------------------- 02: training

def loss_figure(loss_csv, window: int = 50):
    """RUN/loss.csv (iter, loss, lr) -> loss (raw and moving average) with the learning rate on a 2nd axis."""
    data = np.genfromtxt(loss_csv, delimiter=",", names=True)
    it, loss, lr = np.atleast_1d(data["iter"]), np.atleast_1d(data["loss"]), np.atleast_1d(data["lr"])
    w = max(1, min(window, len(loss)))
    smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=it, y=loss, mode="lines", name="loss", line=dict(color=NORMAL, width=1), opacity=0.35)
    fig.add_scatter(x=it[w - 1:], y=smooth, mode="lines", name=f"loss, mean of {w}", line=dict(color=NORMAL))
    fig.add_scatter(x=it, y=lr, mode="lines", name="learning rate", line=dict(color="gray", dash="dot"),
                    secondary_y=True)
    fig.update_layout(height=360, margin=dict(t=50, b=40), title="training loss (ε-prediction MSE)",
                      xaxis_title="iteration", legend=dict(x=0.6, y=0.99))
    fig.update_yaxes(title_text="MSE", secondary_y=False)
    fig.update_yaxes(title_text="lr", secondary_y=True, showgrid=False, tickformat=".0e")
    return fig


def bar_figure(values: dict, title: str, yaxis: str = "image AUROC", ymin: float = 0.0):
    """{group: {series: value}} -> grouped bars."""
    fig = go.Figure()
    groups = list(values)
    series = sorted({s for g in values.values() for s in g}, key=lambda s: list(SCORE_LABELS).index(s)
                    if s in SCORE_LABELS else 99)
    for s in series:
        fig.add_bar(x=groups, y=[values[g].get(s) for g in groups], name=SCORE_LABELS.get(s, s),
                    text=[f"{values[g][s]:.3f}" if s in values[g] else "" for g in groups], textposition="outside")
    fig.update_layout(barmode="group", height=340, title=title, yaxis=dict(title=yaxis, range=[ymin, 1.05]),
                      margin=dict(t=50, b=40))
    return fig


# --------------------------------------------------------------------------- 03: latents

def _image_hwc(image) -> np.ndarray:
    a = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.clip(a * 255 if a.max() <= 1.0 else a, 0, 255).astype(np.uint8)


def trajectory_figure(states, index: int, points=None, height: int = 260):
    """Norm maps ||x_t[:, i, j]|| of one image at every state of an inversion trajectory (z0 -> zT)."""
    maps = [scoring.norm_map(s[index:index + 1])[0].numpy() for s in states]
    titles = [f"t = {t}" if points is not None else f"step {k}" for k, t in
              enumerate(points if points is not None else range(len(maps)))]
    titles[0] = "z₀ (features)"
    titles[-1] += " (x_T)" if points is None or points[-1] >= 999 else ""
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=titles, horizontal_spacing=0.02)
    for k, m in enumerate(maps, 1):
        fig.add_heatmap(z=m, coloraxis=None, colorscale="Viridis", showscale=k == len(maps),
                        colorbar=dict(len=0.9, thickness=10), row=1, col=k)
        fig.update_xaxes(showticklabels=False, row=1, col=k)
        fig.update_yaxes(showticklabels=False, autorange="reversed", scaleanchor=f"x{k if k > 1 else ''}",
                         row=1, col=k)
    fig.update_layout(height=height, margin=dict(t=60, b=10, l=10, r=10),
                      title="per-position norm map along the inversion (each panel on its own colour scale)")
    return fig


def overlay_figure(image, amap, mask=None, title: str = "", opacity: float = 0.5, height: int = 330, zrange=None):
    """Image with the upsampled norm map on top, beside the ground-truth mask (when there is one).

    zrange: (min, max) of the colour scale, e.g. over the whole test set, so that images are comparable
    (default: this map's own range, which makes any map look 'hot' somewhere)."""
    img = _image_hwc(image)
    size = img.shape[0]
    heat = scoring.pixel_map(torch.as_tensor(np.asarray(amap))[None], size)[0].numpy()
    cols = 3 if mask is not None else 2
    names = ["image", "norm map (upsampled) on the image"] + (["ground-truth mask"] if mask is not None else [])
    fig = make_subplots(rows=1, cols=cols, subplot_titles=names, horizontal_spacing=0.03)
    fig.add_image(z=img, row=1, col=1)
    fig.add_image(z=img, row=1, col=2)
    zmin, zmax = zrange if zrange is not None else (None, None)
    fig.add_heatmap(z=heat, colorscale="Inferno", opacity=opacity, colorbar=dict(title="‖x‖", thickness=10),
                    zmin=zmin, zmax=zmax, row=1, col=2)
    if mask is not None:
        m = np.asarray(mask, dtype=np.uint8) * 255
        fig.add_image(z=np.repeat(m[..., None], 3, axis=-1), row=1, col=3)
    for k in range(1, cols + 1):
        fig.update_xaxes(showticklabels=False, row=1, col=k)
        fig.update_yaxes(showticklabels=False, autorange="reversed", row=1, col=k)
    fig.update_layout(height=height, margin=dict(t=60, b=10, l=10, r=10), title=title or None)
    return fig


def roc_figure(labels, scores: dict, height: int = 360):
    """ROC curves, one per score, AUROC (adlib.metrics) in the legend."""
    from sklearn.metrics import roc_curve
    fig = go.Figure()
    for k, v in scores.items():
        fpr, tpr, _ = roc_curve(labels, v)
        fig.add_scatter(x=fpr, y=tpr, mode="lines", name=f"{SCORE_LABELS.get(k, k)} (AUROC {_auroc(labels, v):.3f})")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="gray"), name="chance")
    fig.update_layout(height=height, width=520, margin=dict(t=50, b=40), title="image-level ROC",
                      xaxis_title="false-positive rate", yaxis_title="true-positive rate")
    return fig


def position_labels(labels, masks=None, grid: int = None):
    """Per-position class of each image's latent: 0 normal image, 1 anomalous image outside the defect,
    2 inside the defect (the mask, downsampled by area to the latent grid, covers >= 1/4 of the cell)."""
    labels = np.asarray(labels)
    out = np.repeat(labels[:, None, None], grid, 1).repeat(grid, 2).astype(int)
    if masks is not None:
        m = torch.nn.functional.adaptive_avg_pool2d(torch.as_tensor(np.asarray(masks), dtype=torch.float32)[:, None],
                                                    grid)[:, 0].numpy()
        out[(labels[:, None, None] == 1) & (m >= 0.25)] = 2
    return out


def pca_figure(latents, pos_labels, max_points: int = 3000, seed: int = 0, height: int = 420):
    """2-D PCA of per-position latent vectors (B x C x h x w -> B*h*w points), coloured by position class.

    The principal axes are fitted on all positions; the plot shows a seeded subsample of them."""
    x = torch.as_tensor(latents).double()
    pts = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    cls = np.asarray(pos_labels).reshape(-1)
    centred = pts - pts.mean(0)
    _, s, v = torch.linalg.svd(centred, full_matrices=False)
    xy = (centred @ v[:2].T).numpy()
    explained = (s[:2] ** 2 / (s ** 2).sum()).numpy()
    keep = np.random.default_rng(seed).permutation(len(xy))[:max_points]
    fig = go.Figure()
    for c, name, color in ((0, "normal image", NORMAL), (1, "anomalous image, outside defect", DEFECT),
                           (2, "inside defect (mask)", ANOMALOUS)):
        k = keep[cls[keep] == c]
        if len(k):
            fig.add_scattergl(x=xy[k, 0], y=xy[k, 1], mode="markers", name=f"{name} ({(cls == c).sum()})",
                              marker=dict(color=color, size=4, opacity=0.6))
    fig.update_layout(height=height, margin=dict(t=50, b=40), title="PCA of per-position latents x_T[:, i, j]",
                      xaxis_title=f"PC1 ({explained[0]:.0%})", yaxis_title=f"PC2 ({explained[1]:.0%})")
    return fig, xy


class LatentExplorer(_Explorer):
    """Choose an image, an inversion step and a score: overlay of that step's norm map, the mask, and
    where the image falls in the score's distribution over the test set.

    images: N x 3 x H x W in [0, 1]; states: list of S + 1 tensors N x C x h x w (z0 ... x_T);
    scores: {name: N values}; labels: N ints; masks: N x H x W bools or None; names: N strings.
    """

    def __init__(self, images, states, scores: dict, labels, masks=None, names=None, points=None):
        import ipywidgets as w
        self.images, self.states, self.scores = images, states, {k: np.asarray(v) for k, v in scores.items()}
        self.labels, self.masks, self.points = np.asarray(labels), masks, points
        maps = [scoring.norm_map(st) for st in states]  # one colour range per step, shared by all images
        self.zrange = [(float(m.min()), float(m.max())) for m in maps]
        self.names = list(names) if names is not None else [f"image {i}" for i in range(len(self.labels))]
        options = [(f"{n} ({'anomalous' if l else 'normal'})", i) for i, (n, l) in enumerate(zip(self.names, self.labels))]
        first = int(np.argmax(self.labels)) if self.labels.any() else 0
        self.image = w.Dropdown(options=options, value=first, description="image", layout=w.Layout(width="420px"))
        self.step = w.IntSlider(value=len(states) - 1, min=0, max=len(states) - 1, description="step")
        self.score = w.Dropdown(options=list(self.scores), value=list(self.scores)[-1], description="score")
        self._wire([self.image, self.step, self.score])

    def figure_for(self, index: int, step: int, score: str):
        amap = scoring.norm_map(self.states[step][index:index + 1])[0]
        mask = None if self.masks is None else np.asarray(self.masks[index])
        t = self.points[step] if self.points is not None else step
        img = _image_hwc(self.images[index])
        heat = scoring.pixel_map(amap[None], img.shape[0])[0].numpy()
        cols = 3 if mask is not None else 2
        titles = [f"norm map at step {step} (t = {t})", "ground-truth mask"][:cols - 1] + [f"{score} of the images in the explorer"]
        fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.06)
        fig.add_image(z=img, row=1, col=1)
        fig.add_heatmap(z=heat, colorscale="Inferno", opacity=0.5, showscale=False, zmin=self.zrange[step][0],
                        zmax=self.zrange[step][1], row=1, col=1)
        if mask is not None:
            fig.add_image(z=np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1), row=1, col=2)
        for k in range(1, cols):
            fig.update_xaxes(showticklabels=False, row=1, col=k)
            fig.update_yaxes(showticklabels=False, autorange="reversed", row=1, col=k)
        v = self.scores[score]
        for lab, name, color in ((0, "normal", NORMAL), (1, "anomalous", ANOMALOUS)):
            fig.add_histogram(x=v[self.labels == lab], name=name, marker_color=color, opacity=0.6, nbinsx=25,
                              row=1, col=cols)
        fig.add_vline(x=float(v[index]), line_color="black", line_width=2, row=1, col=cols,
                      annotation_text="this image")
        fig.update_layout(barmode="overlay", height=340, margin=dict(t=60, b=30, l=10, r=10),
                          title=f"{self.names[index]}: {score} = {v[index]:.4g}")
        return fig

    def update(self, change=None):
        self.figure = self.figure_for(self.image.value, self.step.value, self.score.value)
        self._refresh()
        return self.figure


# --------------------------------------------------------------------------- 04: sweeps and the paper

def sweep_figure(rows, y: str = "image_auroc", title: str = "", yaxis: str = "image AUROC", log_y: bool = False):
    """rows: dicts with steps, grid, score and `y` -> one line per (score, grid) against S (log axis)."""
    fig = go.Figure()
    keys = sorted({(r["score"], r["grid"]) for r in rows}, key=lambda k: (list(SCORE_LABELS).index(k[0])
                                                                          if k[0] in SCORE_LABELS else 9, k[1]))
    dash = {"paper": "solid", "reference": "dash"}
    for score, grid in keys:
        rr = sorted((r for r in rows if r["score"] == score and r["grid"] == grid), key=lambda r: r["steps"])
        fig.add_scatter(x=[r["steps"] for r in rr], y=[r[y] for r in rr], mode="lines+markers",
                        name=f"{SCORE_LABELS.get(score, score)}, {grid} grid", line=dict(dash=dash.get(grid)))
    xs = sorted({r["steps"] for r in rows})
    ys = [r[y] for r in rows if r.get(y) is not None]
    yrange = None if log_y or not ys else [min(0.5, min(ys) - 0.02), max(1.0, max(ys)) + 0.01]
    fig.update_layout(height=380, margin=dict(t=50, b=40), title=title or None,
                      xaxis=dict(type="log", title="inversion steps S", tickvals=xs),
                      yaxis=dict(title=yaxis, type="log" if log_y else None, range=yrange))
    return fig


def paper_vs_measured_figure(measured: dict, title: str = "the paper (MVTec AD) vs measured here"):
    """measured: score -> {S: AUROC in [0, 1]}; the paper's curves dashed, in %."""
    fig = go.Figure()
    colors = dict(zip(SCORE_LABELS, ("#1f77b4", "#2ca02c", "#d62728")))
    for k, label in SCORE_LABELS.items():
        p = PAPER_ABLATION[k]
        fig.add_scatter(x=list(p), y=list(p.values()), mode="lines+markers", name=f"{label}, paper",
                        line=dict(dash="dash", color=colors[k]))
        if k in measured:
            m = dict(sorted(measured[k].items()))
            fig.add_scatter(x=list(m), y=[100 * v for v in m.values()], mode="lines+markers",
                            name=f"{label}, measured", line=dict(color=colors[k]))
    fig.update_layout(height=380, margin=dict(t=50, b=40), title=title,
                      xaxis=dict(type="log", title="inversion steps S"), yaxis_title="image AUROC (%)")
    return fig


def speed_auroc_figure(rows, backbone_ips: float = None, title: str = "speed vs image AUROC (same features, one process)"):
    """rows: method rows of adlib.bench (name, image_auroc, images_per_second, score?) -> scatter, log x;
    backbone_ips: the backbone alone, drawn as a vertical line (the ceiling of every method's speed)."""
    fig = go.Figure()
    families = {"invad": "InvAD (ours)", "reconstruction": "reconstruction", "padim": "PaDiM", "knn": "kNN"}
    symbols = {"invad": "circle", "reconstruction": "square", "padim": "diamond", "knn": "cross"}
    for fam, label in families.items():
        rr = [r for r in rows if r["name"].startswith(fam)]
        if not rr:
            continue
        text = [r["name"].replace(fam, "").strip() + (f" {r['score']}" if r.get("score") else "") for r in rr]
        fig.add_scatter(x=[r["images_per_second"] for r in rr], y=[r["image_auroc"] for r in rr], text=text,
                        mode="markers+text", textposition="top center", textfont=dict(size=9), name=label,
                        marker=dict(size=10, symbol=symbols[fam]))
    ys = [r["image_auroc"] for r in rows]
    lo = min([0.5] + ys) - 0.02
    if backbone_ips:  # a trace, not a shape: shapes on log axes take log10 coordinates
        fig.add_scatter(x=[backbone_ips, backbone_ips], y=[lo, 1.02], mode="lines", name="backbone alone",
                        line=dict(color="gray", dash="dot"))
    fig.update_layout(height=420, margin=dict(t=50, b=40), title=title, yaxis_range=[lo, 1.02],
                      xaxis=dict(type="log", title="images / s (decoded image -> backbone -> score)"),
                      yaxis_title="image AUROC")
    return fig


def ablation_markdown(paper: dict, measured: dict, steps, where: str = "here") -> str:
    """The paper's table (%, score -> {S: AUROC}) and the measured one ([0, 1]) interleaved row by row as
    Markdown: columns are S, '–' where a table has no value."""
    head = "| score | source | " + " | ".join(f"S={s}" for s in steps) + " |\n|---|---|" + "---|" * len(steps) + "\n"
    rows = []
    for k, label in SCORE_LABELS.items():
        for source, table, scale in (("paper, MVTec AD", paper, 1.0), (where, measured, 100.0)):
            cells = ["–" if table.get(k, {}).get(s) is None else f"{scale * table[k][s]:.1f}" for s in steps]
            rows.append(f"| {label} | {source} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def _direction(change: float, flat: float = 1.0) -> str:
    return "stays flat" if abs(change) < flat else ("falls" if change < 0 else "rises")


def _ranking(values: dict, flat: float) -> str:
    """'A (99.0) > B (98.1) ≈ C (98.0)' with ≈ between neighbours closer than `flat` points."""
    keys = sorted(values, key=lambda k: -values[k])
    out = f"{SCORE_LABELS[keys[0]]} ({values[keys[0]]:.1f})"
    for a, b in zip(keys, keys[1:]):
        out += f" {'≈' if values[a] - values[b] < flat else '>'} {SCORE_LABELS[b]} ({values[b]:.1f})"
    return out


def compare_to_paper(measured: dict, reconstruction: dict = None, flat: float = 1.0) -> list:
    """Sentences saying where the measured ablation agrees with the paper's and where it differs.

    measured: score -> {S: AUROC in [0, 1]} (paper grid); reconstruction: {K: best AUROC over r in [0, 1]}.
    Everything said is computed from the two tables; differences under `flat` points count as none.
    """
    out = []
    values = [v for k in SCORE_LABELS for v in measured.get(k, {}).values()]
    if values and min(values) >= 0.995:
        out.append(f"Every measured AUROC is at the ceiling (≥ {100 * min(values):.1f}): this data is too easy to show "
                   f"how S matters, so the trends below cannot agree with the paper's falls; use harder data "
                   f"(`--profile cpu` on ELPV, or MVTec AD).")
    for k, label in SCORE_LABELS.items():
        common = sorted(set(PAPER_ABLATION[k]) & set(measured.get(k, {})))
        if len(common) < 2:
            continue
        a, b = common[0], common[-1]
        p = PAPER_ABLATION[k][b] - PAPER_ABLATION[k][a]
        m = 100 * (measured[k][b] - measured[k][a])
        same = _direction(p, flat) == _direction(m, flat)
        out.append(f"{label}: from S={a} to S={b} the paper {_direction(p, flat)} "
                   f"({PAPER_ABLATION[k][a]:.1f} → {PAPER_ABLATION[k][b]:.1f}, {p:+.1f} points); here it "
                   f"{_direction(m, flat)} ({100 * measured[k][a]:.1f} → {100 * measured[k][b]:.1f}, {m:+.1f}) — "
                   f"{'the same trend' if same else 'a different trend'}.")
    shared = set(PAPER_ABLATION["nll"])
    for k in SCORE_LABELS:
        shared &= set(measured.get(k, {}))
    s0 = min(shared, default=None)
    if s0 is not None:
        paper = {k: PAPER_ABLATION[k][s0] for k in SCORE_LABELS}
        here = {k: 100 * measured[k][s0] for k in SCORE_LABELS}
        # the orders disagree when some pair is clearly (>= flat) ordered one way here and the other way there
        clash = [(a, b) for a in SCORE_LABELS for b in SCORE_LABELS
                 if paper[a] > paper[b] and here[b] - here[a] >= flat]
        ties = any(abs(here[a] - here[b]) < flat for a in SCORE_LABELS for b in SCORE_LABELS if a < b)
        verdict = ("a different order" if clash else
                   "no contradiction, but ties here cannot confirm the paper's order" if ties else "the same order")
        out.append(f"At S={s0} the paper ranks {_ranking(paper, flat)}; here: {_ranking(here, flat)} — {verdict}.")
        gap = here["combined"] - paper["combined"]
        out.append(f"NLL + Diff at S={s0} is {abs(gap):.1f} points {'below' if gap < 0 else 'above'} the paper's "
                   f"{paper['combined']:.1f} (other data, other model size: compare trends, not levels).")
        if reconstruction:
            ks = sorted(reconstruction)
            few, many = ks[0], ks[-1]
            inv, rec_few = here["combined"], 100 * reconstruction[few]
            paper_gap = PAPER_ABLATION["combined"][3] - PAPER_RECONSTRUCTION[3]
            d = inv - rec_few
            verdict = ("agrees: few-step reconstruction is clearly worse" if d >= flat else
                       "differs: few-step reconstruction is as good here" if d > -flat else
                       "differs: few-step reconstruction is better here")
            out.append(f"Reconstruction with K={few} steps reaches {rec_few:.1f} vs InvAD's {inv:.1f} at S={s0} "
                       f"({d:+.1f} points for InvAD; the paper: {paper_gap:+.1f} at S=3) — {verdict}.")
            if many != few:
                dk = 100 * (reconstruction[many] - reconstruction[few])
                out.append(f"More reconstruction steps (K={few} → {many}) change its AUROC by {dk:+.1f} points; the "
                           f"paper's rises from {PAPER_RECONSTRUCTION[3]:.1f} to {PAPER_RECONSTRUCTION[10]:.1f} from "
                           f"K=3 to 10 — {'the same direction' if dk >= flat else 'not seen here'}.")
    return out

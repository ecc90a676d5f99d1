"""Plotly figure builders for the notebooks: numbers in, `go.Figure` out.

Training (loss curve, grouped bars), inverted latents (trajectory norm maps, map over the image beside
its mask, score histograms, ROC, PCA of per-position latents) and the sweeps (AUROC or speed against S,
speed against AUROC). Figures use plotly's default renderer (the `notebook` renderer embeds plotly.js
and random div ids into every output).
"""
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from adlib.method import scoring
from adlib.teach.viz.base import ANOMALOUS, DEFECT, NORMAL, SCORE_LABELS, _auroc, _image_hwc


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
    """ROC curves, one per score, AUROC (adlib.evaluation.metrics) in the legend."""
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


def pca_figure(latents, pos_labels, max_points: int = 3000, seed: int = 0, height: int = 420, has_masks: bool = None):
    """2-D PCA of per-position latent vectors (B x C x h x w -> B*h*w points), coloured by position class.

    The principal axes are fitted on all positions; the plot shows a seeded subsample of them. has_masks:
    whether class 1 means "outside the defect" (None: when some position is inside one, class 2); without
    masks class 1 is simply an anomalous image's position."""
    x = torch.as_tensor(latents).double()
    pts = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    cls = np.asarray(pos_labels).reshape(-1)
    centred = pts - pts.mean(0)
    _, s, v = torch.linalg.svd(centred, full_matrices=False)
    xy = (centred @ v[:2].T).numpy()
    explained = (s[:2] ** 2 / (s ** 2).sum()).numpy()
    keep = np.random.default_rng(seed).permutation(len(xy))[:max_points]
    fig = go.Figure()
    has_masks = bool((cls == 2).any()) if has_masks is None else has_masks
    for c, name, color in ((0, "normal image", NORMAL),
                           (1, "anomalous image, outside defect" if has_masks else "anomalous image", DEFECT),
                           (2, "inside defect (mask)", ANOMALOUS)):
        k = keep[cls[keep] == c]
        if len(k):
            fig.add_scattergl(x=xy[k, 0], y=xy[k, 1], mode="markers", name=f"{name} ({(cls == c).sum()})",
                              marker=dict(color=color, size=4, opacity=0.6))
    fig.update_layout(height=height, margin=dict(t=50, b=40), title="PCA of per-position latents x_T[:, i, j]",
                      xaxis_title=f"PC1 ({explained[0]:.0%})", yaxis_title=f"PC2 ({explained[1]:.0%})")
    return fig, xy


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


def speed_auroc_figure(rows, backbone_ips: float = None,
                       title: str = "speed vs image AUROC (same features, one process)"):
    """rows: method rows of adlib.evaluation.bench (name, image_auroc, images_per_second, score?) -> scatter, log x;
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

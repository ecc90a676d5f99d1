"""Notebook 03's lessons on the inversion itself: why DDIM inversion is inexact, the conventions at the two
ends of the schedule, and inversion beside reconstruction on one image (with its cost in network calls).

Why inexact. The forward process gives x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, so with the network's
guess eps(x_t, t): x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t). A step to t' re-noises that guess,
x_t' = sqrt(abar_t') x0_hat + sqrt(1 - abar_t') eps, *reusing eps(x_t, t)*: the exact step would need eps
along the whole way to t', and eps(x_t', t') cannot be known before x_t' is. DDIM sampling from t' back to t
evaluates eps(x_t', t') instead, so sample(invert(z)) returns z only where eps does not change along the step
(e.g. eps = 0 or eps independent of x and t); the error shrinks as the steps get shorter (larger S).

Cost. InvAD calls the network once per inversion step (NFE = S). Reconstruction (adlib.evaluation.baselines) noises z to
t_r = r (T - 1) and denoises it in K DDIM steps: NFE = K (fewer when K > t_r, as the grid merges repeats).
`CountingModel` counts the calls instead of trusting either formula.
"""
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from adlib.evaluation.baselines import reconstruct
from adlib.evaluation.metrics import image_metrics
from adlib.method import scoring
from adlib.method.inversion import invert, make_grid, sample
from adlib.schedule import ABAR, T
from adlib.teach.viz.base import _image_hwc
from adlib.teach.viz.explorers import _Explorer

ROUND_TRIP_STEPS = (1, 2, 3, 5, 10, 20, 50)
S_OPTIONS = (1, 2, 3, 5, 10, 20, 50)


class CountingModel:
    """Wraps an eps-network and counts its calls (network function evaluations, NFE)."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)


def round_trip_error(model, z: torch.Tensor, steps: int, grid="paper") -> np.ndarray:
    """Per-sample relative error ||sample(invert(z)) - z|| / ||z|| on the same S-step grid (clean=False).

    Only grids that end at t < T can be walked back: at abar = 0 (the reference grid's landing point) the
    latent is eps alone and holds nothing of x0_hat, so sampling from there is refused."""
    points = make_grid(steps, grid)
    if ABAR[points[-1]] == 0:
        raise ValueError(f"the {grid} grid lands on abar = 0 (t = {T}), where x_T = eps: no way back; "
                         "use the paper grid (ends at t = 999)")
    back = sample(model, invert(model, z, points), points, clean=False)
    return ((back - z).flatten(1).norm(dim=1) / z.flatten(1).norm(dim=1)).double().cpu().numpy()


def round_trip_curve(model, z: torch.Tensor, steps=ROUND_TRIP_STEPS, grid="paper") -> dict:
    """{S: per-sample relative round-trip errors} for each S."""
    return {int(s): round_trip_error(model, z, int(s), grid) for s in steps}


def round_trip_figure(curve: dict, title: str = "round trip sample(invert(z)) vs z, paper grid"):
    """Median relative round-trip error against S (log-log), with the 10-90 % range of the samples."""
    s = sorted(curve)
    med = [float(np.median(curve[k])) for k in s]
    lo = [float(np.quantile(curve[k], 0.1)) for k in s]
    hi = [float(np.quantile(curve[k], 0.9)) for k in s]
    fig = go.Figure()
    fig.add_scatter(x=s + s[::-1], y=hi + lo[::-1], fill="toself", mode="none", fillcolor="rgba(31,119,180,0.2)",
                    name="10-90 % of images")
    fig.add_scatter(x=s, y=med, mode="lines+markers", name="median", line=dict(color="#1f77b4"))
    fig.update_layout(height=340, width=560, title=title, margin=dict(t=50, b=40),
                      xaxis=dict(title="inversion steps S", type="log", tickvals=s),
                      yaxis=dict(title="‖sample(invert(z)) − z‖ / ‖z‖", type="log"))
    return fig


def grid_table(steps: int) -> list:
    """Rows (grid, k, t_k, abar_{t_k}, whether eps is evaluated there) of both grids for this S."""
    rows = []
    for grid in ("paper", "reference"):
        points = make_grid(steps, grid)
        rows += [dict(grid=grid, k=k, t=t, abar=float(ABAR[t]), eps_here=k < len(points) - 1)
                 for k, t in enumerate(points)]
    return rows


def grid_markdown(steps: int) -> str:
    """Both grids for this S as one markdown table, ᾱ at every point."""
    lines = ["| grid | k | t_k | ᾱ_{t_k} | ε evaluated here? |", "|---|---|---|---|---|"]
    for r in grid_table(steps):
        note = "yes" if r["eps_here"] else ("no: landing point" + (", appended ᾱ = 0" if r["t"] == T else ""))
        lines.append(f"| {r['grid']} | {r['k']} | {r['t']} | {r['abar']:.4g} | {note} |")
    return "\n".join(lines)


def side_by_side(model, z: torch.Tensor, r: float, k: int, steps: int, grid="paper", seed: int = 0) -> dict:
    """One image's features z (1 x C x h x w) scored both ways, maps h x w.

    Reconstruction at (r, K): z_hat, its per-position norm and the error map ||z_hat - z|| (its image score
    is the map's max); InvAD at S: the norm map ||x_T[:, i, j]||, NLL and Diff. NFE counted, not assumed."""
    counter = CountingModel(model)
    z_hat = reconstruct(counter, z, r, k, seed)
    nfe_rec, counter.calls = counter.calls, 0
    x_T = invert(counter, z, make_grid(steps, grid))
    raw = scoring.raw_scores(x_T)
    err = (z_hat - z).norm(dim=1)[0]
    return {"features": z[0].norm(dim=0), "recon": z_hat[0].norm(dim=0), "recon_error": err,
            "invad": raw["map"][0], "recon_score": float(err.max()), "nll": float(raw["nll"][0]),
            "diff": float(raw["diff"][0]), "nfe_reconstruction": nfe_rec, "nfe_invad": counter.calls,
            "t_r": max(1, int(round(r * (T - 1))))}


def cell_mask(mask, grid: int) -> np.ndarray:
    """A pixel mask (H x W) averaged down to the latent grid, >= 1/4 covered = a defect cell (as PCA's)."""
    m = torch.nn.functional.adaptive_avg_pool2d(torch.as_tensor(np.asarray(mask), dtype=torch.float32)[None, None],
                                                grid)[0, 0].numpy()
    return m >= 0.25


def contrast_kind(mask, grid: int) -> str:
    """"auroc" when the mask marks some but not all cells of the latent grid, else "peak"."""
    if mask is None:
        return "peak"
    inside = cell_mask(mask, grid)
    return "auroc" if inside.any() and not inside.all() else "peak"


def map_contrast(amap, mask=None) -> float:
    """How well a map singles out the defect: the AUROC of its cells inside vs outside the mask when the mask
    marks some cells (`contrast_kind` "auroc"), else the peak over the median (max / median, "peak")."""
    a = np.asarray(amap, dtype=np.float64)
    if contrast_kind(mask, a.shape[-1]) == "auroc":
        return image_metrics(cell_mask(mask, a.shape[-1]).reshape(-1).astype(int), a.reshape(-1))["image_auroc"]
    return float(a.max() / max(np.median(a), 1e-12))


def side_by_side_figure(image, result: dict, mask=None, title: str = "", height: int = 300):
    """The image (and mask) beside ‖z‖, the reconstruction ‖ẑ‖, its error ‖ẑ − z‖ and InvAD's ‖x_T‖ per
    position, each map on its own colour scale; subplot titles carry each map's `map_contrast`."""
    img = _image_hwc(image)
    c_rec, c_inv = map_contrast(result["recon_error"], mask), map_contrast(result["invad"], mask)
    what = "AUROC in/out of mask" if contrast_kind(mask, result["invad"].shape[-1]) == "auroc" else "max/median"
    panels = [("image", None)] + ([("mask", None)] if mask is not None else []) + [
        ("features ‖z‖", result["features"]), ("reconstruction ‖ẑ‖", result["recon"]),
        (f"recon. error ‖ẑ − z‖<br>{what} {c_rec:.2f}", result["recon_error"]),
        (f"InvAD norm map ‖x_T‖<br>{what} {c_inv:.2f}", result["invad"])]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], horizontal_spacing=0.02)
    fig.add_image(z=img, row=1, col=1)
    if mask is not None:
        fig.add_image(z=np.repeat((np.asarray(mask, dtype=np.uint8) * 255)[..., None], 3, axis=-1), row=1, col=2)
    for col, (_, amap) in enumerate(panels, 1):
        if amap is not None:
            fig.add_heatmap(z=np.asarray(amap, dtype=np.float64), colorscale="Inferno", showscale=False, row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
        fig.update_yaxes(showticklabels=False, autorange="reversed", row=1, col=col,
                         **({} if amap is None else {"scaleanchor": f"x{col}"}))
    fig.update_annotations(font_size=11)
    fig.update_layout(height=height, margin=dict(t=80, b=10, l=10, r=10), title=title or None)
    return fig


class InversionVsReconstruction(_Explorer):
    """One image scored both ways, with sliders r and K (reconstruction) and S (InvAD): the maps side by side
    and the network evaluations each costs. `compute` / `figure_for` are the callbacks' logic."""

    def __init__(self, model, z, image, mask=None, name: str = "", r: float = 0.3, k: int = 10, steps: int = 3,
                 grid="paper", seed: int = 0):
        import ipywidgets as w
        self.model, self.z, self.image, self.mask, self.name = model, z[:1], image, mask, name
        self.grid, self.seed, self.result = grid, seed, None
        self.r = w.FloatSlider(value=r, min=0.05, max=1.0, step=0.05, description="r", continuous_update=False)
        self.k = w.IntSlider(value=k, min=1, max=50, description="K", continuous_update=False)
        self.s = w.SelectionSlider(options=sorted(set(S_OPTIONS) | {int(steps)}), value=int(steps), description="S",
                                   continuous_update=False)
        self._wire([self.r, self.k, self.s])

    def compute(self, r: float, k: int, steps: int) -> dict:
        out = side_by_side(self.model, self.z, r, k, steps, self.grid, self.seed)
        out.update(r=r, k=k, steps=steps, contrast_reconstruction=map_contrast(out["recon_error"], self.mask),
                   contrast_invad=map_contrast(out["invad"], self.mask),
                   contrast_kind=contrast_kind(self.mask, out["invad"].shape[-1]))
        return out

    def figure_for(self, r: float, k: int, steps: int):
        self.result = res = self.compute(r, k, steps)
        title = (f"{self.name}: reconstruction r = {r:g} (t_r = {res['t_r']}), K = {k}: "
                 f"{res['nfe_reconstruction']} network evaluations · InvAD S = {steps} ({self.grid} grid): "
                 f"{res['nfe_invad']}")
        return side_by_side_figure(self.image, res, self.mask, title=title)

    def update(self, change=None):
        self.figure = self.figure_for(float(self.r.value), int(self.k.value), int(self.s.value))
        self._refresh()
        return self.figure


def round_trip_sentence(curve: dict) -> str:
    """A sentence on the measured round trip, read from the numbers (not assumed)."""
    s = sorted(curve)
    med = {k: float(np.median(curve[k])) for k in s}
    lo, hi = s[0], s[-1]
    falls = all(med[b] <= med[a] for a, b in zip(s, s[1:]))
    trend = ("falls at every step of S" if falls else
             "falls overall but not at every S" if med[hi] < med[lo] else "does not fall with S here")
    return (f"The median relative round-trip error is {med[lo]:.3g} at S = {lo} and {med[hi]:.3g} at S = {hi} "
            f"({med[lo] / max(med[hi], 1e-300):.3g}× smaller): it {trend}. "
            + (f"At S = 1 the way back misses z by {med[lo]:.2g} times its own norm: the ε the network gives at "
               "t = 999 is not the ε(z, 0) used on the way out, and dividing by √ᾱ_999 ≈ 0.0064 blows up the mismatch."
               if lo == 1 and med[lo] > 0.3 else ""))


def cost_sentence(result: dict, t_r=None) -> str:
    """The network evaluations of a side-by-side result: reconstruction (at r, K; t_r if given) against InvAD at S."""
    n_rec, n_inv = result["nfe_reconstruction"], result["nfe_invad"]
    at = f"r = {result['r']:g}" + (f" (t_r = {t_r})" if t_r is not None else "")
    return (f"Reconstruction at {at}, K = {result['k']} cost {n_rec} network evaluations, InvAD at "
            f"S = {result['steps']} cost {n_inv}"
            + (f" ({n_rec / n_inv:.3g}× fewer)." if n_inv < n_rec else "." if n_inv == n_rec else
               f" ({n_inv / n_rec:.3g}× more)."))

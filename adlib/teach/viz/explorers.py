"""ipywidgets explorers: controls wired with `observe` to the figure builders.

Each explorer keeps the last figure in `.figure`, shown in an `ipywidgets.Output` below the controls.
The figure goes into the Output widget by setting its `outputs` state, not by displaying inside
`with out:`: papermill/nbclient imitate a captured Output widget by echoing every output back to the
kernel while the cell runs, and with ipykernel 7 that race lost the cell's final `idle` message, so
headless runs hung. Callbacks are ordinary methods, so tests drive them without a browser.
"""
import math

import numpy as np
from plotly.subplots import make_subplots

from adlib.method import scoring
from adlib.teach.viz.base import ANOMALOUS, NORMAL, _image_hwc
from adlib.teach.viz.figures import score_histograms
from adlib.teach.viz.theory import DIMENSIONS, local_anomaly_latents, prior_figure


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
        options = [(f"{n} ({'anomalous' if l else 'normal'})", i)
                   for i, (n, l) in enumerate(zip(self.names, self.labels))]
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
        titles = ([f"norm map at step {step} (t = {t})", "ground-truth mask"][:cols - 1]
                  + [f"{score} of the images in the explorer"])
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

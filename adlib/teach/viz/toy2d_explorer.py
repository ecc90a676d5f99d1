"""ToyExplorer: a slider for S and a grid choice on the 2-D toy's inversion figure (adlib.teach.viz.toy2d)."""
import numpy as np

from adlib.method.inversion import GRIDS
from adlib.teach.viz.explorers import _Explorer
from adlib.teach.viz.toy2d import toy_figure, trajectories


class ToyExplorer(_Explorer):
    """Invert `normals` and `outliers` (n x 2 each) with `model` in S steps on a grid -> toy_figure; `.numbers`
    holds the AUROCs and mean landing norms for the current S (per group when `groups` labels the outliers).
    `train` (optional) draws the training points behind the paths."""

    def __init__(self, model, normals, outliers, steps: int = 3, grid: str = "reference", groups=None, train=None):
        import ipywidgets as w
        self.model, self.groups = model, groups
        self.normals, self.outliers = np.asarray(normals), np.asarray(outliers)
        self.train = np.asarray(train) if train is not None else np.zeros((0, 2))
        self.steps = w.IntSlider(value=int(steps), min=1, max=20, description="S")
        self.grid = w.Dropdown(options=list(GRIDS), value=grid, description="grid")
        self.numbers = None
        self._wire([self.steps, self.grid])

    def figure_for(self, steps: int, grid: str):
        """The figure for S = steps on `grid`; sets `.numbers` (plain method: tests call it without a browser)."""
        normal = trajectories(self.model, self.normals, steps, grid)
        outlier = trajectories(self.model, self.outliers, steps, grid)
        fig, nums = toy_figure(self.train, normal, outlier, self.groups, steps, grid)
        self.numbers = {"steps": steps, "grid": grid, **nums}
        return fig

    def update(self, change=None):
        self.figure = self.figure_for(self.steps.value, self.grid.value)
        self._refresh()
        return self.figure

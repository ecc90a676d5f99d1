"""adlib.teach.viz.inversion_lessons (notebook 03): the round trip is exact only for an eps that does not change along
a step and its error shrinks with S; NFE counted per method; the grids' conventions; the side-by-side widget's
callbacks; and the PCA legend that names no defect where there are no masks."""
import math

import numpy as np
import pytest
import torch

from adlib.evaluation.baselines import reconstruction_map
from adlib.method.inversion import make_grid
from adlib.schedule import ABAR
from adlib.teach import viz
from adlib.teach.viz import inversion_lessons as il


class ZeroEps(torch.nn.Module):
    def forward(self, x, t):
        return torch.zeros_like(x)


class ConstantEps(torch.nn.Module):
    """eps independent of x and t: DDIM steps are then exact both ways."""
    def __init__(self, like):
        super().__init__()
        self.c = torch.randn(like.shape[1:], generator=torch.Generator().manual_seed(1), dtype=like.dtype)

    def forward(self, x, t):
        return self.c.expand_as(x)


class GaussianEps(torch.nn.Module):
    """The optimal eps for features ~ N(0, lam I): sqrt(1 - abar_t) x / (abar_t lam + 1 - abar_t)."""
    def __init__(self, lam=0.5):
        super().__init__()
        self.lam = lam

    def forward(self, x, t):
        a = ABAR[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return (1 - a).sqrt() * x / (a * self.lam + 1 - a)


def _z(n=6, c=8, g=4, lam=0.5, seed=0):
    return math.sqrt(lam) * torch.randn(n, c, g, g, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_round_trip_is_exact_when_eps_does_not_change():
    z = _z()
    for model in (ZeroEps(), ConstantEps(z)):
        for s in (1, 3, 10):
            assert il.round_trip_error(model, z, s).max() < 1e-9


def test_round_trip_is_inexact_for_a_real_eps_and_shrinks_with_s():
    z = _z()
    curve = il.round_trip_curve(GaussianEps(), z, steps=(1, 2, 3, 5, 10, 20, 50))
    med = [np.median(curve[s]) for s in sorted(curve)]
    assert med[0] > 0.1, med                      # S = 1: far from z
    assert all(b < a for a, b in zip(med, med[1:])), med
    assert med[-1] < med[0] / 10, med
    assert "falls at every step of S" in il.round_trip_sentence(curve)


def test_round_trip_refuses_the_reference_grid():
    with pytest.raises(ValueError, match="abar = 0"):
        il.round_trip_error(ZeroEps(), _z(), 3, "reference")


def test_round_trip_figure_and_sentence_follow_the_numbers():
    curve = {1: np.array([0.9, 1.1]), 3: np.array([0.5, 0.6]), 10: np.array([0.7, 0.8])}
    fig = il.round_trip_figure(curve)
    assert list(fig.data[1].x) == [1, 3, 10] and fig.data[1].y[0] == pytest.approx(1.0)
    assert "not at every S" in il.round_trip_sentence(curve)
    assert "does not fall" in il.round_trip_sentence({1: np.array([0.1]), 3: np.array([0.2])})


def test_grid_table_states_the_conventions():
    rows = il.grid_table(3)
    paper = [r for r in rows if r["grid"] == "paper"]
    ref = [r for r in rows if r["grid"] == "reference"]
    assert [r["t"] for r in paper] == [0, 333, 666, 999] and [r["t"] for r in ref] == [0, 500, 999, 1000]
    assert [r["eps_here"] for r in ref] == [True, True, True, False]
    assert ref[-1]["abar"] == 0 and paper[0]["abar"] == pytest.approx(0.9999)
    assert paper[-1]["abar"] == pytest.approx(4.04e-5, rel=0.01)
    md = il.grid_markdown(3)
    assert "appended ᾱ = 0" in md and md.count("\n") == 1 + 8


def test_counting_model_and_nfe_of_both_methods():
    z = _z(n=1, lam=1.0)
    res = il.side_by_side(GaussianEps(1.0), z, r=0.3, k=10, steps=3)
    assert res["nfe_invad"] == 3 and res["nfe_reconstruction"] == 10 and res["t_r"] == 300
    # K larger than t_r: the grid merges repeated timesteps, so fewer evaluations than K
    assert il.side_by_side(GaussianEps(1.0), z, r=0.002, k=10, steps=1)["nfe_reconstruction"] == 2
    assert res["invad"].shape == res["recon_error"].shape == res["features"].shape == (4, 4)


def test_reconstruct_matches_the_baselines_map():
    z, model = _z(n=3, lam=1.0), GaussianEps(1.0)
    for r, k in ((0.1, 3), (0.3, 10)):
        mine = (il.reconstruct(model, z, r, k, seed=2) - z).norm(dim=1)
        assert torch.allclose(mine, reconstruction_map(model, z, r, k, seed=2))


def test_map_contrast():
    amap = np.ones((4, 4))
    amap[:2, :2] = 5.0
    mask = np.zeros((16, 16), bool)
    mask[:8, :8] = True
    assert il.map_contrast(amap, mask) == pytest.approx(1.0)
    assert il.map_contrast(amap, ~mask) == pytest.approx(0.0)
    assert il.map_contrast(amap) == pytest.approx(5.0)          # no mask: max / median
    assert il.map_contrast(amap, np.zeros((16, 16), bool)) == pytest.approx(5.0)   # an empty mask: no cells to rank
    assert il.contrast_kind(mask, 4) == "auroc" and il.contrast_kind(None, 4) == "peak"
    assert il.contrast_kind(np.zeros((16, 16), bool), 4) == "peak" and il.contrast_kind(np.ones((16, 16), bool), 4) == "peak"


def test_side_by_side_explorer_callbacks():
    z = _z(n=1, lam=1.0).float()
    image = torch.rand(3, 16, 16)
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    ex = il.InversionVsReconstruction(GaussianEps(1.0), z, image, mask, name="img", r=0.3, k=5, steps=3)
    assert "K = 5: 5 network evaluations" in ex.figure.layout.title.text and "S = 3 (paper grid): 3" in ex.figure.layout.title.text
    assert len(ex.out.outputs) == 1
    ex.k.value = 20
    assert ex.result["nfe_reconstruction"] == 20 and "K = 20" in ex.figure.layout.title.text
    ex.s.value = 10
    assert ex.result["nfe_invad"] == 10 and ex.result["steps"] == 10
    ex.r.value = 0.5
    assert ex.result["t_r"] == 500
    titles = [a.text for a in ex.figure.layout.annotations]
    assert titles[:2] == ["image", "mask"] and any("AUROC in/out of mask" in t for t in titles)
    no_mask = il.InversionVsReconstruction(GaussianEps(1.0), z, image, None, steps=2)
    assert [a.text for a in no_mask.figure.layout.annotations][1].startswith("features")
    assert no_mask.result["nfe_invad"] == 2 and 2 in no_mask.s.options and no_mask.result["contrast_kind"] == "peak"
    assert ex.result["contrast_kind"] == "auroc"


def test_pca_legend_without_masks_names_no_defect():
    """Data without masks has no inside / outside of a defect: the legend says normal / anomalous image."""
    labels = np.array([0, 0, 1, 1])
    latents = torch.randn(4, 5, 3, 3, generator=torch.Generator().manual_seed(0))
    fig, _ = viz.pca_figure(latents, viz.position_labels(labels, None, 3), max_points=100)
    names = [t.name for t in fig.data]
    assert len(names) == 2 and names[0].startswith("normal image") and names[1].startswith("anomalous image (")
    assert not any("defect" in n for n in names), names
    masks = np.zeros((4, 6, 6), bool)
    masks[2:, :2, :2] = True
    fig, _ = viz.pca_figure(latents, viz.position_labels(labels, masks, 3), max_points=100)
    names = [t.name for t in fig.data]
    assert any("outside defect" in n for n in names) and any("inside defect" in n for n in names), names


def test_cost_sentence_follows_the_numbers():
    base = dict(nfe_reconstruction=10, nfe_invad=3, r=0.3, k=10, steps=3)
    assert "3.33× fewer" in il.cost_sentence(base)
    assert il.cost_sentence({**base, "nfe_invad": 10}).endswith("cost 10.")
    assert "2× more" in il.cost_sentence({**base, "nfe_invad": 20})

"""adlib.teach.viz.gaussian_theory (notebook 05): the S-step gains per eigenvalue against adlib's inversion, the exact
flow map, the toys, the figures and the S explorer's callbacks, driven without a browser."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from scipy.linalg import sqrtm

from adlib.method.inversion import make_grid
from adlib.schedule import ABAR, T
from adlib.teach.viz import gaussian_theory as gt

LAMS = np.geomspace(1e-4, 10, 11)


@pytest.mark.parametrize("steps,grid", [(1, "reference"), (3, "reference"), (5, "paper"), (50, "reference")])
def test_step_gains_are_what_adlibs_inversion_does(steps, grid):
    points = make_grid(steps, grid)
    np.testing.assert_allclose(gt.measured_gains(LAMS, points, seed=1), gt.step_gains(LAMS, points), rtol=1e-8)


def test_gains_quoted_in_design():
    ref = lambda s: make_grid(s, "reference")  # noqa: E731
    np.testing.assert_allclose(gt.step_gains(gt.DESIGN_LAMS, ref(3)), [0.50, 0.30, 0.13, 0.12, 0.28, 0.51], atol=0.005)
    np.testing.assert_allclose(gt.step_gains([1e-4, 10], ref(5)), [0.51, 0.69], atol=0.005)
    np.testing.assert_allclose(gt.step_gains([1e-4, 10], ref(50)), [0.56, 0.97], atol=0.005)
    assert gt.step_gains([0.7], ref(3)).shape == (1,)


def test_many_steps_approach_the_exact_flow_map():
    lams = np.geomspace(1e-2, 10, 7)
    flow = gt.flow_gains(lams, make_grid(1000, "reference"))
    # the flow map relative to whitening: sqrt(lam / (abar_0 lam + 1 - abar_0)), ~1 unless lam ~ 1 - abar_0 = 1e-4
    a0 = ABAR[0].item()
    np.testing.assert_allclose(flow, np.sqrt(lams / (a0 * lams + 1 - a0)), rtol=1e-12)
    assert gt.flow_gains([1e-4], make_grid(3, "reference"))[0] == pytest.approx(math.sqrt(1 / (1 + a0)))  # 0.71
    gaps = [np.abs(gt.step_gains(lams, make_grid(s, "reference")) - flow).max() for s in (3, 10, 100, 1000)]
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 0.5 and gaps[-1] < 0.02, gaps


def test_gaussian_eps_is_the_formula_at_every_position():
    g = np.random.default_rng(0)
    a = g.standard_normal((3, 3))
    mean, cov = g.standard_normal(3), a @ a.T + 0.1 * np.eye(3)
    m = gt.gaussian_eps(mean, cov, grid=2)
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 100, 999, T])
    with torch.no_grad():
        eps = m(x, t).numpy()
    for b in range(4):
        ab = ABAR[t[b]].item()
        for i in range(2):
            for j in range(2):
                centred = x[b, :, i, j].numpy() - math.sqrt(ab) * mean
                want = math.sqrt(1 - ab) * np.linalg.solve(ab * cov + (1 - ab) * np.eye(3), centred)
                np.testing.assert_allclose(eps[b, :, i, j], want, rtol=1e-9, atol=1e-12)


def test_whiten_and_invert_vectors():
    g = np.random.default_rng(1)
    mean, cov = np.array([1.0, -2.0]), np.array([[2.0, 0.9], [0.9, 0.6]])
    x = g.multivariate_normal(mean, cov, 20000)
    wx = gt.whiten(x, mean, cov)
    np.testing.assert_allclose(wx, (x - mean) @ np.linalg.inv(np.real(sqrtm(cov))), atol=1e-10)  # symmetric root
    np.testing.assert_allclose(np.cov(wx.T), np.eye(2), atol=0.03)
    m = gt.gaussian_eps(mean, cov)
    end, states = gt.invert_vectors(m, x[:5], make_grid(1000, "reference"), trajectory=True)
    assert states.shape == (1001, 5, 2) and np.array_equal(states[-1], end) and np.array_equal(states[0], x[:5])
    assert np.linalg.norm(end - wx[:5]) / np.linalg.norm(wx[:5]) < 0.01  # many steps whiten


def test_toy_features_have_the_stated_gaussian_and_one_moved_position():
    lams = [0.1, 1.0, 4.0]
    toy = gt.toy_features(lams, grid=2, n_train=4000, n_test=3, n_outliers=5, shift=5.0, seed=2)
    assert toy["train"].shape == (4000, 3, 2, 2) and toy["test"].shape == (8, 3, 2, 2)
    assert toy["labels"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    cov = toy["cov"]
    np.testing.assert_allclose(np.linalg.eigvalsh(cov[1].numpy()), lams, rtol=1e-10)
    z = toy["train"][:, :, 0, 1].numpy()                                # position (0, 1) = P index 1
    np.testing.assert_allclose(np.cov(z.T), cov[1].numpy(), atol=0.15)
    np.testing.assert_allclose(z.mean(0), toy["mean"][:, 0, 1].numpy(), atol=0.1)
    plain = gt.toy_features(lams, grid=2, n_train=4000, n_test=3, n_outliers=5, shift=0.0, seed=2)
    moved = (toy["test"] - plain["test"]).flatten(2)                     # the same draws, without the move
    assert torch.equal(toy["train"], plain["train"]) and moved[:3].abs().max() == 0
    for b in range(3, 8):
        where = moved[b].abs().sum(0).nonzero().flatten()
        assert len(where) == 1
        d = moved[b, :, where[0]].numpy()
        assert math.sqrt(d @ np.linalg.solve(cov[where[0]].numpy(), d)) == pytest.approx(5.0)


def test_figures():
    lams = [0.1, 3.0]
    fig = gt.eps_gain_figure(lams)
    assert isinstance(fig, go.Figure) and len(fig.data) == 3 and fig.layout.yaxis.type == "log"
    m = gt.gaussian_eps([0.0, 0.0], np.diag(lams))
    samples = np.random.default_rng(0).multivariate_normal([0, 0], np.diag(lams), 200)
    assert len(gt.eps_field_figure(samples, m, t=100, n=5).data) == 2  # the arrows, the samples
    end, states = gt.invert_vectors(m, samples[:4], make_grid(10, "reference"), trajectory=True)
    fig = gt.flow_figure(samples, states, [0, 0, 1, 1], gt.whiten(samples[:4], [0, 0], np.diag(lams)), few=end)
    names = [d.name for d in fig.data]
    assert names.count("normal path") == 2 and names.count("outlier path") == 2 and "Σ^-1/2 (x − μ)" in names
    assert sum(d.showlegend is not False for d in fig.data if d.name in ("normal path", "outlier path")) == 2
    fig = gt.gain_figure(LAMS, {"S = 3": gt.step_gains(LAMS, make_grid(3, "reference"))},
                         {"S = 3": gt.measured_gains(LAMS, make_grid(3, "reference"))}, LAMS)
    assert [d.mode for d in fig.data] == ["lines", "markers", "lines"] and fig.layout.xaxis.type == "log"
    fig = gt.lines_figure([1, 10], {"a": [1, 2], "b": [3, 4]}, "t", "S", "y")
    assert len(fig.data) == 2 and fig.layout.title.text == "t"


def test_gain_explorer_callbacks():
    cov = np.diag([3.0, 0.1])
    ex = gt.GainExplorer([1.0, -0.5], cov, steps=3)
    assert ex.numbers["steps"] == 3 and ex.numbers["max_formula_error"] < 1e-8
    np.testing.assert_allclose(ex.numbers["toy_gains"], gt.step_gains([0.1, 3.0], make_grid(3, "reference")))
    assert ex.numbers["ratio"] > 3 and "S = 3" in ex.figure.layout.title.text
    assert ex.numbers["whitened_gain"] == pytest.approx(gt.step_gains([1.0], make_grid(3, "reference"))[0])
    ex.steps.value = 100  # an observe callback fires as in the browser
    assert ex.numbers["steps"] == 100 and ex.numbers["ratio"] < 1.05 and "S = 100" in ex.figure.layout.title.text
    assert ex.out.outputs[0]["data"]["text/plain"].startswith("<plotly figure: S = 100")
    # the unit circle after S steps: an ellipse with the two gains as semi-axes (raw), a circle (whitened)
    raw, white = ex.figure.data[5], ex.figure.data[6]
    radii = np.hypot(raw.x, raw.y)
    np.testing.assert_allclose([radii.min(), radii.max()], sorted(ex.numbers["toy_gains"]), rtol=1e-3)
    np.testing.assert_allclose(np.hypot(white.x, white.y), ex.numbers["whitened_gain"], rtol=1e-9)
    ex.steps.value, ex.grid.value = 1000, "paper"  # the paper grid stops at t = 999
    assert ex.numbers["steps"] == 999 and ex.numbers["grid"] == "paper"

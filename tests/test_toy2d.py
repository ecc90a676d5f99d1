"""adlib.teach.viz.toy2d (notebook 03's 2-D toy): deterministic training with the kit's DDPM loss, inversion paths that
end where adlib.method.inversion.invert lands, where normal points and outliers land, and the S explorer's callback."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from adlib.method.inversion import invert, make_grid
from adlib.schedule import training_loss
from adlib.teach.viz import toy2d as t2
from adlib.teach.viz.toy2d_explorer import ToyExplorer

TRACES = ["training points", "normal x₀", "normal paths", "normal x_T", "outlier x₀", "outlier paths",
          "outlier x_T", "‖x‖ = 1 (the χ₂ mode)", "normal ‖x_T‖", "outlier ‖x_T‖", "χ₂ density (the prior's ‖x‖)"]


@pytest.fixture(scope="module")
def ring(one_thread):
    train = t2.toy_data("ring", 2000, seed=0)
    outliers, groups = t2.toy_outliers("ring", 40, seed=1, with_groups=True)
    return dict(train=train, model=t2.train_toy(train, seed=0), normals=t2.toy_data("ring", 200, seed=7),
                outliers=outliers, groups=groups)


def test_toy_data_and_outliers():
    ring = t2.toy_data("ring", 4000, seed=0)
    r = ring.norm(dim=1)
    assert ring.shape == (4000, 2) and ring.dtype == torch.float32
    assert abs(r.mean().item() - t2.RING_RADIUS) < 0.02 and abs(r.std().item() - t2.RING_WIDTH) < 0.02
    assert torch.equal(ring, t2.toy_data("ring", 4000, seed=0)) and not torch.equal(ring, t2.toy_data("ring", 4000, 1))
    gauss = t2.toy_data("gaussian", 20000, seed=0).double()
    np.testing.assert_allclose(gauss.mean(0), t2.GAUSS_MEAN, atol=0.03)
    np.testing.assert_allclose(torch.cov(gauss.T), t2.GAUSS_COV, atol=0.04)
    out, groups = t2.toy_outliers("ring", 41, seed=1, with_groups=True)
    assert out.shape == (41, 2) and list(groups).count("centre") == 20 and list(groups[:20]) == ["centre"] * 20
    r = out.norm(dim=1).numpy()
    assert r[:20].max() < 1.3 and r[20:].min() >= 3.5 and r[20:].max() <= 4.5  # centre hole, beyond the ring
    far = t2.toy_outliers("gaussian", 30, seed=1).double() - torch.tensor(t2.GAUSS_MEAN)
    maha = (far @ torch.linalg.inv(torch.tensor(t2.GAUSS_COV, dtype=torch.float64)) * far).sum(1).sqrt()
    assert maha.min() >= 3.5 - 1e-5 and maha.max() <= 4.5 + 1e-5
    with pytest.raises(ValueError):
        t2.toy_outliers("gaussian", 10, where="centre")
    with pytest.raises(ValueError):
        t2.toy_data("moons")


def test_training_is_deterministic_and_leaves_the_global_rng(one_thread):
    points = t2.toy_data("ring", 300, seed=0)
    state = torch.random.get_rng_state()
    a, b = t2.train_toy(points, iters=30, seed=3), t2.train_toy(points, iters=30, seed=3)
    c = t2.train_toy(points, iters=30, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    assert a.losses == b.losses and len(a.losses) == 30


def test_model_takes_points_and_image_shaped_tensors(ring):
    x, t = ring["normals"][:5], torch.tensor([0, 10, 500, 999, 3])
    flat, shaped = ring["model"](x, t), ring["model"](x[:, :, None, None], t)
    assert flat.shape == (5, 2) and shaped.shape == (5, 2, 1, 1)
    torch.testing.assert_close(flat, shaped[:, :, 0, 0])


def test_trained_loss_is_far_below_the_eps_zero_loss(ring):
    zero, trained = t2.mean_loss(t2.zero_eps, ring["train"]), t2.mean_loss(ring["model"], ring["train"])
    assert zero == pytest.approx(1.0, abs=0.05)  # E||noise||^2 / d
    assert trained < 0.4 * zero, (trained, zero)
    g = torch.Generator().manual_seed(0)  # mean_loss is training_loss itself, on the N x 2 x 1 x 1 points
    z = ring["train"][:, :, None, None]
    assert t2.mean_loss(ring["model"], ring["train"], repeats=1) == pytest.approx(
        training_loss(ring["model"], z, generator=g).item(), rel=1e-6)


@pytest.mark.parametrize("steps,grid", [(1, "reference"), (3, "reference"), (10, "paper")])
def test_trajectories_end_where_invert_lands(ring, steps, grid):
    pts = torch.cat([ring["normals"][:20], ring["outliers"]])
    states = t2.trajectories(ring["model"], pts, steps, grid)
    assert states.shape == (steps + 1, len(pts), 2)
    np.testing.assert_array_equal(states[0], pts.numpy())
    end, path = invert(ring["model"], pts[:, :, None, None], make_grid(steps, grid), trajectory=True)
    np.testing.assert_allclose(states[-1], end[:, :, 0, 0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(states, torch.stack(path)[..., 0, 0].numpy(), rtol=0, atol=1e-6)


def test_where_the_ring_lands_at_ten_steps(ring):
    ns = t2.trajectories(ring["model"], ring["normals"], 10)
    os_ = t2.trajectories(ring["model"], ring["outliers"], 10)
    nums = t2.landing_numbers(ns[-1], os_[-1], ring["groups"])
    assert nums["auroc_norm_outside"] > 0.9 and nums["mean_norm_outside"] > 2 * nums["mean_norm_normal"]
    assert 0.7 < nums["mean_norm_normal"] < 1.5  # near the chi_2 mean sqrt(pi / 2) = 1.25
    # the empty centre lands at the origin: the NLL ranks it as MORE normal, the norm's density catches it
    assert nums["auroc_norm_centre"] < 0.1 and nums["mean_norm_centre"] < 0.3
    assert nums["auroc_typicality"] > 0.9
    # the untrained control eps = 0 only rescales by sqrt(abar_S / abar_0): the reference grid's abar_S = 0 -> 0
    assert np.abs(t2.trajectories(t2.zero_eps, ring["outliers"], 10)[-1]).max() == 0


def test_landing_numbers_are_computed():
    nums = t2.landing_numbers(np.array([[1.0, 0], [0, 1.2]]), np.array([[0.01, 0], [3.0, 0], [0, 4.0]]),
                              groups=["centre", "outside", "outside"])
    assert nums["auroc_norm"] == pytest.approx(4 / 6) and nums["auroc_norm_outside"] == 1.0
    assert nums["auroc_norm_centre"] == 0.0 and nums["auroc_typicality_centre"] == 1.0
    assert nums["mean_norm_outside"] == pytest.approx(3.5) and nums["mean_norm_normal"] == pytest.approx(1.1)
    r = np.array([0.1, 1.0, 3.0])
    np.testing.assert_allclose(t2.norm_nll(r), r ** 2 / 2 - np.log(r))
    assert t2.norm_nll([1.0]).argmin() == 0 and np.isfinite(t2.norm_nll([0.0])).all()


def test_figure_has_the_expected_traces(ring):
    ns = t2.trajectories(ring["model"], ring["normals"][:30], 3)
    os_ = t2.trajectories(ring["model"], ring["outliers"], 3)
    fig, nums = t2.toy_figure(ring["train"][:100], ns, os_, ring["groups"], 3)
    assert isinstance(fig, go.Figure) and [tr.name for tr in fig.data] == TRACES
    paths = fig.data[TRACES.index("normal paths")]
    assert len(paths.x) == 30 * (3 + 2) and paths.x[4] is None  # S + 1 positions, then a break, per point
    np.testing.assert_allclose(fig.data[TRACES.index("outlier x_T")].x, os_[-1, :, 0])
    assert f"{nums['auroc_norm']:.3f}" in fig.layout.title.text and f"{nums['auroc_typicality']:.3f}" in \
        fig.layout.title.text and "centre" in fig.layout.title.text
    hist = fig.data[TRACES.index("outlier ‖x_T‖")]
    np.testing.assert_allclose(hist.x, np.linalg.norm(os_[-1], axis=1))


def test_explorer_redraws_for_s_and_grid(ring):
    ex = ToyExplorer(ring["model"], ring["normals"][:40], ring["outliers"], steps=3, groups=ring["groups"],
                     train=ring["train"][:200])
    assert ex.numbers["steps"] == 3 and [tr.name for tr in ex.figure.data] == TRACES
    before = np.array(ex.figure.data[TRACES.index("normal x_T")].x)
    ex.steps.value = 10  # the slider's observer calls update()
    assert ex.numbers["steps"] == 10 and ex.numbers["grid"] == "reference"
    after = np.array(ex.figure.data[TRACES.index("normal x_T")].x)
    assert not np.allclose(before, after) and len(ex.figure.data[TRACES.index("normal paths")].x) == 40 * 12
    assert ex.numbers["auroc_norm_outside"] > 0.9
    ex.grid.value = "paper"
    assert ex.numbers["grid"] == "paper" and "paper" in ex.figure.layout.annotations[0].text
    fig = ex.figure_for(1, "reference")
    assert ex.numbers["steps"] == 1 and len(fig.data[TRACES.index("normal paths")].x) == 40 * 3
    assert len(ex.out.outputs) == 1 and "application/vnd.plotly.v1+json" in ex.out.outputs[0]["data"]

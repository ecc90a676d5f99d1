"""adlib.teach.viz.choice (notebook 05's "Which Gaussian?"): the candidates' table, the rank of a per-position
covariance, whitening by one candidate, its scores through the default's scoring, a residual beside its control,
the figure and the sentence, on tiny random features (no backbone)."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from adlib.features.covariance import RHOS, choose_gaussian, fit_gaussian
from adlib.runs.config import RunConfig
from adlib.teach.viz import choice as ch

C, H = 6, 3  # channels, grid: P = 9 positions


def _features(n, seed=0, stationary=True):
    """n x C x H x H features: one Gaussian for every position (a 'texture'), or a position-dependent mean and
    scale (an 'aligned part')."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, C, H, H, generator=g, dtype=torch.float64)
    if not stationary:
        z = z * torch.linspace(0.2, 3.0, H * H, dtype=torch.float64).reshape(1, 1, H, H) + \
            torch.randn(1, C, H, H, generator=g, dtype=torch.float64) * 5
    return z.float()


def test_candidate_axis_follows_the_table():
    c = choose_gaussian(_features(20))
    names, labels, nll = ch.candidate_axis(c)
    assert names == [f"rho={r:g}" for r in RHOS] + ["shared"]
    assert labels[0] == "0" and labels[1] == "0.1" and labels[-2] == "1" and labels[-1] == "shared"
    assert nll.shape == (len(names),) and nll[names.index(c["chosen"])] == nll.min()


def test_per_position_rank_is_at_most_n_minus_1_and_pooling_fills_it():
    n = 4  # fewer images than channels
    z = _features(n, seed=1)
    r0, r5 = ch.covariance_rank(z, (0.0, 0.5))
    assert r0.shape == (H * H,) and int(r0.max()) <= n - 1 and int(r0.min()) == n - 1
    assert int(r5.min()) == C  # pooled over 9 positions x 3 directions each
    assert int(ch.covariance_rank(_features(40))[0].min()) == C  # enough images: full rank


def test_whiten_parts_whitens_by_the_candidate():
    parts = {"train": _features(50, 0, stationary=False), "val": _features(5, 1, stationary=False),
             "test": _features(7, 2, stationary=False)}
    g = fit_gaussian(parts["train"], 0.0, ridge=1e-6)
    white = ch.whiten_parts(parts, g)
    assert {k: v.shape for k, v in white.items()} == {k: v.shape for k, v in parts.items()}
    w = white["train"].double()
    assert w.mean(0).abs().max() < 1e-4                        # per-position mean removed
    cov = torch.einsum("ncp,ndp->pcd", w.flatten(2), w.flatten(2)) / (len(w) - 1)
    assert torch.allclose(cov, torch.eye(C, dtype=torch.float64).expand_as(cov), atol=1e-3)  # I (tiny ridge)
    assert g["mean"].shape == (H * H, C) and g["chol"].shape == (H * H, C, C)
    gs = fit_gaussian(parts["train"], 1.0, shared=True)
    assert torch.allclose(gs["chol"][0], gs["chol"][-1])       # one covariance for every position
    c = choose_gaussian(parts["train"])                         # the chosen one, refitted on all the training images
    refit = fit_gaussian(parts["train"], c["rho"], c["shared"])
    assert torch.allclose(ch.whiten_parts(parts, c)["test"], ch.whiten_parts(parts, refit)["test"])


def test_normal_nll_is_the_criterion():
    z = _features(30)
    g = choose_gaussian(z)                                      # the chosen candidate, refitted on all of z
    nll = ch.normal_nll(z[:3], g)
    assert nll.shape == (3,) and np.all(np.isfinite(nll))
    # whitened features y: NLL = 1/2 |y|^2 + log det L + P C / 2 log 2 pi
    y = ch.whiten_parts({"x": z[:3]}, g)["x"].double()
    logdet = g["chol"].diagonal(dim1=1, dim2=2).log().sum().item()
    want = 0.5 * y.flatten(1).pow(2).sum(1).numpy() + logdet + 0.5 * H * H * C * np.log(2 * np.pi)
    np.testing.assert_allclose(nll, want, rtol=1e-5)


def _task(stationary=True):
    parts = {"train": _features(40, 0, stationary), "val": _features(8, 1, stationary),
             "test": _features(16, 2, stationary)}
    labels = np.r_[np.zeros(8, dtype=int), np.ones(8, dtype=int)]
    parts["test"][8:, :, 1, 1] += 8.0                          # one position far off in every anomalous image
    return parts, labels


def test_gaussian_aurocs_find_a_local_anomaly():
    parts, labels = _task()
    for rho in (0.0, 1.0):
        white = ch.whiten_parts(parts, fit_gaussian(parts["train"], rho))
        a = ch.gaussian_aurocs(white, labels, pool=rho)
        assert set(a) == {"local-top", "max"} and a["max"] == 1.0 and a["local-top"] == 1.0


def test_residual_vs_control_trains_and_compares():
    parts, labels = _task()
    white = ch.whiten_parts(parts, fit_gaussian(parts["train"], 0.5))
    cfg = RunConfig(model="standard+conv", model_kwargs={"residual_kwargs": {"hidden": 4, "depth": 1}}, iters=3,
                    batch_size=4, device="cpu", snapshots=False)
    r = ch.residual_vs_control(cfg, white, labels, pool=0.5)
    assert r["iters"] == 3 and r["seconds"] > 0 and set(r["auroc"]) == {"residual", "control"}
    assert r["loss"]["verdict"] in ("lower", "higher", "tie") and np.isfinite(r["loss"]["diff"])
    assert r["compare"]["verdict"] in ("lower", "higher", "tie") and r["loss_control"] > 0


def test_figure_marks_the_chosen_and_the_per_position_candidate():
    choices = {"aligned": choose_gaussian(_features(30, stationary=False)), "texture": choose_gaussian(_features(30))}
    fig = ch.choice_figure(choices)
    assert isinstance(fig, go.Figure) and len(fig.data) == 6   # a line, rho=0 and the chosen, per panel
    for k, c in enumerate(choices.values()):
        line, first, star = fig.data[3 * k: 3 * k + 3]
        names, labels, nll = ch.candidate_axis(c)
        np.testing.assert_allclose(line.y, nll / c["mean"].numel())
        assert list(first.x) == ["0"] and star.marker.symbol == "star"
        assert list(star.x) == [labels[names.index(c["chosen"])]] and star.y[0] == min(line.y)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"


@pytest.mark.parametrize("stationary", [True, False])
def test_sentence_says_what_was_chosen(stationary):
    c = choose_gaussian(_features(30, stationary=stationary))
    s = ch.choice_sentence("set", c)
    assert s.startswith("set: fitted on 24, scored on 6 held-out") and f"**{c['chosen']}**" in s
    assert ("rho=0" in s) == (c["chosen"] != "rho=0")

"""Notebook 02's lessons: the EMA window, the untrained control, loss per timestep, the timestep explorer,
and the paper-scale arithmetic (parameters, FLOP formula against torch's counter, the walk-through rows)."""
import math

import numpy as np
import pytest
import torch

from adlib.evaluation import scale
from adlib.evaluation.throughput import count_flops
from adlib.models import EpsGaussian, build_model
from adlib.models.controls import ZeroEps, control_model
from adlib.schedule import ABAR
from adlib.teach.viz import training as tv


# ---- EMA

def test_ema_weights_are_what_diffusers_ema_computes():
    from diffusers.training_utils import EMAModel
    n = 60
    p = torch.nn.Parameter(torch.zeros(1))
    ema = EMAModel([p], decay=0.9)
    for k in range(1, n + 1):  # theta_k = k
        p.data.fill_(float(k))
        ema.step([p])
    w = tv.ema_weights(n, 0.9)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert ema.shadow_params[0].item() == pytest.approx(float((w * np.arange(1, n + 1)).sum()), rel=1e-6)


def test_ema_window_long_and_short_runs():
    long = tv.ema_summary(20000, 0.999)
    assert long["last_decay"] == 0.999 and long["constant_window"] == pytest.approx(1000)
    assert abs(long["mean_age"] - 999) < 10          # beta / (1 - beta) for a constant decay
    short = tv.ema_summary(1000, 0.999)              # warm-up n / (n + 9): about the last tenth
    assert short["last_decay"] == pytest.approx(1000 / 1009)
    assert 80 < short["mean_age"] < 120 and short["tail90"] < 300


def test_ema_sentence_follows_the_numbers():
    s = tv.ema_summary(800, 0.999)
    agree = tv.ema_sentence(s, 1e-5, 1e-3, 0.01, 0.002)
    assert "score alike" in agree and "too short" in agree and "1.0%" in agree
    differ = tv.ema_sentence(tv.ema_summary(20000, 0.999), 1e-5, 1e-3, 0.2, -0.05)
    assert "differs by -0.050" in differ and "too short" not in differ
    w = tv.ema_weights(100, 0.999)
    assert tv.ema_lr_mean(w, lambda i: 2.0) == pytest.approx(2.0)


# ---- controls and losses

def test_control_is_the_base_or_the_untrained_network_which_is_zero():
    res = build_model("gaussian+conv", 8, 4, residual_kwargs=dict(hidden=8, depth=1))
    name, c = control_model(res)
    assert c is res.base and name == "zero-residual"
    name, c = control_model(build_model("mlp", 8, 4, hidden=8, depth=1))
    x = torch.randn(2, 8, 4, 4)
    assert name == "untrained" and torch.equal(c(x, torch.tensor([5, 500])), torch.zeros_like(x))  # adaLN-Zero


def test_zero_eps_loss_is_the_mean_square_noise():
    z = 5 * torch.randn(6, 4, 3, 3) + 2                # whatever the features, eps = 0 scores mean(n^2)
    n = torch.randn(z.shape, generator=torch.Generator().manual_seed(3))
    assert tv.loss_at_t(ZeroEps(), z, 123, seed=3) == pytest.approx(n.pow(2).mean().item(), rel=1e-5)


def test_gaussian_eps_reaches_the_theoretical_loss():
    g = torch.Generator().manual_seed(0)
    lam = torch.tensor([0.05, 0.5, 1.0, 4.0])
    z = (torch.randn(4000, 4, 1, 1, generator=g) * lam.sqrt().view(1, 4, 1, 1)).double()
    model = EpsGaussian.fit(z, dtype=torch.float64, ridge=0.0)
    for t in (0, 100, 400, 999):
        got = tv.loss_at_t(model, z, t, seed=1)
        want = tv.gaussian_loss_at_t(lam.numpy(), t)[0]
        assert got == pytest.approx(want, rel=0.05, abs=2e-3), t
    whitened = tv.gaussian_loss_at_t([1.0], np.arange(1000))
    assert np.allclose(whitened, ABAR[:1000].double().numpy())   # lam = 1: the best loss at t is abar_t


def test_loss_verdict_branches():
    assert "below" in tv.loss_verdict(0.5, 1.0, "ε = 0") and "learned structure" in tv.loss_verdict(0.5, 1.0, "x")
    assert "above" in tv.loss_verdict(1.1, 1.0, "x")
    assert "learned nothing the control" in tv.loss_verdict(0.999, 1.0, "x")


def test_shift_sentence():
    assert tv.shift_sentence(1.0, 1.5, 400, 192) == ""
    few = tv.shift_sentence(0.18, 113.0, 36, 192)
    assert "628×" in few and "36 training images for 192 channels" in few
    assert "channels" not in tv.shift_sentence(1.0, 10.0, 1000, 192)


def test_timestep_explorer_callbacks():
    torch.manual_seed(0)
    z = torch.randn(5, 6, 4, 4)
    res = build_model("gaussian+conv", 6, 4, residual_kwargs=dict(hidden=8, depth=1)).fit_base(z)
    ts = [0, 100, 500, 999]
    ex = tv.TimestepExplorer(z, {"trained": res, "base": res.base}, ts, theory=res.base.eigval, t=100)
    assert ex.numbers["t"] == 100 and set(ex.curves) == {"trained", "base", "ε = 0", "Gaussian optimum (theory)"}
    assert np.allclose(ex.curves["ε = 0"], ex.curves["ε = 0"][0])     # same noise at every t: the same loss
    assert np.allclose(ex.curves["trained"], ex.curves["base"])      # an untrained residual adds 0
    ex.t.value, ex.image.value, ex.channel.value = 999, 2, 5         # what a student's slider does
    m = ex.maps(999, 2, 5)
    a = ABAR[999].item()
    assert np.allclose(m["x_t"], math.sqrt(a) * z[2, 5].numpy() + math.sqrt(1 - a) * ex.noise[2, 5].numpy(), atol=1e-5)
    assert ex.numbers["t"] == 999 and ex.numbers["losses"]["trained"] < ex.numbers["losses"]["ε = 0"]
    assert len(ex.figure.data) == 4 + len(ex.curves) and "t = 999" in ex.figure.layout.title.text
    assert ex.out.outputs and "application/vnd.plotly.v1+json" in ex.out.outputs[0]["data"]


# ---- paper scale

@pytest.mark.parametrize("name, kw", [("dit", dict(hidden=32, depth=2, heads=4)), ("mlp", dict(hidden=48, depth=3)),
                                      ("dit", dict(hidden=16, depth=1, heads=2, mlp_ratio=2.0))])
def test_flop_formula_matches_torch_counter(name, kw):
    torch.manual_seed(0)
    model = build_model(name, 10, 4, **kw).eval()
    x, t = torch.randn(3, 10, 4, 4), torch.tensor([1, 2, 3])
    counted = count_flops(model, x, t)[1] / 3
    fl = scale.model_flops(name, 10, 4, **kw)
    assert fl["total"] == fl["linear"] + fl["attention"] and (fl["attention"] > 0) == (name == "dit")
    # the counter sees the matmuls; CPU scaled-dot-product attention may or may not be counted
    assert counted in (fl["linear"], fl["total"]), (counted, fl)


def test_paper_model_size_and_flops_match_the_committed_measurement():
    measured = scale.load_measured()
    assert measured, "docs/bench/paper-model-cpu.json is part of the repository"
    assert scale.count_params("dit-paper", 272, 16) == measured["params"] == 1222682896
    fl = scale.model_flops("dit-paper", 272, 16)
    assert fl["linear"] == round(measured["eps_tflop_per_image"] * 1e12)
    assert fl["attention"] == 16 * 4 * 256 ** 2 * 2048
    with pytest.raises(ValueError, match="token denoisers"):
        scale.model_flops("conv", 8, 4)


def test_walkthrough_rows_and_arithmetic():
    assert scale.training_flops(2.0, 10, True) == 80 and scale.training_flops(2.0, 10, False) == 60
    assert scale.seconds_at(1e15, 1000, 0.5, 2) == pytest.approx(1.0)
    assert scale.human_time(30) == "30.0 s" and scale.human_time(7200) == "2.0 h" and scale.human_time(86400 * 3) == "3.0 days"
    rows = scale.paper_walkthrough(scale.load_measured(), gpus=(1, 4))
    kinds = [k for _, _, k in rows]
    assert sum(k.startswith("measured") for k in kinds) == 2 and kinds.count("estimate") == 4
    assert any("1.223 B" in v for _, v, _ in rows)
    no_cpu = scale.paper_walkthrough({}, gpus=(1,))
    assert not any(k.startswith("measured") for _, _, k in no_cpu) and no_cpu[-1][2] == "estimate"
    md = scale.rows_markdown(rows)
    assert md.count("\n") == len(rows) + 1


def test_per_image_losses_average_to_the_kits_loss_and_verdicts_use_standard_errors():
    from adlib.models import denoising_loss
    z = torch.randn(12, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    per = tv.per_image_losses(ZeroEps(), z, n_t=4)
    assert per.shape == (12,) and per.mean() == pytest.approx(denoising_loss(ZeroEps(), z, n_t=4), rel=1e-5)
    at = tv.per_image_losses(ZeroEps(), z, n_t=1, t=500)
    assert at.mean() == pytest.approx(tv.loss_at_t(ZeroEps(), z, 500), rel=1e-5)
    text, c = tv.paired_loss_verdict(per - 0.5, per, "ε = 0")
    assert c["verdict"] == "lower" and "beyond 2 standard errors below" in text
    noise = np.random.default_rng(0).normal(0, 0.01, 12)
    text, c = tv.paired_loss_verdict(per + noise, per, "ε = 0")
    assert c["verdict"] == "tie" and "within 2 standard errors" in text and "±" in text

"""DDIM inversion and sampling: grids, the step formula, round trips, and diffusers' scheduler."""
import numpy as np
import pytest
import torch
from diffusers import DDIMInverseScheduler, DDPMScheduler

from adlib.method.inversion import ddim_step, invert, make_grid, sample
from adlib.schedule import ABAR, T, add_noise, training_loss


class ConstEps(torch.nn.Module):
    """eps independent of x and t: DDIM inversion is then exactly invertible by DDIM sampling."""

    def __init__(self, eps):
        super().__init__()
        self.eps, self.calls = eps, []

    def forward(self, x, t):
        self.calls.append(int(t[0]))
        return self.eps.expand_as(x)


class LinearEps(torch.nn.Module):
    def forward(self, x, t):
        return 0.3 * x + 1e-3 * t.view(-1, 1, 1, 1).float()


def test_schedule_matches_diffusers_ddpm():
    ref = DDPMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    assert torch.allclose(ABAR[:T].float(), ref.alphas_cumprod, atol=1e-6)
    assert ABAR[T] == 0


def test_grids():
    assert make_grid(3, "paper") == [0, 333, 666, 999]
    assert make_grid(3, "reference") == [0, 500, 999, T]
    assert make_grid(1, "reference") == [0, T]
    assert make_grid(2, [0, 10, 20]) == [0, 10, 20]
    for s in (1, 2, 5, 10, 50, 100, 999):
        assert len(make_grid(s, "paper")) == s + 1 and make_grid(s, "paper")[-1] == T - 1
    for s in (2, 5, 1000):
        assert len(make_grid(s, "reference")) == s + 1
    with pytest.raises(ValueError):
        make_grid(3, [0, 5, 5])
    with pytest.raises(ValueError):
        make_grid(3, "linspace")


def test_eps_evaluated_at_the_documented_timesteps():
    m = ConstEps(torch.zeros(1, 2, 3, 3))
    invert(m, torch.randn(2, 2, 3, 3), make_grid(3, "paper"))
    assert m.calls == [0, 333, 666]
    m.calls.clear()
    out = invert(m, torch.randn(2, 2, 3, 3), make_grid(3, "reference"))
    assert m.calls == [0, 500, 999]
    assert torch.allclose(out, m.eps.expand_as(out))  # landing on abar = 0 leaves eps itself


def test_step_matches_formula():
    x, eps = torch.randn(4, 8, 2, 2, dtype=torch.float64), torch.randn(4, 8, 2, 2, dtype=torch.float64)
    for t, t2 in [(0, 333), (333, 666), (500, 999), (999, T)]:
        a, a2 = ABAR[t].item(), ABAR[t2].item()
        x0 = (x - np.sqrt(1 - a) * eps) / np.sqrt(a)
        assert torch.allclose(ddim_step(x, eps, a, a2), np.sqrt(a2) * x0 + np.sqrt(1 - a2) * eps)


@pytest.mark.parametrize("grid", ["paper", "reference"])
@pytest.mark.parametrize("steps", [1, 2, 3, 5, 10])
def test_round_trip_is_exact(grid, steps):
    z = torch.randn(3, 16, 4, 4, dtype=torch.float64)
    m = ConstEps(torch.randn(1, 16, 4, 4, dtype=torch.float64))
    points = make_grid(steps, grid)
    if points[-1] == T:
        # The reference grid's last step lands on abar = 0 and keeps only eps: it cannot be undone.
        # Everything up to its last finite point round-trips exactly.
        points = points[:-1]
        if len(points) < 2:
            pytest.skip("reference grid with S = 1 has no finite segment")
    x_T = invert(m, z, points)
    assert torch.allclose(sample(m, x_T, points), z, atol=1e-5)


def test_round_trip_float32_paper_grid():
    z = torch.randn(3, 16, 4, 4)
    m = ConstEps(torch.randn(1, 16, 4, 4))
    points = make_grid(3, "paper")
    assert (sample(m, invert(m, z, points), points) - z).abs().max() < 1e-3  # abar_999 ~ 4e-5 amplifies rounding


class LinearEps(torch.nn.Module):
    """eps(x, t) = 0.5 x: depends on x, so a DDIM step that reuses one end's eps is not undone by the other's."""

    def forward(self, x, t):
        return 0.5 * x


def test_round_trip_is_not_exact_when_eps_depends_on_x_and_improves_with_steps():
    """`sample` evaluates eps at each step's noisier end, `invert` at its less noisy end: not exact inverses."""
    z = torch.randn(4, 8, 2, 2, dtype=torch.float64)
    errors = []
    for steps in (2, 5, 20, 100):
        points = make_grid(steps, "paper")
        back = sample(LinearEps(), invert(LinearEps(), z, points), points)
        errors.append(((back - z).norm() / z.norm()).item())
    assert errors[0] > 1e-3, errors                      # visibly inexact at few steps
    assert all(b < a for a, b in zip(errors, errors[1:])), errors  # and it shrinks as S grows
    assert errors[-1] < errors[0] / 10, errors


def test_sampling_from_abar_zero_is_refused():
    with pytest.raises(ValueError, match="abar = 0"):
        sample(ConstEps(torch.zeros(1)), torch.zeros(1, 1, 1, 1), make_grid(3, "reference"))


def test_inverse_step_matches_diffusers_where_grids_coincide():
    """diffusers' leading spacing with S = 4 walks 0 -> 250 -> 500 -> 750 (it never reaches 999)."""
    sched = DDIMInverseScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                 clip_sample=False, set_alpha_to_one=False, timestep_spacing="leading")
    sched.set_timesteps(4)
    assert sched.timesteps.tolist() == [0, 250, 500, 750]
    model, z = LinearEps(), torch.randn(2, 4, 3, 3, dtype=torch.float64)
    ours = invert(model, z, [0, 250, 500, 750])
    x = z.float()
    for t in [250, 500, 750]:  # diffusers' step(eps, t) moves from t - 250 to t, eps taken at the start
        eps = model(x, torch.full((2,), t - 250))
        x = sched.step(eps, t, x).prev_sample
    assert torch.allclose(ours.float(), x, atol=1e-5)
    # ...and its 3-step leading grid stops at 666: the paper grid's 3 steps land on 999 instead.
    sched.set_timesteps(3)
    assert sched.timesteps.tolist() == [0, 333, 666]
    assert make_grid(3, "paper")[-1] == 999


def test_trajectory_and_batching():
    m, z = LinearEps(), torch.randn(5, 4, 2, 2)
    x, states = invert(m, z, make_grid(3, "paper"), trajectory=True)
    assert len(states) == 4 and torch.equal(states[0], z) and torch.equal(states[-1], x)
    assert torch.allclose(torch.cat([invert(m, z[:2], make_grid(3)), invert(m, z[2:], make_grid(3))]), x)


def test_add_noise_and_loss_deterministic():
    z = torch.randn(4, 3, 2, 2)
    t = torch.tensor([0, 10, 500, 999])
    a = ABAR[t].float().view(-1, 1, 1, 1)
    n = torch.randn_like(z)
    assert torch.allclose(add_noise(z, t, n), a.sqrt() * z + (1 - a).sqrt() * n)
    net = torch.nn.Conv2d(3, 3, 1)
    f = lambda x, t: net(x)  # noqa: E731
    l1 = training_loss(f, z, torch.Generator().manual_seed(0))
    l2 = training_loss(f, z, torch.Generator().manual_seed(0))
    assert l1.item() == l2.item()


def test_many_step_inversion_whitens_gaussian_data_with_the_exact_eps():
    """For z ~ N(0, diag(lam)) the exact eps is sqrt(1-abar) x / (abar lam + 1 - abar); the probability-flow
    ODE then maps z to N(0, I). DDIM with many steps follows it; with S = 3 it is still far from it."""
    lam = torch.tensor([4.0, 0.25, 1.0, 0.01], dtype=torch.float64).view(1, 4, 1, 1)

    def exact_eps(x, t):
        a = ABAR[t].view(-1, 1, 1, 1)
        return (1 - a).sqrt() * x / (a * lam + 1 - a)
    z = torch.randn(4000, 4, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * lam.sqrt()
    for grid in ("paper", "reference"):
        std = invert(exact_eps, z, make_grid(999, grid)).std(0).flatten()
        assert torch.allclose(std, torch.ones(4, dtype=torch.float64), atol=0.06), std
    assert invert(exact_eps, z, make_grid(3, "paper")).std(0).flatten().max() < 0.7


def test_focus_draws_t_from_the_grid_timesteps():
    from adlib.method.inversion import eval_timesteps
    assert eval_timesteps((3,), "paper") == [0, 333, 666]
    seen = []
    model = lambda x, t: seen.append(t.clone()) or torch.zeros_like(x)  # noqa: E731
    training_loss(model, torch.zeros(4000, 1, 1, 1), torch.Generator().manual_seed(0), [0, 333, 666], 1.0)
    assert set(seen[0].tolist()) == {0, 333, 666}
    training_loss(model, torch.zeros(4000, 1, 1, 1), torch.Generator().manual_seed(0), [0, 333, 666], 0.5)
    share = torch.isin(seen[1], torch.tensor([0, 333, 666])).float().mean().item()
    assert 0.45 < share < 0.55

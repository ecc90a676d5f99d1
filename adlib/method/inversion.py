"""Deterministic DDIM steps with explicit (t_from, t_to) pairs: inversion to the prior, sampling back, grids.

One DDIM step (eta = 0) from t to t' with eps = eps_theta(x_t, t):
    x0_hat = (x_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t)
    x_t'   = sqrt(abar_t') * x0_hat + sqrt(1 - abar_t') * eps
Inversion walks t' > t (towards the N(0, I) prior), sampling walks back. A grid is the list of points
[t_0 = 0, t_1, ..., t_S]; timestep T (= 1000) stands for abar = 0, where the latent is eps itself.
The schedule (T, abar) lives one floor down, in adlib/schedule.py.
"""
import numpy as np
import torch

from adlib.schedule import ABAR, T

GRIDS = ("paper", "reference")


def eval_timesteps(steps=(1, 2, 3, 5), grid="paper") -> list:
    """The timesteps at which inversion with these S evaluates eps (all points but the landing one)."""
    return sorted({t for s in steps for t in make_grid(s, grid)[:-1]})


def make_grid(steps: int, grid="paper") -> list:
    """Points of an S-step inversion grid.

    paper:     S uniform steps ending at t = 999 (S = 3: eps at 0, 333, 666, lands on 999).
    reference: the 1000 steps respaced to S (guided-diffusion), eps at those S timesteps and the last
               step lands on abar = 0 (S = 3: eps at 0, 500, 999, then T).
    A list of ints is taken as the points themselves (strictly increasing, 0 <= t <= T).
    """
    if not isinstance(grid, str):
        points = [int(t) for t in grid]
    elif steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    elif grid == "paper":
        if steps > T - 1:
            raise ValueError(f"the paper grid has at most {T - 1} steps, got {steps}")
        points = [int(round(t)) for t in np.linspace(0, T - 1, steps + 1)]
    elif grid == "reference":
        stride = (T - 1) / (steps - 1) if steps > 1 else 1
        points = [int(round(i * stride)) for i in range(steps)] + [T]
    else:
        raise ValueError(f"unknown grid {grid!r}: use one of {GRIDS} or a list of timesteps")
    if len(points) < 2 or any(b <= a for a, b in zip(points, points[1:])) or points[0] < 0 or points[-1] > T:
        raise ValueError(f"grid points must be strictly increasing within [0, {T}], got {points}")
    return points


def ddim_step(x: torch.Tensor, eps: torch.Tensor, abar_from, abar_to) -> torch.Tensor:
    """Move x from noise level abar_from to abar_to along the deterministic DDIM direction eps.

    The two lines of the module docstring folded into x_t' = a x + b eps (two passes over x, not five):
        a = sqrt(abar_t' / abar_t),   b = sqrt(1 - abar_t') - a sqrt(1 - abar_t)"""
    a, b = step_coefficients(abar_from, abar_to)
    return torch.add(x * a, eps, alpha=b)


def step_coefficients(abar_from: float, abar_to: float) -> tuple:
    """(a, b) of x_t' = a x + b eps: a = sqrt(abar_t' / abar_t), b = sqrt(1 - abar_t') - a sqrt(1 - abar_t)."""
    a = (abar_to / abar_from) ** 0.5
    return a, (1 - abar_to) ** 0.5 - a * (1 - abar_from) ** 0.5


def _eps(model, x, t: int):
    t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    return model(x, t_batch).to(x.dtype)


@torch.no_grad()
def invert(model, z: torch.Tensor, points: list, trajectory: bool = False):
    """DDIM inversion z = x_{t_0} -> x_{t_S}; with trajectory=True also the list of all S + 1 states.

    A model whose eps is a multiple of x, eps = c_t x (`model.eps_scale(t)` = c_t, e.g. EpsStandard), makes every
    step x -> (a + b c_t) x: the S steps fold into one multiply by their product (the same map; one pass over x)."""
    scale = getattr(model, "eps_scale", None)
    if scale is not None and not trajectory:
        gain = 1.0
        for t_from, t_to in zip(points, points[1:]):
            a, b = step_coefficients(ABAR[t_from].item(), ABAR[t_to].item())
            gain *= a + b * scale(t_from)
        return z * gain
    x, states = z, [z]
    for t_from, t_to in zip(points, points[1:]):
        x = ddim_step(x, _eps(model, x, t_from), ABAR[t_from].item(), ABAR[t_to].item())
        states.append(x)
    return (x, states) if trajectory else x


@torch.no_grad()
def sample(model, x: torch.Tensor, points: list, clean: bool = False) -> torch.Tensor:
    """DDIM sampling from x at t_S back to t_0, eps evaluated at each step's noisier end.

    clean=True makes the last step land on abar = 1 (the denoised x0_hat, as guided-diffusion does)
    instead of on abar_{t_0}. clean=False retraces `invert`'s points but is *not* its exact inverse:
    `invert` evaluates eps at each step's less noisy end, `sample` at its noisier end, so a round trip
    sample(invert(z)) misses z by an error that shrinks as S grows (zero only where eps is constant along
    the step, e.g. eps = 0). Notebook 03 measures that error against S.
    """
    if ABAR[points[-1]] == 0:
        raise ValueError("cannot sample from abar = 0 (t = T): the latent there is eps alone; end the grid at t < T")
    pairs = list(zip(points[::-1], points[-2::-1]))
    for i, (t_from, t_to) in enumerate(pairs):
        abar_to = 1.0 if clean and i == len(pairs) - 1 else ABAR[t_to].item()
        x = ddim_step(x, _eps(model, x, t_from), ABAR[t_from].item(), abar_to)
    return x

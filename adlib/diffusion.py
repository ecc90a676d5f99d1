"""DDPM schedule, training loss, and deterministic DDIM steps with explicit (t_from, t_to) pairs.

Schedule: beta linear 1e-4 -> 0.02 over T = 1000 steps, abar_t = prod_{s<=t} (1 - beta_s).
One DDIM step (eta = 0) from t to t' with eps = eps_theta(x_t, t):
    x0_hat = (x_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t)
    x_t'   = sqrt(abar_t') * x0_hat + sqrt(1 - abar_t') * eps
Inversion walks t' > t (towards the N(0, I) prior), sampling walks back. A grid is the list of points
[t_0 = 0, t_1, ..., t_S]; timestep T (= 1000) stands for abar = 0, where the latent is eps itself.
"""
import numpy as np
import torch
import torch.nn.functional as F

T = 1000
GRIDS = ("paper", "reference")


def eval_timesteps(steps=(1, 2, 3, 5), grid="paper") -> list:
    """The timesteps at which inversion with these S evaluates eps (all points but the landing one)."""
    return sorted({t for s in steps for t in make_grid(s, grid)[:-1]})


def alphas_cumprod(num_steps: int = T, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """abar_0..abar_{T-1} in float64, plus abar_T = 0 appended (the reference grid's landing point)."""
    betas = np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    return torch.from_numpy(np.append(np.cumprod(1.0 - betas), 0.0))


ABAR = alphas_cumprod()


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
    """Move x from noise level abar_from to abar_to along the deterministic DDIM direction eps."""
    x0_hat = (x - (1 - abar_from) ** 0.5 * eps) / abar_from ** 0.5
    return abar_to ** 0.5 * x0_hat + (1 - abar_to) ** 0.5 * eps


def _eps(model, x, t: int):
    t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    return model(x, t_batch).to(x.dtype)


@torch.no_grad()
def invert(model, z: torch.Tensor, points: list, trajectory: bool = False):
    """DDIM inversion z = x_{t_0} -> x_{t_S}; with trajectory=True also the list of all S + 1 states."""
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


def add_noise(z: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """q(x_t | z): sqrt(abar_t) z + sqrt(1 - abar_t) noise, t per batch element."""
    a = ABAR.to(z.device)[t].to(z.dtype).view(-1, *([1] * (z.dim() - 1)))
    return a.sqrt() * z + (1 - a).sqrt() * noise


def training_loss(model, z: torch.Tensor, generator: torch.Generator = None, focus_t=None,
                  focus: float = 0.0) -> torch.Tensor:
    """epsilon-prediction MSE, E || eps - eps_theta(x_t, t) ||^2, with t ~ U{0..T-1}.

    focus > 0 draws that fraction of the batch's t from `focus_t` instead (the timesteps where
    inversion evaluates eps), so a short training run learns eps best where it is used.
    """
    t = torch.randint(0, T, (z.shape[0],), generator=generator, device="cpu")
    if focus > 0 and focus_t is not None:
        pick = torch.rand(z.shape[0], generator=generator) < focus
        choice = torch.as_tensor(focus_t)[torch.randint(0, len(focus_t), (z.shape[0],), generator=generator)]
        t = torch.where(pick, choice, t)
    t = t.to(z.device)
    noise = torch.randn(z.shape, generator=generator, device="cpu").to(z.device, z.dtype)
    return F.mse_loss(model(add_noise(z, t, noise), t).float(), noise.float())

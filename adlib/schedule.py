"""The DDPM forward process every floor above shares: T, the linear-beta schedule, q(x_t | z), the eps-loss.

beta linear 1e-4 -> 0.02 over T = 1000 steps, abar_t = prod_{s<=t} (1 - beta_s); abar_T = 0 is appended
(the reference grid's landing point, where the latent is eps itself).
x_t = sqrt(abar_t) z + sqrt(1 - abar_t) eps,   loss = E || eps - eps_theta(x_t, t) ||^2,  t ~ U{0..T-1}.
"""
import numpy as np
import torch
import torch.nn.functional as F

T = 1000


def alphas_cumprod(num_steps: int = T, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """abar_0..abar_{T-1} in float64, plus abar_T = 0 appended (the reference grid's landing point)."""
    betas = np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    return torch.from_numpy(np.append(np.cumprod(1.0 - betas), 0.0))


ABAR = alphas_cumprod()


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

"""Controls: what a trained eps-network is measured against, so a figure says what training added.

- eps = 0 (`ZeroEps`): inversion then only rescales x by sqrt(abar_S / abar_0); its denoising loss is
  E||n||^2 / (C h w) = 1 at every t. The adaLN-Zero families (mlp, dit) start exactly here.
- `control_model(model)`: a Gaussian + residual model's fitted Gaussian base alone (`zero-residual`); a
  network as initialised with `seed` (`untrained`); `gaussian` alone trains nothing and is its own
  control (`closed-form`).
"""
import torch


class ZeroEps(torch.nn.Module):
    """eps = 0: the untrained MLP / DiT (adaLN-Zero output layers), loss exactly mean(n^2) ~ 1."""

    def forward(self, x, t):
        return torch.zeros_like(x)


def control_model(model, seed: int = 0) -> tuple:
    """(name, model) of a model's control: `zero-residual` (its Gaussian base), `closed-form` (itself:
    nothing was trained) or `untrained` (the same network freshly initialised with `seed`)."""
    inner = getattr(model, "wrapped", None)
    if isinstance(inner, torch.nn.Module):  # a device wrapper (notebooks' OnDevice): the control of what it wraps
        name, control = control_model(inner, seed)
        return name, (model if control is inner else model.rewrap(control))
    device = next(iter([*model.parameters(), *model.buffers()]), torch.zeros(0)).device
    if getattr(model, "base", None) is not None:
        return "zero-residual", model.base
    torch.manual_seed(seed)
    if hasattr(model, "fit_base") or not hasattr(model, "from_config"):
        return "closed-form", model
    return "untrained", type(model).from_config(model.config).eval().to(device)

"""Notebook 03's computed lessons (issue 22): one vocabulary for its two baselines, reconstruction's t_r read from
the code, and the one-image comparison judged by standard errors.

- the **control** is what `adlib.models.controls.control_model` returns for the run's model: the model with its
  residual at zero (a `gaussian+...` model's fitted Gaussian base, `zero-residual`), the untrained network for
  an adaLN-Zero family (mlp, dit: `untrained`), or the model itself when nothing was trained (`closed-form`).
  Notebooks 04 and 05 put this control beside the trained model.
- the **zero ε** is eps = 0: the output of an untrained adaLN-Zero network. Inversion with it only rescales x,
  x_t' = sqrt(abar_t' / abar_t) x_t, and its round trip is exact. It is the control only where the control
  outputs exactly 0.
"""
import torch

from adlib.evaluation.baselines import reconstruct
from adlib.models.controls import control_model
from adlib.teach import verdicts
from adlib.teach.viz.inversion_lessons import cell_mask, cost_sentence


def unwrap(model):
    """The eps-network itself when the notebooks wrapped it for a device (`adlib.teach.notebooks.on_device`)."""
    inner = getattr(model, "wrapped", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def _device(model) -> torch.device:
    return next(iter([*model.parameters(), *model.buffers()]), torch.zeros(0)).device


@torch.no_grad()
def control_vs_zero_eps(model, z: torch.Tensor, seed: int = 0, t: int = 500) -> dict:
    """{"name", "control", "kind", "is_zero_eps", "sentence"}: this model's control (`control_model` of the
    unwrapped network) and whether it is the zero eps (outputs exactly 0 on `z` at timestep t)."""
    name, control = control_model(unwrap(model), seed)
    dev = _device(control)
    out = control(z.to(dev), torch.full((len(z),), t, dtype=torch.long, device=dev)).cpu()
    is_zero = bool(out.abs().max() == 0)
    kind = type(control).__name__
    sentence = (f"This run's control (`control_model`): {name} ({kind}). "
                + ("It outputs exactly 0: for this network the control *is* the zero ε."
                   if is_zero else
                   "It does not output 0: the zero ε is not this run's control, only a rescaling of z."))
    return {"name": name, "control": control, "kind": kind, "is_zero_eps": is_zero, "sentence": sentence}


class _FirstTimestep:
    """Records the timestep of the first network call (reconstruction's first call is at t_r)."""

    def __init__(self, model):
        self.model, self.t = model, None

    def __call__(self, x, t):
        if self.t is None:
            self.t = int(t.reshape(-1)[0])
        return self.model(x, t)


def reconstruction_start(model, z: torch.Tensor, r: float, k: int, seed: int = 0) -> int:
    """The timestep `adlib.evaluation.baselines.reconstruct` noises z to, read off its first network call."""
    spy = _FirstTimestep(model)
    reconstruct(spy, z[:1], r, k, seed)
    return spy.t


def side_sentence(result: dict, mask=None) -> str:
    """What one side-by-side result (`inversion_lessons.InversionVsReconstruction.compute`) says: the cost of
    each method, and which map separates the defect's latent cells from the others, judged by the AUROCs'
    standard errors (`adlib.teach.verdicts`, cells as the samples). Without marked cells only the peak contrasts
    (max / median) are given: one ratio each, with no standard error, so no verdict."""
    cost = cost_sentence(result, result["t_r"])
    a, b = result["contrast_invad"], result["contrast_reconstruction"]
    if result["contrast_kind"] == "auroc":
        cells = cell_mask(mask, result["invad"].shape[-1]).reshape(-1).astype(int)
        return (f"{cost} On this image ({int(cells.sum())} defect cells, {int((cells == 0).sum())} others), the AUROC "
                f"of each map's cells inside vs outside the mask: "
                + verdicts.sentence("InvAD's norm map", a, "the reconstruction error", b, cells) + ".")
    return (f"{cost} No defect cells are marked on this image: peak contrast (max / median) {a:.3g} for InvAD's norm "
            f"map, {b:.3g} for the reconstruction error — one image's ratios, no verdict.")

"""Which Gaussian to whiten with, chosen from the normal images alone (notebook 05, issue 19).

`adlib.features.covariance.choose_gaussian` fits per-position Gaussians with Sigma_ij(rho) = (1 - rho) S_ij +
rho S_pooled + ridge I (rho = 0, 0.1, ..., 1) and one `shared` Gaussian on four fifths of the normal training
features, and keeps the one under which the held-out fifth is most likely. Here, for the notebook:

    candidate_axis(choice)          the candidates' labels and held-out NLLs, in the table's order
    covariance_rank(z, rhos)        each position's rank of Sigma_ij(rho) without its ridge (rho = 0: <= N - 1)
    whiten_parts(parts, gaussian)   train / val / test features whitened by one fitted candidate
    normal_nll(z, g)                NLL per image under a fitted candidate (unseen normals: does the choice hold?)
    gaussian_aurocs(...)            image AUROC of one candidate through the default's scoring (standard eps, S
                                    steps, local-top pooled by rho as the default pools it,
                                    normalised on the validation normals)
    residual_vs_control(...)        a learned residual over that base beside its zero-residual control
    choice_figure(choices)          the held-out NLL per candidate, one panel per data set, the chosen one marked
    choice_sentence(name, choice)   the same in words
"""
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from plotly.subplots import make_subplots

from adlib.evaluation.metrics import image_metrics
from adlib.evaluation.scorers import invad_scorer
from adlib.features.covariance import gaussian_nll, moments, shrink
from adlib.features.standardize import standardize
from adlib.models import build_model
from adlib.models.controls import control_model
from adlib.teach import verdicts
from adlib.teach.notebooks.device import on_device
from adlib.teach.viz.base import ANOMALOUS, NORMAL
from adlib.teach.viz.training import per_image_losses

PARTS = ("train", "val", "test")


def candidate_axis(choice: dict) -> tuple:
    """(names, x labels, held-out NLL per image) of a `choose_gaussian` result, in its table's order:
    rho=0 ... rho=1 labelled "0" ... "1", then "shared"."""
    names = list(choice["held_out_nll"])
    labels = ["shared" if n == "shared" else n.split("=", 1)[1] for n in names]
    return names, labels, np.array([choice["held_out_nll"][n] for n in names], dtype=np.float64)


def covariance_rank(z: torch.Tensor, rhos=(0.0,), rtol: float = 1e-10) -> list:
    """For each rho: the rank of (1 - rho) S_ij + rho S_pooled at each position (the candidate's covariance without its
    ridge), a tensor of P ints; the moments are computed once. With N images S_ij has rank <= N - 1; pooling over
    positions (rho > 0) fills the directions it lacks."""
    _, cov = moments(z)
    return [torch.linalg.matrix_rank(shrink(cov, rho, "pooled", ridge=0.0), rtol=rtol, hermitian=True) for rho in rhos]


def _stats(g: dict) -> dict:
    """A fitted candidate ({"mean": P x C, "chol": P x C x C}) as `standardize`'s statistics."""
    return {"mean": g["mean"][:, None, :].float().contiguous(), "chol": g["chol"].float().contiguous()}


def whiten_parts(parts: dict, gaussian: dict) -> dict:
    """{part: features whitened by a fitted candidate} (`covariance.fit_gaussian`, or `choose_gaussian`'s result,
    which is the chosen candidate refitted on all the training images): z -> L^-1 (z - mu) at each position."""
    st = _stats(gaussian)
    return {k: standardize(v, st) for k, v in parts.items()}


def normal_nll(z: torch.Tensor, g: dict) -> np.ndarray:
    """-log N(z; candidate) per image (nats), summed over positions: the held-out criterion on any images."""
    return gaussian_nll(z, g["mean"], g["chol"]).numpy()


def _default_model(w: torch.Tensor):
    """The default's eps-network: the closed-form eps of N(0, I) (`standard`), nothing trained."""
    return build_model("standard", w.shape[1], w.shape[-1]).fit_base(w)


def gaussian_aurocs(white: dict, labels, pool: float, steps: int = 3, grid: str = "paper",
                    scores=("local-top", "max")) -> dict:
    """{score: image AUROC} of whitened features `white` (whiten_parts) through the default's scoring: the standard
    eps, S DDIM steps, the norm map's local-top with its per-position std pooled by `pool` (the rho; the mean too
    where the content moves, `scoring.mean_pool`) and normalised on white["val"] (the default cross-fits that
    normalisation instead), and the plain map maximum."""
    out = invad_scorer(_default_model(white["train"]), steps, grid, white["val"], pool=pool)(white["test"])
    return {k: image_metrics(labels, out[k])["image_auroc"] for k in scores}


def residual_vs_control(cfg, white: dict, labels, pool: float, score: str = "local-top", seed: int = 0) -> dict:
    """Train cfg.model (a `standard+...` residual over N(0, I)) on white["train"] with adlib's `fit`, then beside
    its zero-residual control: the validation normals' denoising loss, image by image with the same (t, noise)
    for both (`verdicts.compare_paired` of residual minus control), and the image AUROC of `score` on white["test"].
    Returns {"loss": compare_paired's dict, "auroc": {"residual", "control"}, "compare": compare_aurocs's dict,
    "seconds": training time, "iters"}."""
    from adlib.runs.train import fit, pick_device
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ema = fit(cfg, white["train"], Path(tmp), progress=False)[1]
    seconds = time.perf_counter() - t0
    device = pick_device(cfg.device)
    net = on_device(copy.deepcopy(ema), device)
    control = on_device(control_model(ema)[1], device)
    loss = {name: per_image_losses(m, white["val"], seed=seed) for name, m in (("residual", net), ("control", control))}
    auroc = {}
    for name, m in (("residual", net), ("control", control)):
        out = invad_scorer(m, cfg.steps, cfg.grid, white["val"], pool=pool)(white["test"])
        auroc[name] = image_metrics(labels, out[score])["image_auroc"]
    return {"loss": verdicts.compare_paired(loss["residual"] - loss["control"]),
            "loss_control": float(loss["control"].mean()), "auroc": auroc,
            "compare": verdicts.compare_aurocs(auroc["residual"], auroc["control"], labels),
            "seconds": seconds, "iters": cfg.iters}


def choice_figure(choices: dict, height: int = 380):
    """{data name: choose_gaussian result} -> one panel each: the held-out NLL per image divided by the feature
    values per image (C h w: nats per value, comparable across data sets), log scale, per candidate; the
    per-position Gaussian (rho = 0) and the chosen one marked."""
    fig = make_subplots(rows=1, cols=len(choices), subplot_titles=[f"{name}: chosen {c['chosen']}"
                                                                   for name, c in choices.items()])
    for k, (name, c) in enumerate(choices.items(), start=1):
        names, labels, nll = candidate_axis(c)
        per_value = nll / c["mean"].numel()
        fig.add_scatter(x=labels, y=per_value, mode="lines+markers", name=name, line=dict(color=NORMAL),
                        showlegend=False, row=1, col=k)
        ic = names.index(c["chosen"])
        if "rho=0" in names:
            i0 = names.index("rho=0")
            fig.add_scatter(x=[labels[i0]], y=[per_value[i0]], mode="markers", name="per-position (ρ = 0)",
                            marker=dict(color="gray", size=12, symbol="square-open", line=dict(width=2)),
                            showlegend=k == 1, row=1, col=k)
        fig.add_scatter(x=[labels[ic]], y=[per_value[ic]], mode="markers", name="chosen (lowest)",
                        marker=dict(color=ANOMALOUS, size=16, symbol="star"), showlegend=k == 1, row=1, col=k)
        fig.update_xaxes(title_text="candidate: ρ, or shared", type="category", row=1, col=k)
        fig.update_yaxes(type="log", row=1, col=k, title_text="held-out NLL / (C h w), nats" if k == 1 else None)
    fig.update_layout(height=height, margin=dict(t=70, b=40),
                      title="which Gaussian? the held-out fifth of the normal training images decides")
    return fig


def choice_sentence(name: str, choice: dict) -> str:
    """The choice in words: how many images fitted and scored it, the chosen candidate's held-out NLL, and how many
    nats per image more the per-position Gaussian (rho=0) gives the same held-out images."""
    table = choice["held_out_nll"]
    best = table[choice["chosen"]]
    head = (f"{name}: fitted on {choice['n_fit']}, scored on {choice['n_held_out']} held-out normal images; "
            f"chosen **{choice['chosen']}** ({best:,.0f} nats per image)")
    if "rho=0" in table and choice["chosen"] != "rho=0":
        gap = table["rho=0"] - best
        head += (f"; the per-position Gaussian (rho=0) gives the held-out images {gap:,.0f} nats more per image "
                 f"({gap / choice['mean'].numel():.3g} per feature value)")
    return head + "."

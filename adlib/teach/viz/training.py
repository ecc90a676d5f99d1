"""What a training run learned, for notebook 02: the EMA's averaging window, the denoising loss per timestep
beside the untrained control, computed verdicts, and a timestep explorer.

- EMA: diffusers' EMAModel updates theta_EMA <- b_n theta_EMA + (1 - b_n) theta at step n with
  b_n = min(decay, n / (n + 9)) (b_1 = 0). After N steps theta_EMA = sum_k w_k theta_k with
  w_k = (1 - b_k) prod_{j > k} b_j; the mean age sum_k w_k (N - k) says how far back it averages
  (b/(1 - b) = 999 steps for a constant 0.999; about N/10 while the warm-up still holds, N < ~9,000).
- Controls (adlib/models/controls.py): a `gaussian+...` model without its residual (`model.base`), the
  network as initialised, or eps = 0, whose loss is E||n||^2 / (C h w) = 1 at every t.
- Loss at one timestep t: (1 / C h w) E ||n - eps(sqrt(abar_t) z + sqrt(1 - abar_t) n, t)||^2. For features that
  are exactly N(mu, Sigma), the best eps has loss mean_k abar lam_k / (abar lam_k + 1 - abar) (lam: Sigma's
  eigenvalues): about 1 at small t (the noise is a tiny part of x_t), 0 at t -> T (x_t is the noise).
"""
import numpy as np
import torch
from plotly.subplots import make_subplots

from adlib.models import denoising_loss
from adlib.models.controls import ZeroEps
from adlib.schedule import ABAR, T, add_noise
from adlib.teach.viz.explorers import _Explorer
from adlib.teach import verdicts


def ema_weights(n_steps: int, decay: float) -> np.ndarray:
    """w_k (k = 1..N): the weight of step k's parameters in the EMA after N steps (diffusers' warm-up)."""
    from diffusers.training_utils import EMAModel
    ema = EMAModel([torch.zeros(1)], decay=decay)
    b = np.array([ema.get_decay(n) for n in range(1, n_steps + 1)], dtype=np.float64)
    after = np.append(np.cumprod(b[::-1])[::-1][1:], 1.0)  # prod_{j > k} b_j
    return (1 - b) * after


def ema_summary(n_steps: int, decay: float) -> dict:
    """The EMA after N steps: its last decay, mean age (steps), the steps holding 90 % of its weight, and the
    window 1 / (1 - decay) a constant decay would have."""
    w = ema_weights(n_steps, decay)
    ages = n_steps - np.arange(1, n_steps + 1)
    from diffusers.training_utils import EMAModel
    last = EMAModel([torch.zeros(1)], decay=decay).get_decay(n_steps)
    tail90 = int(np.searchsorted(np.cumsum(w[::-1]), 0.9) + 1)
    return {"steps": n_steps, "decay": decay, "last_decay": last, "mean_age": float((w * ages).sum()),
            "tail90": tail90, "constant_window": 1 / (1 - decay)}


def ema_sentence(summary: dict, lr_mean: float, lr_peak: float, rel_distance: float, auroc_gap: float,
                 gap_se: float = None) -> str:
    """Why EMA and raw weights agree (or not) on this run, from its numbers. gap_se: the standard error of the
    AUROC difference (adlib.teach.verdicts); given, 'alike' means within 2 of them, else within 0.01."""
    n, s = summary["steps"], summary
    text = (f"After {n} steps the EMA's decay is {s['last_decay']:.4f} (diffusers' warm-up n/(n+9), capped at "
            f"{s['decay']}): the EMA is a weighted average of the weights of the last {s['tail90']} steps (90 % of its "
            f"weight; mean age {s['mean_age']:.0f} steps = {s['mean_age'] / n:.0%} of the run). ")
    if s["mean_age"] < 0.5 * s["constant_window"]:
        text += (f"A constant decay of {s['decay']} would average ~{s['constant_window']:.0f} steps; this run is too "
                 "short for that. ")
    text += (f"Over those steps the cosine schedule's learning rate averages {lr_mean:.2g}, {lr_mean / lr_peak:.1%} of "
             f"its peak {lr_peak:g}, so the raw weights hardly move while the EMA averages them: "
             f"‖θ_EMA − θ‖ / ‖θ‖ = {rel_distance:.3f}. ")
    tie = abs(auroc_gap) <= verdicts.K * gap_se if gap_se is not None else abs(auroc_gap) < 0.01
    if tie:
        text += (f"Hence EMA and raw weights score alike (best image AUROC differs by {auroc_gap:+.3f}"
                 + (f", within {verdicts.K:g} standard errors, {verdicts.K * gap_se:.3f})." if gap_se is not None else ")."))
    else:
        text += (f"Still, their best image AUROC differs by {auroc_gap:+.3f} (EMA − raw): the averaged weights "
                 "are a different model here, worth comparing on validation data before choosing one.")
    return text


def ema_lr_mean(weights: np.ndarray, lr_at) -> float:
    """The learning rate averaged with the EMA's weights: sum_k w_k lr(k), lr_at(i) for iteration i = k - 1."""
    return float(sum(w * lr_at(k) for k, w in enumerate(weights)))


@torch.no_grad()
def loss_at_t(model, z: torch.Tensor, t: int, seed: int = 0, draws: int = 1, batch_size: int = 64) -> float:
    """(1 / C h w) E ||n - eps(x_t, t)||^2 over z at one timestep t, noise from `seed` (the same for every model):
    adlib.models.denoising_loss at a fixed t."""
    return denoising_loss(model, z, seed=seed, n_t=draws, batch_size=batch_size, t=t)


def gaussian_loss_at_t(eigvals, t) -> np.ndarray:
    """The best eps's loss at each t if the features were exactly Gaussian with these eigenvalues:
    mean_k abar lam_k / (abar lam_k + 1 - abar)."""
    lam = np.asarray(eigvals, dtype=np.float64).reshape(-1)
    a = ABAR.double().numpy()[np.atleast_1d(t)][:, None]
    return (a * lam / (a * lam + 1 - a)).mean(1)


def loss_verdict(trained: float, control: float, control_name: str) -> str:
    """A sentence on the held-out denoising loss of a trained model vs its untrained control."""
    r = (trained - control) / control
    if r < -0.01:
        return (f"The trained model's held-out denoising loss {trained:.4f} is {-r:.1%} below its control's "
                f"({control_name}, {control:.4f}): training learned structure of the noise that holds on new images.")
    if r > 0.01:
        return (f"The trained model's held-out denoising loss {trained:.4f} is {r:.1%} above its control's "
                f"({control_name}, {control:.4f}): it learned nothing that generalises, and lost ground.")
    return (f"The trained model's held-out denoising loss {trained:.4f} is within 1 % of its control's "
            f"({control_name}, {control:.4f}; {r:+.2%}): it learned nothing the control does not already give.")


@torch.no_grad()
def per_image_losses(model, z: torch.Tensor, seed: int = 0, n_t: int = 8, batch_size: int = 64,
                     t: int = None) -> np.ndarray:
    """Each image's denoising loss (1 / C h w) ||n - eps(x_t, t)||^2 averaged over n_t draws of (t, n), with the
    draws of adlib.models.denoising_loss (same seed: same t and noise for every model), so their mean is it.
    t given: that timestep for every draw, as denoising_loss(..., t=t) and loss_at_t."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(len(z), dtype=torch.float64)
    for _ in range(n_t):
        steps = (torch.randint(0, T, (len(z),), generator=g) if t is None
                 else torch.full((len(z),), int(t), dtype=torch.long))
        noise = torch.randn(z.shape, generator=g, dtype=z.dtype)
        for i in range(0, len(z), batch_size):
            ti, ni = steps[i:i + batch_size], noise[i:i + batch_size]
            eps = model(add_noise(z[i:i + batch_size], ti, ni), ti).to(z.dtype)
            out[i:i + batch_size] += (eps - ni).pow(2).flatten(1).mean(1).double()
    return (out / n_t).numpy()


def paired_loss_verdict(trained: np.ndarray, control: np.ndarray, control_name: str) -> tuple:
    """(sentence, verdicts.compare_paired result) for per-image held-out losses of a trained model and its
    control on the same images and draws: the mean difference judged against 2 standard errors."""
    c = verdicts.compare_paired(np.asarray(trained) - np.asarray(control))
    mt, mc = float(np.mean(trained)), float(np.mean(control))
    nums = (f"held-out denoising loss {mt:.4f} vs its control's ({control_name}) {mc:.4f}: difference "
            f"{c['diff']:+.4f} ± {c['se']:.4f} (one standard error over {len(trained)} images)")
    if c["verdict"] == "lower":
        return (f"The trained model's {nums}, beyond {c['k']:g} standard errors below: training learned structure "
                "of the noise that holds on new images.", c)
    if c["verdict"] == "higher":
        return (f"The trained model's {nums}, beyond {c['k']:g} standard errors above: it learned nothing that "
                "generalises, and lost ground.", c)
    return (f"The trained model's {nums}, within {c['k']:g} standard errors: on these images it is level with its "
            "control — no measurable gain from training.", c)


def shift_sentence(train_ms: float, val_ms: float, n_train: int, channels: int) -> str:
    """Why a held-out loss can dwarf the training loss: held-out features far larger than the training ones
    (mean square per element), e.g. whitening fitted on fewer images than channels. Empty when they agree."""
    if val_ms <= 2 * train_ms:
        return ""
    text = (f"The held-out features are {val_ms / train_ms:.0f}× the training features in mean square "
            f"({val_ms:.3g} vs {train_ms:.3g} per element). ")
    if n_train <= 2 * channels:
        text += (f"With {n_train} training images for {channels} channels, the standardisation fitted on them leaves "
                 "directions in which the training features never varied; held-out features do vary there and "
                 "come out huge. ")
    return text + ("On such inputs, far from anything seen in training, a network extrapolates, and at small t "
                   "(where x_t ≈ z) its errors dominate the average: see the loss per t below.")


class TimestepExplorer(_Explorer):
    """Slide the timestep t: one feature channel of an image z, its noised x_t, the noise n and the model's
    eps(x_t, t), beside the held-out loss per t of the model, its control and eps = 0.

    z: held-out standardised features N x C x h x w; models: {name: module} (the first is the one shown
    in the maps); ts: the timesteps on the slider; theory: optional eigenvalues for gaussian_loss_at_t."""

    def __init__(self, z: torch.Tensor, models: dict, ts, names=None, theory=None, seed: int = 0, t: int = None):
        import ipywidgets as w
        self.z, self.models, self.ts = z.float().cpu(), dict(models), [int(v) for v in ts]
        self.names = list(names) if names is not None else [f"image {i}" for i in range(len(z))]
        self.noise = torch.randn(self.z.shape, generator=torch.Generator().manual_seed(seed))
        self.curves = {name: np.array([loss_at_t(m, self.z, v, seed) for v in self.ts]) for name, m in self.models.items()}
        self.curves["ε = 0"] = np.array([loss_at_t(ZeroEps(), self.z, v, seed) for v in self.ts])
        if theory is not None:
            self.curves["Gaussian optimum (theory)"] = gaussian_loss_at_t(theory, self.ts)
        start = t if t in self.ts else self.ts[len(self.ts) // 2]
        self.t = w.SelectionSlider(options=self.ts, value=start, description="t", continuous_update=False)
        self.image = w.Dropdown(options=[(n, i) for i, n in enumerate(self.names)], value=0, description="image")
        self.channel = w.IntSlider(value=0, min=0, max=self.z.shape[1] - 1, description="channel",
                                   continuous_update=False)
        self.numbers = None
        self._wire([self.t, self.image, self.channel])

    @torch.no_grad()
    def maps(self, t: int, index: int, channel: int) -> dict:
        """The four maps at (t, image, channel) and this image's loss under each model at that t."""
        z, n = self.z[index:index + 1], self.noise[index:index + 1]
        tt = torch.tensor([int(t)])
        x = add_noise(z, tt, n)
        model_name, model = next(iter(self.models.items()))
        eps = model(x, tt).float().cpu()
        losses = {name: (m(x, tt).float().cpu() - n).pow(2).mean().item() for name, m in self.models.items()}
        losses["ε = 0"] = n.pow(2).mean().item()
        return {"z": z[0, channel].numpy(), "x_t": x[0, channel].numpy(), "noise": n[0, channel].numpy(),
                "eps": eps[0, channel].numpy(), "model": model_name, "abar": float(ABAR[int(t)]), "losses": losses}

    def figure_for(self, t: int, index: int, channel: int):
        m = self.maps(t, index, channel)
        titles = [f"z (channel {channel})", f"x_t, ᾱ_t = {m['abar']:.3f}", "noise n", f"{m['model']}: ε(x_t, t)",
                  "held-out loss per t"]
        fig = make_subplots(rows=2, cols=4, specs=[[{}, {}, {}, {}], [{"colspan": 4}, None, None, None]],
                            subplot_titles=titles, vertical_spacing=0.14, row_heights=[0.45, 0.55])
        lim = float(max(np.abs(m[k]).max() for k in ("z", "x_t", "noise", "eps"))) or 1.0
        for col, key in enumerate(("z", "x_t", "noise", "eps"), start=1):
            fig.add_heatmap(z=m[key], colorscale="RdBu", zmin=-lim, zmax=lim, showscale=col == 4, row=1, col=col,
                            colorbar=dict(len=0.4, y=0.8))
            fig.update_xaxes(showticklabels=False, row=1, col=col)
            fig.update_yaxes(showticklabels=False, autorange="reversed", row=1, col=col)
        for name, curve in self.curves.items():
            dash = "dot" if name.startswith("Gaussian optimum") else "dash" if name == "ε = 0" else None
            fig.add_scatter(x=self.ts, y=curve, mode="lines+markers", name=name, line=dict(dash=dash), row=2, col=1)
        fig.add_vline(x=int(t), line_color="black", line_width=1, row=2, col=1)
        fig.update_xaxes(title_text="t", row=2, col=1)
        fig.update_yaxes(title_text="loss per element", rangemode="tozero", row=2, col=1)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in m["losses"].items())
        fig.update_layout(height=560, margin=dict(t=70, b=40, l=40, r=10),
                          title=f"{self.names[index]}, t = {t}: loss of this image — {shown}")
        return fig, m

    def update(self, change=None):
        self.figure, m = self.figure_for(self.t.value, self.image.value, self.channel.value)
        self.numbers = {"t": self.t.value, "abar": m["abar"], "losses": m["losses"],
                        "curves": {k: v.tolist() for k, v in self.curves.items()}}
        self._refresh()
        return self.figure

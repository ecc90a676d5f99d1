"""Notebook 04's lessons computed from its own rows: the one-step inversion, the plateau in S, the 1 %
false-positive threshold, what a head costs next to the backbone, which method won; and `StepExplorer`,
a slider over S showing the normal and anomalous score histograms and the ROC at that S.

Every sentence here is built from measured numbers, so it says what *this* run shows, not a fixed claim.
"""
import numpy as np
import torch
from plotly.subplots import make_subplots

from adlib.evaluation.metrics import image_metrics
from adlib.method.inversion import invert, make_grid
from adlib.schedule import ABAR
from adlib.teach.viz.base import ANOMALOUS, NORMAL, SCORE_LABELS
from adlib.teach.viz.explorers import _Explorer
from adlib.teach import verdicts


def one_step_numbers(model, z: torch.Tensor, grid: str = "paper") -> dict:
    """The S = 1 inversion written out: x_T = c_z z + c_eps eps(z, t_0), one eps evaluated at t_0 = 0.

    From x0_hat = (z - sqrt(1 - a0) eps) / sqrt(a0) and x_T = sqrt(aT) x0_hat + sqrt(1 - aT) eps:
        c_z = sqrt(aT / a0),   c_eps = sqrt(1 - aT) - sqrt(aT) sqrt(1 - a0) / sqrt(a0).
    Returns the timesteps, a0, aT, c_z, c_eps, the noise level sqrt(1 - a0) eps was trained to find at
    t_0, medians over z of ||z|| / sqrt(d) and ||eps(z, t_0)|| / sqrt(d), the share of ||x_T|| that the eps
    term makes up, and `max_error`: max |x_T - adlib.method.inversion.invert(z, S = 1)| / max |x_T| (the formula is
    the library's step)."""
    t0, t1 = make_grid(1, grid)
    a0, aT = ABAR[t0].item(), ABAR[t1].item()
    c_z = (aT / a0) ** 0.5
    c_eps = (1 - aT) ** 0.5 - aT ** 0.5 * (1 - a0) ** 0.5 / a0 ** 0.5
    with torch.no_grad():
        eps = model(z, torch.full((len(z),), t0, dtype=torch.long)).to(z.dtype)
        x_t = c_z * z + c_eps * eps
        err = ((x_t - invert(model, z, [t0, t1])).abs().max() / x_t.abs().max()).item()
    d = z[0].numel() ** 0.5
    n = lambda v: v.flatten(1).norm(dim=1)  # noqa: E731
    return {"t_from": t0, "t_to": t1, "abar_from": a0, "abar_to": aT, "c_z": c_z, "c_eps": c_eps,
            "noise_std": (1 - a0) ** 0.5, "z_norm": float(n(z).median() / d), "eps_norm": float(n(eps).median() / d),
            "eps_share": float((abs(c_eps) * n(eps) / n(x_t)).median()), "max_error": err,
            "eps_cos": float(torch.nn.functional.cosine_similarity(eps.flatten(1), z.flatten(1)).median())}


def step_auroc(rows, grid: str = "paper", score: str = "combined") -> dict:
    """{S: image AUROC} of one score on one grid from the sweep's rows."""
    return {r["steps"]: r["image_auroc"] for r in rows if r["grid"] == grid and r["score"] == score}


def plateau_step(auroc_by_step: dict, tol: float = 0.005, labels=None) -> int:
    """The smallest S after which no larger S improves the AUROC by more than `tol` — or, given the test
    `labels`, by more than adlib.teach.verdicts' rule (beyond 2 standard errors of the difference)."""
    steps = sorted(auroc_by_step)

    def better(u, s):
        if labels is not None:
            return verdicts.compare_aurocs(auroc_by_step[u], auroc_by_step[s], labels)["verdict"] == "higher"
        return auroc_by_step[u] > auroc_by_step[s] + tol
    for s in steps:
        if not any(better(u, s) for u in steps if u > s):
            return s
    return steps[-1]


def one_step_sentences(nums: dict, auroc_by_step: dict, score: str = "combined", labels=None) -> list:
    """Why S = 1 does what it does on this run, from `one_step_numbers` and the sweep's AUROCs."""
    s1, best_s = auroc_by_step.get(1), max(auroc_by_step, key=auroc_by_step.get)
    out = [f"With S = 1 the grid is t = {nums['t_from']} → {nums['t_to']}: ε is evaluated once, at "
           f"t = {nums['t_from']} (ᾱ = {nums['abar_from']:.4f}), and the latent is x_T = {nums['c_z']:.4f}·z + "
           f"{nums['c_eps']:.4f}·ε(z, {nums['t_from']}) (ᾱ_T = {nums['abar_to']:.1e}): z itself enters with a "
           f"weight below 1 %.",
           f"At t = {nums['t_from']} the network's training input is z plus noise of standard deviation only "
           f"{nums['noise_std']:.3f}, hardly visible against the features' own spread. Here it answers with "
           f"‖ε(z, 0)‖/√d = {nums['eps_norm']:.3f} for features with ‖z‖/√d = {nums['z_norm']:.2f} (the exact "
           f"Gaussian ε on whitened features would answer {nums['noise_std']:.2f}·z), and that answer makes up "
           f"{100 * nums['eps_share']:.0f} % of ‖x_T‖: the S = 1 score measures how the network reacts to "
           f"almost-clean input, not how far z travels along the path to the prior."]
    if s1 is None:
        return out
    gap = auroc_by_step[best_s] - s1
    label = SCORE_LABELS.get(score, score)
    if labels is not None:
        others = [u for u in auroc_by_step if u != 1]
        if not others:
            return out
        best_s = max(others, key=auroc_by_step.get)
        gap = auroc_by_step[best_s] - s1
        c = verdicts.compare_aurocs(auroc_by_step[best_s], s1, labels)
        se = f" (± {verdicts.auroc_se(s1, labels):.3f})"
        if c["verdict"] == "tie":
            return out + [f"Measured ({label}): S = 1 reaches image AUROC {s1:.3f}{se}, S = {best_s} "
                          f"{auroc_by_step[best_s]:.3f}: a gap of {gap:.3f}, within {c['k']:g} standard errors of "
                          f"the difference ({c['k'] * c['se']:.3f}) — on this run the single step does *not* "
                          f"collapse (median cosine of ε(z, 0) with z: {nums['eps_cos']:.2f})."]
        return out + [f"Measured ({label}): S = 1 reaches image AUROC {s1:.3f}{se}, S = {best_s} "
                      f"{auroc_by_step[best_s]:.3f} ({gap:+.3f}, beyond {c['k']:g} standard errors, "
                      f"{c['k'] * c['se']:.3f}): the single step loses; more steps let ε be re-evaluated at "
                      f"noisier t, where it has learned the shape of the normal features."]
    if gap > 0.05:
        out.append(f"Measured ({label}): S = 1 reaches image AUROC {s1:.3f}, S = {best_s} "
                   f"{auroc_by_step[best_s]:.3f} ({gap:+.3f}): the single step collapses; more steps let ε be "
                   f"re-evaluated at noisier t, where it has learned the shape of the normal features.")
    else:
        why = (f"ε(z, 0) is nearly a multiple of z here (median cosine {nums['eps_cos']:.2f}), so x_T is nearly a "
               f"rescaled z and keeps z's ranking — as the exact Gaussian ε on whitened features would"
               if nums["eps_cos"] >= 0.9 else
               f"ε(z, 0) is not a multiple of z (median cosine {nums['eps_cos']:.2f}), yet what it computes still "
               f"ranks these images")
        out.append(f"Measured ({label}): S = 1 reaches image AUROC {s1:.3f}, within {gap:.3f} of the best "
                   f"(S = {best_s}, {auroc_by_step[best_s]:.3f}): on this run the single step does *not* "
                   f"collapse: {why}.")
    return out


def threshold_at_fpr(scores, labels, fpr: float = 0.01) -> dict:
    """The lowest threshold (score > threshold = anomalous) that flags at most `fpr` of the normal images,
    with the false- and true-positive rates it gives on them."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    normal = np.sort(scores[labels == 0])
    k = int(np.floor(fpr * len(normal)))  # normals allowed above the threshold
    thr, anomalous = normal[len(normal) - k - 1], scores[labels == 1]
    return {"threshold": float(thr), "fpr": float((normal > thr).mean()),
            "tpr": float((anomalous > thr).mean()) if len(anomalous) else float("nan"), "n_normal": len(normal)}


def head_speed_needed(backbone_ips: float, fraction: float) -> float:
    """Images/s a head must reach alone for backbone + head to run at `fraction` of the backbone alone:
    1 / (1/B + 1/H) = f B  =>  H = B f / (1 - f); infinite for f >= 1 (a head is never free)."""
    return float("inf") if fraction >= 1 else backbone_ips * fraction / (1 - fraction)


def speed_from_seconds(seconds: dict, n: int) -> tuple:
    """({name: speed fields}, backbone fields) from adlib.evaluation.speed_table.time_heads' seconds, every figure
    derived from the two medians the table shows, so they agree with each other:

    backbone B = n / median(backbone seconds), head H = n / median(head seconds) (images/s alone);
    end to end 1 / (1/B + 1/H) images/s; x backbone = (1/B) / (1/B + 1/H) < 1. `*_spread`: interquartile range /
    median of the per-round times (how much a loaded machine moved them)."""
    def med_spread(x):
        x = np.asarray(x, dtype=float)
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        return float(med), float((q3 - q1) / med) if med > 0 else 0.0
    b_med, b_spread = med_spread(seconds["backbone"])
    back = {"images_per_second": n / b_med, "ms_per_image": 1e3 * b_med / n, "spread": b_spread,
            "rounds": len(seconds["backbone"])}
    rows = {}
    for name, sec in seconds.items():
        if name == "backbone":
            continue
        h_med, h_spread = med_spread(sec)
        total = b_med + h_med
        rows[name] = {"head_ms_per_image": 1e3 * h_med / n, "head_images_per_second": n / h_med if h_med else float("inf"),
                      "head_spread": h_spread, "images_per_second": n / total, "backbone_ratio": b_med / total,
                      "backbone_images_per_second": back["images_per_second"]}
    return rows, back


def dev_mask(test) -> np.ndarray:
    """True for the test samples of the development half: the ELPV `:dev` protocol's seeded halving
    (adlib.data.datasets.protocol_half: normals and anomalous halved separately), applied to any test part."""
    from adlib.data.datasets import protocol_half
    keep = {s.path for s in protocol_half(list(test), "dev")}
    return np.array([s.path in keep for s in test])


def half_aurocs(scores, labels, dev) -> tuple:
    """(image AUROC on the development half, on the held-out half) of one score."""
    v, y, dev = np.asarray(scores, dtype=float), np.asarray(labels), np.asarray(dev, dtype=bool)
    return (image_metrics(y[dev], v[dev])["image_auroc"], image_metrics(y[~dev], v[~dev])["image_auroc"])


def family(name: str, control_prefix: str) -> str:
    """The method a row belongs to: its settings (S, score, (r, K)) are chosen within the family."""
    for f in (control_prefix, "invad", "reconstruction"):
        if name.startswith(f):
            return f
    return name


def choose_on_dev(rows, control_prefix: str) -> list:
    """One row per method family, the setting with the best `dev_auroc`, its `image_auroc` replaced by the
    held-out half's (`held_auroc`): designs chosen on one half, reported on the other."""
    best = {}
    for r in rows:
        f = family(r["name"], control_prefix)
        if f not in best or r["dev_auroc"] > best[f]["dev_auroc"]:
            best[f] = r
    return [dict(r, image_auroc=r["held_auroc"], all_auroc=r["image_auroc"]) for r in best.values()]


def _best(rows, prefix):
    rr = [r for r in rows if r["name"].startswith(prefix)]
    return max(rr, key=lambda r: r["image_auroc"]) if rr else None


def _label(r):
    return r["name"] + (f" ({r['score']})" if r.get("score") else "")


def method_sentences(rows, control_prefix: str, control_kind: str, tie: float = 0.005, labels=None) -> list:
    """Which method won on these rows, by how much, and whether training beat its control.

    rows: the speed table's rows (name, score?, image_auroc, images_per_second); control_prefix: the
    name of the control's rows (`invad untrained` / `invad zero-residual`); control_kind: "untrained",
    "zero-residual" or "itself" (a `gaussian` model has nothing trained: it is its own control); methods
    within `tie` of the best are reported as level, not ranked."""
    trained = _best([r for r in rows if not r["name"].startswith(control_prefix)], "invad")
    control = _best(rows, control_prefix)
    others = [x for x in (_best(rows, "padim"), _best(rows, "knn"), _best(rows, "reconstruction")) if x]
    ranked = sorted([x for x in (trained, control, *others) if x], key=lambda r: -r["image_auroc"])
    top = ranked[0]["image_auroc"]
    if labels is not None:   # adlib.teach.verdicts: level = within 2 standard errors of the difference
        level = [r for r in ranked if verdicts.compare_aurocs(top, r["image_auroc"], labels)["verdict"] == "tie"]
    else:
        level = [r for r in ranked if top - r["image_auroc"] < tie]
    fmt = (lambda a: verdicts.fmt_auroc(a, labels)) if labels is not None else (lambda a: f"{a:.3f}")
    out = []
    if len(level) > 1:
        names = ", ".join(f"{_label(r)} {fmt(r['image_auroc'])}" for r in level)
        within = (f"within {verdicts.K:g} standard errors of the best" if labels is not None else f"within {tie} of each other")
        out.append(f"No clear winner: {names} "
                   f"are {within} (image AUROC; a few test images more or less would reorder them).")
    else:
        out.append(f"{_label(ranked[0])} wins with image AUROC {top:.3f}, {top - ranked[1]['image_auroc']:+.3f} over "
                   f"the runner-up ({_label(ranked[1])}, {ranked[1]['image_auroc']:.3f}).")
    if trained is not None and trained not in level:
        out.append(f"The best trained InvAD setting, {_label(trained)}, reaches {trained['image_auroc']:.3f}: "
                   f"{trained['image_auroc'] - top:+.3f} against the best method.")
    if trained is not None and control is not None and control_kind != "itself":
        d = trained["image_auroc"] - control["image_auroc"]
        what = ("its fitted Gaussian base alone (the residual set to zero)" if control_kind == "zero-residual"
                else "the untrained network (ε = 0, so the latent is z and the score a plain norm of the features)")
        if labels is not None:
            c = verdicts.compare_aurocs(trained["image_auroc"], control["image_auroc"], labels)
            verdict = {"higher": "training added", "lower": "training lost",
                       "tie": "level within 2 standard errors — training changed nothing measurable:"}[c["verdict"]]
        else:
            verdict = ("training added" if d > 0.005 else "training lost" if d < -0.005 else "training changed little:")
        out.append(f"Against its control, {what}: {_label(control)} scores {fmt(control['image_auroc'])}; "
                   f"{verdict} {d:+.3f}.")
    elif control_kind == "itself":
        out.append("This model is a closed-form Gaussian ε with nothing trained: it is its own control.")
    padim = next((x for x in others if x["name"] == "padim"), None)
    gauss = control if control_kind in ("zero-residual", "itself") else None
    gauss = trained if control_kind == "itself" else gauss
    if padim is not None and gauss is not None:
        d = padim["image_auroc"] - gauss["image_auroc"]
        out.append(f"PaDiM and the Gaussian inside InvAD model the same per-position normal features; PaDiM is "
                   f"{d:+.3f} against it ({padim['image_auroc']:.3f} vs {gauss['image_auroc']:.3f}). What differs: "
                   f"PaDiM takes the *largest* Mahalanobis distance of the map, a local crack's own score, and "
                   f"computes it exactly; InvAD's few DDIM steps whiten each direction only up to a gain < 1.")
    return out


class StepExplorer(_Explorer):
    """A slider over S (and the score, the grid): normal vs anomalous histograms and the ROC at that S.

    scores: {(grid, S): {score name: N image scores}}; labels: N ints (1 = anomalous)."""

    def __init__(self, scores: dict, labels, score: str = "combined", steps: int = None, grid: str = None):
        import ipywidgets as w
        self.scores, self.labels = scores, np.asarray(labels)
        grids = sorted({g for g, _ in scores}, key=["paper", "reference"].index)
        steps_all = sorted({s for _, s in scores})
        names = list(next(iter(scores.values())))
        self.grid = w.ToggleButtons(options=grids, value=grid or grids[0], description="grid")
        self.steps = w.SelectionSlider(options=steps_all, value=steps if steps in steps_all else steps_all[0],
                                       description="S")
        self.score = w.Dropdown(options=names, value=score if score in names else names[0], description="score")
        self.numbers = None
        self._wire([self.steps, self.score, self.grid])

    def figure_for(self, steps: int, score: str, grid: str):
        """(figure, numbers): histograms and ROC of `score` at S = steps; numbers has the AUROC and the
        1 %-false-positive threshold with its true-positive rate."""
        from sklearn.metrics import roc_curve
        v = self.scores.get((grid, steps), {}).get(score)
        fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.1)
        if v is None:  # that S does not exist on this grid (the reference grid needs S >= 2 for t = 0)
            fig.update_layout(title=f"S = {steps} was not run on the {grid} grid", height=360)
            return fig, None
        v = np.asarray(v, dtype=float)
        auroc = image_metrics(self.labels, v)["image_auroc"]
        thr = threshold_at_fpr(v, self.labels, 0.01)
        for lab, name, color in ((0, "normal", NORMAL), (1, "anomalous", ANOMALOUS)):
            fig.add_histogram(x=v[self.labels == lab], name=name, marker_color=color, opacity=0.6, nbinsx=30,
                              row=1, col=1)
        fig.add_vline(x=thr["threshold"], line_dash="dot", line_color="black", row=1, col=1,
                      annotation_text="1 % FPR")
        fpr, tpr, _ = roc_curve(self.labels, v)
        fig.add_scatter(x=fpr, y=tpr, mode="lines", name=f"ROC (AUROC {auroc:.3f})", line=dict(color="black"),
                        row=1, col=2)
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="gray"), name="chance",
                        row=1, col=2)
        points = make_grid(steps, grid)
        shown = ", ".join(map(str, points[:-1])) if len(points) <= 8 else f"{points[0]}, {points[1]}, …, {points[-2]}"
        fig.update_xaxes(title_text=SCORE_LABELS.get(score, score), row=1, col=1)
        fig.update_xaxes(title_text="false-positive rate", range=[0, 1], row=1, col=2)
        fig.update_yaxes(title_text="true-positive rate", range=[0, 1.02], row=1, col=2)
        fig.update_layout(barmode="overlay", height=380, margin=dict(t=70, b=40),
                          title=f"S = {steps}, {grid} grid: ε at t = {shown} → lands on {points[-1]}; "
                                f"AUROC {auroc:.3f}, TPR {thr['tpr']:.2f} at 1 % FPR")
        return fig, {"auroc": auroc, **thr}

    def update(self, change=None):
        self.figure, self.numbers = self.figure_for(self.steps.value, self.score.value, self.grid.value)
        self._refresh()
        return self.figure

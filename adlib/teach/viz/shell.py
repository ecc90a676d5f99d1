"""The shell paradox on real inverted latents (notebook 01, section 5).

Samples of N(0, I_d) lie on the shell ||x|| ~ sqrt(d) (the typical set), so a natural score is *typicality*,
|‖x‖ - sqrt(d)| (the distance from that shell), rather than the NLL = ||x||^2 / 2 + const (a distance from the
origin, where no sample lies). On a trained model's latents the two can disagree: if normal and anomalous
images both land inside the shell, the anomalies nearer to it, typicality ranks them backwards while the NLL
still ranks them right. Here: the two scores, their AUROCs, a figure, and the sentences that say which case
the measured numbers are (never a claim fixed in advance).
"""
import math

import numpy as np
import plotly.graph_objects as go
import torch

from adlib.teach.viz.base import ANOMALOUS, NORMAL, _auroc

INSIDE, OUTSIDE = 0.9, 1.1  # ||x|| / sqrt(d) below / above these: 'inside' / 'outside' the shell


def _flat(x) -> np.ndarray:
    x = x.detach().double().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def norm_ratio(x) -> np.ndarray:
    """||x|| / sqrt(d) per sample of x (B x ...), d = the number of values per sample: 1 on the prior's shell."""
    f = _flat(x)
    return np.linalg.norm(f, axis=1) / math.sqrt(f.shape[1])


def typicality(x, radius: float = None) -> np.ndarray:
    """|‖x‖ - radius| per sample, radius = sqrt(d) by default: the distance from the prior's typical set.
    radius = 0 gives ||x||, which ranks exactly as the NLL does."""
    f = _flat(x)
    r = np.linalg.norm(f, axis=1)
    return np.abs(r - (math.sqrt(f.shape[1]) if radius is None else radius))


def where(ratio: float) -> str:
    return "inside" if ratio < INSIDE else "outside" if ratio > OUTSIDE else "on"


def shell_summary(x, labels) -> dict:
    """Where normal (label 0) and anomalous (1) latents land relative to the shell, and the AUROCs of the NLL
    (= of ||x||) and of typicality |‖x‖ - sqrt(d)|. Ratios are class means of ||x|| / sqrt(d)."""
    labels = np.asarray(labels)
    f = _flat(x)
    d = f.shape[1]
    ratio = norm_ratio(f)
    nll = 0.5 * (f ** 2).sum(1) + 0.5 * d * math.log(2 * math.pi)
    return {
        "d": d, "ratio": ratio,
        "ratio_normal": float(ratio[labels == 0].mean()), "ratio_anomalous": float(ratio[labels == 1].mean()),
        "auroc_nll": _auroc(labels, nll), "auroc_typicality": _auroc(labels, typicality(f)),
        # share of anomalous images nearer the shell than the median normal image
        "anomalous_nearer": float((np.abs(ratio[labels == 1] - 1) < np.median(np.abs(ratio[labels == 0] - 1))).mean()),
    }


def typicality_curve(x, labels, radii) -> np.ndarray:
    """AUROC of |‖x‖ - r| for each reference radius r: r = 0 is the NLL's ranking, r = sqrt(d) typicality's."""
    return np.array([_auroc(labels, typicality(x, r)) for r in radii])


def shell_sentences(s: dict, train_ratio: float = None) -> list:
    """What the measured numbers of `shell_summary` say, as sentences: where each class landed, which score ranks
    backwards (AUROC < 0.5) and why, and what that says about the model. train_ratio: the mean ||x_T|| / sqrt(d)
    of the model's own training images, if measured."""
    rn, ra, an, at = s["ratio_normal"], s["ratio_anomalous"], s["auroc_nll"], s["auroc_typicality"]
    out = [f"Normal test images land at ‖x_T‖ ≈ {rn:.2f}·√d ({where(rn)} the shell), anomalous ones at "
           f"{ra:.2f}·√d ({where(ra)} it); the NLL ranks them with AUROC {an:.3f}, typicality |‖x‖ − √d| "
           f"with {at:.3f}."]
    nearer = f"{s['anomalous_nearer']:.0%} of the anomalous images lie nearer the shell than the median normal image"
    if an >= 0.5 and at < 0.5:
        if rn < ra < 1:
            why = ("both land inside the shell, the anomalies nearer to it, so closeness to the shell calls them "
                   "typical")
        elif rn < 1 < ra:
            why = ("the normal images land inside the shell and the anomalies, spread farther out, cross it: "
                   "those that land near √d look the most typical of all")
        else:
            why = "the anomalies tend to land nearer the shell than the normal images"
        weak = ", barely below chance" if at > 0.45 else ""
        out.append(f"Typicality ranks them BACKWARDS (AUROC {at:.3f}{weak}): {why} ({nearer}). The NLL still "
                   f"works because ½‖x‖² measures the distance from the origin, not from the shell, and the "
                   f"anomalies land farther from the origin than the normal images.")
    elif an >= 0.5:
        why = ("both land outside the shell, where |‖x‖ − √d| grows with ‖x‖ just as the NLL does"
               if min(rn, ra) > 1 else f"only {nearer}")
        out.append(f"Here typicality does not rank backwards: {why}; the NLL sees the anomalies farther from the "
                   f"origin, typicality farther from the shell.")
    else:
        out.append("The NLL ranks them backwards here: the anomalies land nearer the origin than the normal images "
                   "(section 3's reverse scoring, on real data)"
                   + (", and typicality, which penalises landing inside the shell, ranks them the right way."
                      if at > 0.5 else "."))
    if where(rn) == "on":
        out.append("Normal images land near the shell, as section 2 predicts for samples of N(0, I): the model carries "
                   "them to the prior's typical set.")
    else:
        out.append(f"So this model does not carry normal features onto the prior's typical set (samples of N(0, I) "
                   f"land at 1.00·√d, within ±{1 / math.sqrt(2 * s['d']):.3f}): the prior's shell is the wrong "
                   f"reference for 'normal' here. What the scores use is an ordering — anomalies farther from the "
                   f"origin than normal images — not the prior's density itself.")
    if train_ratio is not None and where(rn) != "on":
        k = max(rn, 1e-12) / max(train_ratio, 1e-12)
        out.append(f"The model's own training images land at {train_ratio:.2f}·√d: "
                   + (f"normal test images land about as far out ({rn:.2f}·√d, {k:.2f}×), so the model treats them "
                      "like its training data." if abs(math.log(k)) < math.log(1.15) else
                      f"normal test images land {k:.1f}× as far from the origin ({rn:.2f}·√d): "
                      f"{'farther out' if k > 1 else 'nearer the origin'} than the training images, though within a "
                      "factor 2." if abs(math.log(k)) < math.log(2) else
                      f"normal test images land {k:.1f}× as far from the origin ({rn:.2f}·√d), so even normal test "
                      f"images are not where the training images go."))
    return out


def shell_figure(groups: dict, title: str = "where the latents land: ‖x_T‖ / √d per image"):
    """One row of points per group {name: ratios ||x|| / sqrt(d)}, the prior's shell at 1 (log axis when the
    ratios span more than a factor 20)."""
    fig = go.Figure()
    colors = {"normal": NORMAL, "anomalous": ANOMALOUS}
    allv = np.concatenate([np.asarray(v, dtype=np.float64) for v in groups.values()] + [np.ones(1)])
    log = allv.max() / max(allv.min(), 1e-12) > 20
    for name, v in groups.items():
        color = next((c for k, c in colors.items() if k in name), "gray")
        fig.add_box(x=np.asarray(v), name=name, marker_color=color, boxpoints="all", jitter=0.4, pointpos=0,
                    orientation="h")
    fig.add_vline(x=1.0, line_dash="dash", annotation_text="the prior's shell ‖x‖ = √d")
    fig.update_layout(height=120 + 60 * len(groups), margin=dict(t=50, b=40), title=title, showlegend=False,
                      xaxis=dict(title="‖x_T‖ / √d", type="log" if log else "linear"))
    return fig


def input_sentence(train_ratio: float, test_ratio: float, standardize: str, n_train: int, channels: int) -> str:
    """Whether the standardised *input* features z of normal test images already lie farther out than the
    training images' (mean ||z|| / sqrt(d) of each), i.e. before any diffusion step. Whitening fitted on
    n_train <= channels images has rank < channels per position: directions no training image spans are
    divided by sqrt(eps) (adlib.features.standardize), which stretches new images."""
    k = test_ratio / max(train_ratio, 1e-12)
    if abs(math.log(max(k, 1e-12))) < math.log(1.15):
        return (f"The standardised input features of normal test images lie about as far out as the training "
                f"images' ({test_ratio:.2f} vs {train_ratio:.2f}·√d, {k:.2f}×): the standardisation carries over to "
                f"new images.")
    if k < 2:
        return (f"The standardised input features of normal test images lie {k:.1f}× as far out as the training "
                f"images' ({test_ratio:.2f} vs {train_ratio:.2f}·√d): the standardisation carries over to new "
                f"images only roughly.")
    why = (f" Per-position whitening fitted on {n_train} training images in {channels} channels has rank below "
           f"{channels}: along directions no training image spans, a new image's features are divided by √0.01 "
           f"(adlib.features.standardize adds eps = 0.01 to the covariance), i.e. stretched tenfold instead of scaled to "
           f"unit variance." if standardize == "whiten" and n_train <= channels else "")
    return (f"The standardised input features of normal test images already lie {k:.1f}× farther out than the "
            f"training images' ({test_ratio:.2f} vs {train_ratio:.2f}·√d), before any diffusion step.{why}")

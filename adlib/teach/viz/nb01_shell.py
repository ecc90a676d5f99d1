"""Notebook 01, section 5: the shell paradox's sentences, every AUROC with its standard error and every
"as far out as" judged by a standard error (adlib.teach.verdicts), never by a fixed tolerance.

`adlib.teach.viz.shell` measures (norm ratios, typicality, AUROCs); this module says what the measurements
show. Two norm ratios are compared as means over images, each with its standard error: "level" when their
difference is within 2 standard errors of it, "farther out" / "nearer the origin" beyond. The ratio itself is
always printed (1.41×), so a reader sees how far apart the two are whatever the verdict.
"""
import math

import numpy as np

from adlib.teach import verdicts

WORDS = {"tie": "level", "higher": "farther out", "lower": "nearer the origin"}


def shell_width(d: int) -> float:
    """sd of ||x|| / sqrt(d) for x ~ N(0, I_d): 1 / sqrt(2 d) (section 2)."""
    return 1 / math.sqrt(2 * d)


def where(ratio: float, d: int) -> str:
    """'on' the shell when ||x|| / sqrt(d) is within 3 of its sds (1/sqrt(2d)) of 1, where 99.7 % of the prior's
    samples lie; else 'inside' / 'outside'."""
    return "on" if abs(ratio - 1) <= 3 * shell_width(d) else "inside" if ratio < 1 else "outside"


def mean_se(values) -> tuple:
    v = np.asarray(values, dtype=np.float64).ravel()
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0)


def compare_ratios(train, test) -> dict:
    """Mean ||x|| / sqrt(d) of normal test images against the training images', each mean with its standard error
    (independent images): verdicts.compare's result plus the two means and their ratio."""
    mt, st = mean_se(test)
    mr, sr = mean_se(train)
    c = verdicts.compare(mt, mr, st, sr)
    c.update(test=mt, train=mr, ratio=mt / mr if mr else math.inf, n_test=int(np.size(test)),
             n_train=int(np.size(train)))
    return c


def _ratio_clause(c: dict) -> str:
    return (f"normal test images at {c['test']:.2f}·√d, the {c['n_train']} training images at {c['train']:.2f}·√d: "
            f"{c['ratio']:.2f}× (difference {c['diff']:+.3f} ± {c['se']:.3f})")


def latent_sentence(c: dict) -> str:
    """Where the model sends new normal images against its own training images (x_T)."""
    head = f"Inverted latents x_T: {_ratio_clause(c)}, "
    if c["verdict"] == "tie":
        return head + (f"level within {c['k']:g} standard errors: on these images the model sends new normal images "
                       "where it sends its training images, as far as we can measure.")
    return head + (f"{WORDS[c['verdict']]} than the training images beyond {c['k']:g} standard errors: the model does "
                   "not send new normal images where it sends its training data.")


def input_sentence(c: dict, standardize: str, n_train: int, channels: int) -> str:
    """The same comparison for the standardised input features z, i.e. before any diffusion step."""
    head = f"Standardised input features z: {_ratio_clause(c)}, "
    if c["verdict"] == "tie":
        return head + f"level within {c['k']:g} standard errors: the standardisation carries over to new images."
    why = (f" Per-position whitening fitted on {n_train} training images in {channels} channels has rank below "
           f"{channels}: along directions no training image spans, new features are divided by √0.01, stretched "
           "tenfold." if standardize == "whiten" and n_train <= channels and c["verdict"] == "higher" else "")
    return head + (f"{WORDS[c['verdict']]} than the training images' beyond {c['k']:g} standard errors, before any "
                   f"diffusion step.{why}")


def check_ratio_sentence(text: str, c: dict) -> None:
    """The sentence states the measured ratio and the verdict of the standard error, and nothing looser: no
    'about as far out' (the old wording called 1.4× that, by a factor-2 tolerance)."""
    assert f"{c['ratio']:.2f}×" in text, (text, c["ratio"])
    assert "about as far" not in text and "about the same" not in text, text
    assert WORDS[c["verdict"]] in text, (text, c["verdict"])
    assert not any(w in text for v, w in WORDS.items() if v != c["verdict"]), (text, c["verdict"])
    if c["verdict"] != "tie":
        assert abs(c["diff"]) > c["k"] * c["se"]


def _rank(auroc: float, labels) -> dict:
    """An AUROC against chance (0.5) with its Hanley-McNeil standard error."""
    return verdicts.compare(auroc, 0.5, verdicts.auroc_se(auroc, labels), 0.0)


def shell_sentences(s: dict, labels) -> list:
    """What `shell.shell_summary`'s numbers say: where each class landed, which score ranks backwards (below 0.5
    beyond 2 standard errors) and why. Every AUROC with its standard error."""
    d, rn, ra, an, at = s["d"], s["ratio_normal"], s["ratio_anomalous"], s["auroc_nll"], s["auroc_typicality"]
    fa = lambda a: verdicts.fmt_auroc(a, labels)  # noqa: E731
    cn, ct = _rank(an, labels), _rank(at, labels)
    out = [f"Normal test images land at ‖x_T‖ ≈ {rn:.2f}·√d ({where(rn, d)} the shell, whose samples lie at "
           f"1.00 ± {shell_width(d):.3f}·√d), anomalous ones at {ra:.2f}·√d ({where(ra, d)} it); the NLL ranks them "
           f"with AUROC {fa(an)}, typicality |‖x‖ − √d| with {fa(at)}."]
    nearer = f"{s['anomalous_nearer']:.0%} of the anomalous images lie nearer the shell than the median normal image"
    if cn["verdict"] != "lower" and ct["verdict"] == "lower":
        if rn < ra < 1:
            why = "both land inside the shell, the anomalies nearer to it, so closeness to the shell calls them typical"
        elif rn < 1 < ra:
            why = ("the normal images land inside the shell and the anomalies, spread farther out, cross it: "
                   "those that land near √d look the most typical of all")
        else:
            why = "the anomalies tend to land nearer the shell than the normal images"
        out.append(f"Typicality ranks them BACKWARDS (below 0.5 by {-ct['diff']:.3f}, beyond 2 standard errors): "
                   f"{why} ({nearer}). The NLL works because ½‖x‖² measures the distance from the origin, not from "
                   "the shell, and the anomalies land farther from the origin than the normal images.")
    elif ct["verdict"] == "tie":
        out.append(f"Typicality is level with chance (within 2 standard errors of 0.5): {nearer}.")
    elif cn["verdict"] != "lower":
        out.append("Typicality ranks them the right way too: here the anomalies land farther from the shell as well as "
                   "from the origin.")
    if cn["verdict"] == "lower":
        out.append("The NLL ranks them backwards here (below 0.5 beyond 2 standard errors): the anomalies land nearer "
                   "the origin than the normal images, section 3's reverse scoring on real data.")
    if where(rn, d) == "on":
        out.append("Normal images land on the shell, as section 2 predicts for samples of N(0, I).")
    else:
        out.append(f"So this model does not carry normal features onto the prior's typical set: the prior's shell is "
                   f"the wrong reference for 'normal' here ({rn:.2f} vs 1.00 ± {shell_width(d):.3f}). What the "
                   "scores use is an ordering, anomalies farther from the origin than normal images.")
    return out

"""One rule for every verdict the notebooks print about AUROCs (and other noisy means).

An AUROC measured on n_pos anomalous and n_neg normal images is uncertain by its Hanley & McNeil (1982)
standard error, about 0.01 at 118 normal / 313 anomalous images. So a fixed cut-off ("within 0.005 is a
tie") calls noise a win. Here two numbers are *level* (a tie) when their difference is within `K` = 2
standard errors of that difference, and one "beats" the other only beyond it. The standard error of a
difference of two AUROCs on the same images is taken as sqrt(se_a^2 + se_b^2): it ignores their positive
correlation, so it is conservative (it calls a tie a little more often than a paired test would).
"""
import math

import numpy as np

K = 2.0  # a difference within K standard errors is a tie


def auroc_standard_error(auroc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an empirical AUROC (Hanley & McNeil 1982), symmetric in AUROC <-> 1 - AUROC:
    var = (A(1-A) + (n_pos - 1)(Q1 - A^2) + (n_neg - 1)(Q2 - A^2)) / (n_pos n_neg), Q1 = A/(2-A), Q2 = 2A^2/(1+A)."""
    a = float(auroc)
    if a < 0.5:  # the same statistic with the classes swapped
        a, n_pos, n_neg = 1 - a, n_neg, n_pos
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def counts(labels) -> tuple:
    """(n anomalous, n normal) of 0/1 labels."""
    y = np.asarray(labels)
    return int((y == 1).sum()), int((y == 0).sum())


def auroc_se(auroc: float, labels) -> float:
    """Hanley-McNeil standard error of an AUROC measured on these labels."""
    return auroc_standard_error(auroc, *counts(labels))


def fmt_auroc(auroc: float, labels) -> str:
    """'0.954 ± 0.010' (one standard error)."""
    return f"{auroc:.3f} ± {auroc_se(auroc, labels):.3f}"


def compare(a: float, b: float, se_a: float, se_b: float, k: float = K) -> dict:
    """Is a above, below or level with b? diff = a - b, se = sqrt(se_a^2 + se_b^2), z = diff / se;
    verdict "higher" if diff > k se, "lower" if diff < -k se, else "tie"."""
    diff = float(a) - float(b)
    se = math.hypot(se_a, se_b)
    z = diff / se if se > 0 else (math.inf if diff > 0 else -math.inf if diff < 0 else 0.0)
    verdict = "higher" if z > k else "lower" if z < -k else "tie"
    return {"diff": diff, "se": se, "z": z, "verdict": verdict, "k": k}


def compare_aurocs(a: float, b: float, labels, k: float = K) -> dict:
    """`compare` for two AUROCs measured on the same labels."""
    return compare(a, b, auroc_se(a, labels), auroc_se(b, labels), k)


def compare_paired(differences, k: float = K) -> dict:
    """Is the mean of paired differences (e.g. per-image loss of model A minus model B) above, below or
    level with 0? se = sd / sqrt(n)."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    return compare(float(d.mean()), 0.0, se, 0.0, k)


def level_with_best(values: dict, labels, k: float = K) -> list:
    """Names whose AUROC is level with the best one's (within k standard errors of the difference), best first."""
    best = max(values, key=values.get)
    return sorted((n for n in values if compare_aurocs(values[best], values[n], labels, k)["verdict"] == "tie"
                   or n == best), key=lambda n: -values[n])


def sentence(name_a: str, a: float, name_b: str, b: float, labels, k: float = K) -> str:
    """'A 0.954 ± 0.010 vs B 0.948 ± 0.011: level (difference +0.006, within 2 standard errors, 0.015)'."""
    c = compare_aurocs(a, b, labels, k)
    head = (f"{name_a} {fmt_auroc(a, labels)} vs {name_b} {fmt_auroc(b, labels)}: ")
    if c["verdict"] == "tie":
        return head + (f"level (difference {c['diff']:+.3f}, within {k:g} standard errors of the difference, "
                       f"{k * c['se']:.3f})")
    word = "higher" if c["verdict"] == "higher" else "lower"
    return head + (f"{name_a} is {word} (difference {c['diff']:+.3f}, beyond {k:g} standard errors, "
                   f"{k * c['se']:.3f})")

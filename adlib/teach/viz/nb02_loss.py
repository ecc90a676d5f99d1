"""Notebook 02: one definition of "the loss", and every sentence about it generated from that definition.

A training batch's loss (16 images, one timestep each) moves by more than training does between neighbouring
iterations, so a sentence built on one batch can contradict the next one. Here the loss of a model on a set of
feature maps is always the same estimate: the mean over the images of each image's loss averaged over `n_t`
draws of (t ~ U{0..T-1}, noise), the draws fixed by a seed so every model sees the same ones
(adlib.teach.viz.training.per_image_losses, whose mean is adlib.models.denoising_loss), with the standard
error over images. Two models on the same images are compared by their per-image differences
(adlib.teach.verdicts.compare_paired: level within 2 standard errors).
"""
import math
import re
from dataclasses import dataclass

import numpy as np

from adlib.teach import verdicts
from adlib.teach.viz.training import per_image_losses

WORD = {"lower": "lower", "higher": "higher", "tie": "level"}


@dataclass
class LossEstimate:
    per_image: np.ndarray   # each image's loss, averaged over n_t draws of (t, noise)
    n_t: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_image))

    @property
    def se(self) -> float:
        n = len(self.per_image)
        return float(np.std(self.per_image, ddof=1) / math.sqrt(n)) if n > 1 else 0.0

    @property
    def n(self) -> int:
        return len(self.per_image)

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.se:.4f}"


def estimate(model, z, n_t: int = 8, seed: int = 0) -> LossEstimate:
    """The loss of `model` on the feature maps z: per-image losses over n_t seeded draws of (t, noise)."""
    return LossEstimate(per_image_losses(model, z, seed=seed, n_t=n_t), n_t)


def compare(a: LossEstimate, b: LossEstimate) -> dict:
    """a against b on the same images and draws: verdicts.compare_paired of the per-image differences a - b."""
    assert a.n == b.n and a.n_t == b.n_t, "compare estimates on the same images and draws"
    return verdicts.compare_paired(a.per_image - b.per_image)


def change_sentence(start: LossEstimate, end: LossEstimate, start_name: str, where: str) -> tuple:
    """(sentence, comparison) for a loss before (the control training started from) and after training."""
    c = compare(end, start)
    verdict = {"lower": "training lowered it beyond 2 standard errors", "higher": "training raised it beyond 2 "
               "standard errors", "tie": "level within 2 standard errors: no measurable change"}[c["verdict"]]
    return (f"Denoising loss on {end.n} {where} × {end.n_t} draws of (t, noise) each (mean ± standard error over "
            f"images): {start_name}, where training started, {start}; the trained model {end}. Difference "
            f"{c['diff']:+.4f} ± {c['se']:.4f}: {verdict}.", c)


def numbers_in(text: str) -> list:
    """The loss-sized numbers a sentence states: decimals with 3 or more digits after the point."""
    return re.findall(r"[-+]?\d+\.\d{3,}", text)


def check_numbers(text: str, *values) -> int:
    """Every number with 3+ decimals stated in `text` is one of `values` printed to 3 or 4 decimals (LossEstimates
    give their mean and se; comparison dicts their diff and se). Returns how many numbers were checked (at least one)."""
    allowed = set()
    for v in values:
        if isinstance(v, LossEstimate):
            nums = (v.mean, v.se)
        elif isinstance(v, dict):
            nums = (v["diff"], v["se"])
        else:
            nums = (v,)
        for x in nums:
            allowed |= {f"{y:.{p}f}" for y in (x, abs(x)) for p in (3, 4)} | {f"{x:+.{p}f}" for p in (3, 4)}
    found = numbers_in(text)
    stray = [x for x in found if x not in allowed and x.lstrip("+") not in allowed]
    assert found and not stray, f"loss numbers not computed by the one estimate: {stray} in {text!r}"
    return len(found)

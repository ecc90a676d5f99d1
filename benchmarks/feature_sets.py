"""The benchmarks' one feature loader: cached backbone features of a dataset's train / val / test parts.

    raw = raw_features("elpv:poly:dev")           # {part: (N x C x h x w features, samples)}
    z, stats = standardized(raw, "whiten")         # {part: features}, fitted on raw["train"] (adlib.features)
    for name, spec, (z_tr, z_va, z_te, labels, masks) in suite_parts(suite, "tex-cloud,part-rot"): ...
    z = channels(z, "lite0", "s8+s16")             # only some of lite0's stages (benchmarks/feature_sweep.py)
"""
import numpy as np
import torch

from adlib.data import load_masks, load_spec
from adlib.features.backbone import FeatureExtractor
from adlib.features.cache import extract
from adlib.features.standardize import fit_stats, standardize

PARTS = ("train", "val", "test")
LITE0_STAGES = {"s2": slice(0, 16), "s4": slice(16, 40), "s8": slice(40, 80), "s16": slice(80, 192)}


def raw_features(spec: str, split_seed: int = 0, backbone: str = "lite0", image_size: int = 256) -> dict:
    """{part: (features, samples)} for train, val and test, from the feature cache (extracted once)."""
    data, extractor = load_spec(spec, split_seed), FeatureExtractor(backbone, image_size)
    return {part: extract(extractor, getattr(data, part), desc=part) for part in PARTS}


def channels(z: torch.Tensor, backbone: str, stages: str) -> torch.Tensor:
    """The channels of the named stages (all four: every channel, for any backbone)."""
    if stages == "s2+s4+s8+s16":
        return z
    if backbone != "lite0":
        raise ValueError("stage subsets are defined for lite0 only")
    return torch.cat([z[:, LITE0_STAGES[s]] for s in stages.split("+")], 1).contiguous()


def standardized(raw: dict, how: str) -> tuple:
    """({part: standardised features}, stats) with the statistics of `how` fitted on the training part."""
    stats = fit_stats(raw["train"][0], how)
    return {part: standardize(z, stats) for part, (z, _) in raw.items()}, stats


def test_labels(raw: dict) -> np.ndarray:
    return np.array([s.label for s in raw["test"][1]])


def suite_parts(suite: dict, only: str = "", backbone: str = "lite0", image_size: int = 256):
    """(name, spec, (train, val, test features, test labels, test masks or None)) of each set of a suite
    {name: SPEC} (benchmarks/dev_suite.build), or of those named in the comma-separated `only`."""
    keep = [s for s in only.split(",") if s]
    for name, spec in suite.items():
        if keep and name not in keep:
            continue
        raw = raw_features(spec, backbone=backbone, image_size=image_size)
        test = raw["test"][1]
        masks = load_masks(test, image_size) if any(s.mask for s in test) else None
        yield name, spec, (raw["train"][0], raw["val"][0], raw["test"][0], test_labels(raw), masks)

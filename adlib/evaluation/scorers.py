"""Scorers shared by the harness (bench), the label-free choice (select), evaluate and the notebooks.

A scorer maps standardised features (B x C x h x w, on the CPU) to {score name: B image scores (numpy),
"map": B x h x w (CPU)}; batches visit the model's device and come back. Its `device` attribute says
where the work runs, so timing can synchronise that device. This floor sits below bench and select and
imports neither.
"""
import numpy as np
import torch

from adlib.evaluation.baselines import map_to_image_score, reconstruction_map
from adlib.method import scoring
from adlib.method.inversion import invert, make_grid
from adlib.method.precision import autocast


def model_device(model, default="cpu") -> torch.device:
    """The device of a model's parameters, or of its buffers when it has none (EpsGaussian: its statistics are
    buffers only); `default` for a callable with neither. Reading parameters alone sent a CUDA EpsGaussian
    CPU inputs (issue 21)."""
    tensors = [getattr(model, k, None) for k in ("parameters", "buffers")]
    p = next((t for f in tensors if callable(f) for t in f()), None)
    return p.device if p is not None else torch.device(default)


def invad_scorer(model, steps, grid, z_val, batch_size=64, precision="fp32", pool=0.0):
    """InvAD: invert in S steps, then NLL, Diff, and the scores normalised on validation normals z_val:
    combined, local-max and local-top (adlib/scoring.py). precision bf16: the eps-network under bf16 autocast."""
    points = make_grid(steps, grid)
    device = model_device(model)

    def raw(z):
        parts = []
        for i in range(0, len(z), batch_size):  # scored batch by batch: only the small maps are kept
            with autocast(device, precision):
                x = invert(model, z[i:i + batch_size].to(device), points)
            parts.append(scoring.raw_scores(x.cpu()))
        return {"nll": np.concatenate([p["nll"] for p in parts]), "diff": np.concatenate([p["diff"] for p in parts]),
                "map": torch.cat([p["map"] for p in parts])}
    norm = scoring.Normalizer.fit(raw(z_val), pool)

    def f(z):
        s = raw(z)
        return {"nll": s["nll"], "diff": s["diff"], **{k: scoring.image_score(s, k, norm) for k in scoring.SCORES[2:]},
                "map": s["map"]}
    f.device = device
    return f


def map_scorer(map_fn, batch_size=64, device="cpu", indexed=False):
    """Image score = maximum of map_fn's B x h x w map. indexed=True calls map_fn(batch, index of its first
    sample) so that per-sample randomness does not depend on the batch size."""
    device = torch.device(device)

    def f(z):
        maps = torch.cat([(map_fn(z[i:i + batch_size].to(device), i) if indexed else
                           map_fn(z[i:i + batch_size].to(device))).cpu() for i in range(0, len(z), batch_size)])
        return {"max": map_to_image_score(maps), "map": maps}
    f.device = device
    return f


def reconstruction_scorer(model, r: float, k: int, batch_size=64, seed: int = 0):
    """Reconstruction with the eps-network's own weights at strength r in K steps; noise seeded once here,
    per sample, so maps do not depend on the batch size."""
    return map_scorer(lambda z, first: reconstruction_map(model, z, r, k, seed=seed, first=first), batch_size,
                      model_device(model), indexed=True)

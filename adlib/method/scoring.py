"""Anomaly scores read from the inverted latent x_T in R^{C x h x w} (no reconstruction).

NLL  = -log N(x_T; 0, I) = 1/2 sum x_T^2 + 1/2 C h w log(2 pi)
A    = per-position norm map, A[i, j] = || x_T[:, i, j] ||_2; pixel map = A upsampled bilinearly
Diff = max A - min A                  (anomalies are local: they stretch the spread of the map)
max  = max A                          (the plain maximum of the map; with the closed-form Gaussian eps on
                                       whitened features A is its Mahalanobis map, and this is PaDiM's score)
combined = minmax(NLL) + minmax(Diff), the min-max fitted on normal validation images by default
           (`Normalizer.fit(val)`), or on the test set itself to reproduce the paper (transductive).
Local scores (cracks are local: a sum over all positions dilutes them), from the same normal images:
  L[i, j]   = (A[i, j] - m[i, j]) / s[i, j], the norm map standardised per position (m, s: mean and std of
              A[i, j] over the normal images, the variance shrunk toward the average one; what is usual
              at a border is not usual in the middle); s pooled toward the average over positions by `pool`
              = the rho that `--standardize auto` chose (RunConfig.map_pool), m only where the content moves
              between images (`moving_content` >= MOVING: a part at any pose, whose spread at a position is
              mostly where the part happened to be, not what is usual there), else m stays per-position
  local-max = max L                      local-top = mean of the TOP_K largest L[i, j]
"""
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from adlib.errors import AdlibError
from adlib.method import SCORES

LOCAL = ("local-max", "local-top")
UNNORMALISED = ("nll", "diff", "max")  # scores that need no normaliser fitted on normal images
TOP_K = 4  # positions averaged by local-top: a crack covers a few of the 16 x 16
PRIOR_IMAGES = 10  # pseudo-images pulling each position's variance toward the average (`position_stats`)
MOVING = 0.3       # `moving_content` at or above which the map's mean is pooled too (dev suite: <= 0.20 vs >= 0.43)
MOVING_MIN_MAPS = 8  # fewer normal maps cannot measure it: the mean is then pooled with the spread, as before


def nll(x: torch.Tensor) -> torch.Tensor:
    """Exact negative log-density of each latent under N(0, I), in nats: B x C x h x w -> B."""
    d = x[0].numel()
    return 0.5 * x.double().flatten(1).pow(2).sum(1) + 0.5 * d * math.log(2 * math.pi)


def norm_map(x: torch.Tensor) -> torch.Tensor:
    """B x C x h x w -> B x h x w, the L2 norm of the latent at each position (float32)."""
    return x.float().norm(dim=1)


def diff(amap: torch.Tensor) -> torch.Tensor:
    """Spread of a norm map: max - min over positions, B x h x w -> B."""
    flat = amap.flatten(1)
    return flat.max(1).values - flat.min(1).values


def pixel_map(amap: torch.Tensor, size: int) -> torch.Tensor:
    """B x h x w -> B x size x size, bilinear."""
    return F.interpolate(amap[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def latent_scores(x: torch.Tensor) -> dict:
    """NLL, Diff and the norm map as tensors on x's device, in one pass over x (`map_scores`)."""
    return map_scores(norm_map(x), x.shape[1])


def map_scores(amap: torch.Tensor, channels: int) -> dict:
    """NLL, Diff and the map itself from the norm map of a latent with `channels` channels.

    NLL comes from the norm map, since sum_ij A[i,j]^2 = ||x||^2: the same value as `nll(x)` without a
    second (float64) pass over the whole latent."""
    nll_ = 0.5 * amap.double().pow(2).flatten(1).sum(1) + 0.5 * channels * amap[0].numel() * math.log(2 * math.pi)
    return {"nll": nll_, "diff": diff(amap.double()), "map": amap}


def raw_scores(x: torch.Tensor) -> dict:
    """The per-image numbers everything else is built from: `latent_scores` with NLL and Diff as numpy."""
    return raw_map_scores(norm_map(x), x.shape[1])


def raw_map_scores(amap: torch.Tensor, channels: int) -> dict:
    """`raw_scores` from a norm map already made (e.g. a closed-form one, adlib/runs/full_conformal.py)."""
    s = map_scores(amap, channels)
    return {"nll": s["nll"].cpu().numpy(), "diff": s["diff"].cpu().numpy(), "map": amap}


def position_stats(maps: torch.Tensor, prior: float = PRIOR_IMAGES, pool: float = 0.0,
                   pool_mean: float = None) -> tuple:
    """(mean, std) of n >= 2 normal norm maps at each position (lists, row-major). The variance is shrunk
    toward the positions' average variance as if `prior` more images had shown it:
        v_ij = ((n - 1) var_ij + k mean_kl var_kl) / (n - 1 + k)
    With ~50 images (ELPV) each position's own spread dominates; with 2 (a miniature's half of its
    validation normals) one position's std would be noise. Then both are pooled, by `pool_mean` and `pool` in
    [0, 1] (`pool_mean` None: `pool` too):
        m_ij <- (1 - pool_mean) m_ij + pool_mean mean_kl m_kl,   v_ij <- (1 - pool) v_ij + pool mean_kl v_kl
    pool = 1 leaves one mean and one std for the whole map (local-top is then the top of the map itself)."""
    pool_mean = pool if pool_mean is None else pool_mean
    if not (0.0 <= pool <= 1.0 and 0.0 <= pool_mean <= 1.0):
        raise ValueError(f"pool {pool} and pool_mean {pool_mean} must lie in [0, 1]")
    a = maps.double().flatten(1)
    n = len(a)
    mean, var = a.mean(0), a.var(0)
    var = ((n - 1) * var + prior * var.mean()) / (n - 1 + prior)
    mean, var = (1 - pool_mean) * mean + pool_mean * mean.mean(), (1 - pool) * var + pool * var.mean()
    return mean.tolist(), var.sqrt().clamp_min(1e-6).tolist()


def moving_content(maps: torch.Tensor, splits: int = 20, seed: int = 0) -> float:
    """How much the norm map's spread differs between positions, beyond sampling noise: the standard deviation
    over positions of log std_ij, estimated as sqrt(cov(log std_A, log std_B)) over random halves A, B of the
    n normal maps (each half's noise is independent of the other's, so it drops out of the covariance).
    Content that moves between images (a part at a random pose) makes a position vary much more where the part
    comes and goes: 0.43-0.58 on the development suite's moving parts, <= 0.20 on aligned cells, textures and
    fixed patterns (docs/bench/default-suite.md, benchmarks/moving_content.py). NaN below MOVING_MIN_MAPS maps."""
    a = torch.as_tensor(maps).double().flatten(1)
    n = len(a)
    if n < MOVING_MIN_MAPS:
        return float("nan")
    g, cov = torch.Generator().manual_seed(seed), []
    for _ in range(splits):
        order = torch.randperm(n, generator=g)
        la, lb = (a[idx].std(0).clamp_min(1e-12).log() for idx in (order[: n // 2], order[n // 2:]))
        cov.append(((la - la.mean()) * (lb - lb.mean())).mean())
    return float(torch.stack(cov).mean().clamp_min(0).sqrt())


def mean_pool(maps: torch.Tensor, pool: float) -> tuple:
    """(how far the map's per-position mean is pooled, moving_content): `pool` where the content moves (or too
    few maps say), else 0 -- on aligned cells and fixed patterns a position's own mean is what is usual there."""
    if pool == 0:
        return 0.0, float("nan")
    moving = moving_content(maps)
    return (0.0 if moving < MOVING else pool), moving  # NaN (too few maps) compares False: pooled


def subset(raw: dict, idx) -> dict:
    """The raw scores (nll, diff, map; map may be None) of the images at `idx`."""
    idx = np.asarray(idx)
    amap = raw.get("map")
    return {"nll": np.asarray(raw["nll"])[idx], "diff": np.asarray(raw["diff"])[idx],
            "map": None if amap is None else torch.as_tensor(amap)[torch.as_tensor(idx)]}


@dataclass
class Normalizer:
    """What normal images look like: the min-max of NLL and Diff (`combined` = their normalised sum) and,
    for the local scores, the per-position mean and std of the norm map (h*w values each, row-major)."""
    nll_min: float
    nll_max: float
    diff_min: float
    diff_max: float
    map_mean: list = None
    map_std: list = None
    map_pool: float = 0.0  # how far map_std (and, before map_mean_pool existed, map_mean) was pooled (`position_stats`)
    map_mean_pool: float = None  # how far map_mean was pooled: map_pool where the content moves, else 0 (`mean_pool`)
    map_moving: float = None     # the normal maps' `moving_content` that decided it (None: not measured)

    @classmethod
    def fit(cls, scores: dict, pool: float = 0.0) -> "Normalizer":
        n, d = np.asarray(scores["nll"]), np.asarray(scores["diff"])
        if n.size < 2:  # one image has no spread: the min-max would divide by ~0
            raise AdlibError(f"the combined score's min-max needs at least 2 normal images, got {n.size}")
        local = {}
        if scores.get("map") is not None:
            maps = torch.as_tensor(scores["map"])
            pm, moving = mean_pool(maps, pool)
            local = dict(zip(("map_mean", "map_std"), position_stats(maps, pool=pool, pool_mean=pm)),
                         map_pool=float(pool), map_mean_pool=float(pm),
                         map_moving=None if math.isnan(moving) else round(moving, 4))
        return cls(float(n.min()), float(n.max()), float(d.min()), float(d.max()), **local)

    def combined(self, scores: dict) -> np.ndarray:
        eps = 1e-12
        n = (np.asarray(scores["nll"]) - self.nll_min) / max(self.nll_max - self.nll_min, eps)
        d = (np.asarray(scores["diff"]) - self.diff_min) / max(self.diff_max - self.diff_min, eps)
        return n + d

    def local_map(self, amap) -> torch.Tensor:
        """The norm map standardised per position with the normal images' mean and std: B x h x w."""
        if self.map_mean is None:
            raise AdlibError("this calibration has no per-position statistics (made before local scores "
                             "existed): recalibrate, e.g. `adlib evaluate RUN --fpr 0.05`")
        amap = torch.as_tensor(amap).double()
        mean = torch.tensor(self.map_mean, dtype=torch.float64).reshape(amap.shape[1:])
        return (amap - mean) / torch.tensor(self.map_std, dtype=torch.float64).reshape(amap.shape[1:])

    def local(self, amap, kind: str) -> np.ndarray:
        """local-max or local-top of B norm maps."""
        flat = self.local_map(amap).flatten(1)
        top = flat.topk(1 if kind == "local-max" else min(TOP_K, flat.shape[1]), dim=1).values
        return top.mean(1).numpy()

    def to_dict(self) -> dict:
        return asdict(self)


def image_score(scores: dict, kind: str, normalizer: Normalizer = None) -> np.ndarray:
    """One number per image: `nll`, `diff`, `max`, or (with a normalizer) `combined`, `local-max`, `local-top`."""
    if kind == "max":
        return torch.as_tensor(scores["map"]).double().flatten(1).max(1).values.numpy()
    if kind == "combined":
        return normalizer.combined(scores)
    if kind in LOCAL:
        return normalizer.local(scores["map"], kind)
    if kind not in SCORES:
        raise ValueError(f"unknown score {kind!r}: use one of {SCORES}")
    return np.asarray(scores[kind])


def synthetic_anomalies(z: torch.Tensor, seed: int = 0, sizes=(2, 3, 4)) -> torch.Tensor:
    """Feature-space CutPaste of normal features (N x C x h x w, standardised units), for label-free choices: in
    each copy a random k x k patch of positions is replaced by another image's features at another place (even
    copies) or gets N(0, 1) noise added (odd copies). Seeded; the input is not changed."""
    g = np.random.default_rng(seed)
    out = z.clone()
    n, _, h, w = z.shape
    for i in range(n):
        k = int(g.choice(sizes))
        y, x = g.integers(0, h - k + 1), g.integers(0, w - k + 1)
        if i % 2 == 0:
            j, y2, x2 = g.integers(0, n), g.integers(0, h - k + 1), g.integers(0, w - k + 1)
            out[i, :, y:y + k, x:x + k] = z[j, :, y2:y2 + k, x2:x2 + k]
        else:
            noise = torch.from_numpy(g.standard_normal((z.shape[1], k, k))).to(z.dtype)
            out[i, :, y:y + k, x:x + k] += noise
    return out


def conformal_threshold(normal_scores, fpr: float = 0.05):
    """(threshold, guaranteed false-positive rate) from n held-out normal scores (split conformal).

    threshold = the k-th smallest, k = ceil((n + 1)(1 - fpr)): a new normal image exchangeable with them
    exceeds it with probability (n + 1 - k) / (n + 1) <= fpr. When k > n (n < 1/fpr - 1) no order statistic
    promises fpr: the largest score is used and the rate it does promise, 1 / (n + 1), is returned.
    (The in-sample (1 - fpr) quantile it replaces gave ~17 % false positives from 6 images, 50 % from 2.)"""
    if not 0 < fpr < 1:
        raise AdlibError(f"--fpr {fpr} must be between 0 and 1, e.g. 0.05")
    s = np.sort(np.asarray(normal_scores, dtype=float))
    if s.size == 0:
        raise AdlibError("no normal validation scores to calibrate a threshold on")
    k = min(math.ceil((s.size + 1) * (1 - fpr)), s.size)
    return float(s[k - 1]), (s.size + 1 - k) / (s.size + 1)

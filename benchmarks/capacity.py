"""Does the denoiser learn more than a Gaussian? A trained eps-network against its untrained control.

    OMP_NUM_THREADS=1 python benchmarks/capacity.py --data elpv:poly --features pooled --model h128 --iters 1000

Works on cached backbone features (EfficientNet-Lite0, 256 px), transformed one of three ways:
- `position`: the kit's default, one mean/std per channel and position;
- `pooled`:   `position`, then one 192 x 192 whitening shared by all positions (`pooled_whitening`). Its
              untrained control is a pooled Gaussian's Mahalanobis score: if the trained model scores
              no better, it learned no more than that;
- `whiten`:   per-position whitening (PaDiM's Gaussian), see adlib/standardize.py.
Models (MODELS) are per-position MLPs (`adlib.models.EpsMLP`) of several sizes, `h128-posada` (a learned
position embedding fed through adaLN, c = time(t) + pos_ij at each token), `h128-conv` (a 3 x 3 input
convolution), and the kit's UNet and DiT. The two script-local models are registered in
`adlib.models.MODELS` for this process only, because `adlib.runs.train.fit` builds its model by preset name.
Prints one JSON line: image AUROC (NLL / Diff / combined) at S = 2, 3, 5 and of the untrained control at S = 3.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from adlib import models
from adlib.evaluation.bench import invad_scorer
from adlib.features.standardize import fit_stats, standardize
from adlib.runs.config import RunConfig
from adlib.runs.train import fit
from feature_sets import raw_features, standardized, test_labels


class EpsMLPPosAda(models.EpsMLP):
    """EpsMLP whose adaLN conditioning is c = time(t) + pos_ij per token, so every block's shift, scale
    and gate can differ by position (a learned position embedding, initialised N(0, 0.5^2))."""

    def forward(self, x, t):
        B, C, H, W = x.shape
        h = self.proj_in(x.flatten(2).transpose(1, 2))
        c = self.time(t)[:, None, :] + self.pos
        for block in self.blocks:
            shift, scale, gate = block.ada(c).chunk(3, dim=-1)
            h = h + gate * block.mlp(block.norm2(h) * (1 + scale) + shift)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        return self.proj_out(self.norm_out(h) * (1 + scale) + shift).transpose(1, 2).reshape(B, C, H, W)


class ConvTokens(torch.nn.Module):
    """A 3 x 3 convolution on h*w tokens (B x hw x C -> B x hw x hidden): each position also sees its 8
    neighbours (a crack crosses positions), at +35 % of the default MLP's multiply-adds per position."""

    def __init__(self, channels, hidden, grid):
        super().__init__()
        self.conv, self.grid = torch.nn.Conv2d(channels, hidden, 3, padding=1), grid

    @property
    def weight(self):  # EpsMLP.forward reads proj_in.weight.dtype
        return self.conv.weight

    def forward(self, tokens):
        maps = tokens.transpose(1, 2).reshape(len(tokens), -1, self.grid, self.grid)
        return self.conv(maps).flatten(2).transpose(1, 2)


def conv_in(**kwargs):
    model = models.EpsMLP(**kwargs)
    model.proj_in = ConvTokens(model.config.channels, model.config.hidden, model.config.grid)
    return model


def posada(**kwargs):
    model = EpsMLPPosAda(**kwargs)
    torch.nn.init.normal_(model.pos, std=0.5)  # from zeros, the zero-initialised adaLN could not tell positions apart
    return model


models.MODELS["mlp-posada"] = posada
models.PRESETS["mlp-posada"] = ("mlp-posada", dict(pos_embed="learned"))
models.MODELS["mlp-conv"], models.PRESETS["mlp-conv"] = conv_in, ("mlp-conv", {})

MODELS = {  # name -> (preset, kwargs); h128 is the kit's default
    "h128": ("mlp", {}),
    "h128-r8": ("mlp", dict(mlp_ratio=8)),
    "h256-r2": ("mlp", dict(hidden=256, mlp_ratio=2)),
    "h256-d2": ("mlp", dict(hidden=256, depth=2)),
    "h256": ("mlp", dict(hidden=256)),
    "h128-pos": ("mlp-pos", {}),
    "h128-posada": ("mlp-posada", {}),
    "h128-conv": ("mlp-conv", {}),
    "unet": ("unet", {}),  # diffusers' UNet2DModel: 3 x 3 convolutions see the neighbouring positions
    "dit": ("dit", dict(hidden=128, depth=3)),  # attention across all positions
}


def pooled_whitening(z_train: torch.Tensor):
    """adlib's `whiten` with every position of every image as one sample of a single position: one
    L L^T = Cov(z_train pooled) + eps I for all positions, applied as z -> L^-1 (z - mean)."""
    c = z_train.shape[1]

    def tokens(z):  # N x C x h x w -> (N h w) x C x 1 x 1
        return z.permute(0, 2, 3, 1).reshape(-1, c, 1, 1)
    stats = fit_stats(tokens(z_train), "whiten")

    def apply(z):
        n, _, h, w = z.shape
        return standardize(tokens(z), stats).reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous()
    return apply


def features(spec: str, how: str) -> dict:
    raw = raw_features(spec)
    z, _ = standardized(raw, "whiten" if how == "whiten" else "position")
    if how == "pooled":
        apply = pooled_whitening(z["train"])
        z = {part: apply(zk) for part, zk in z.items()}
    z["y"] = test_labels(raw)
    return z


def aurocs(model, steps, z) -> str:
    r = invad_scorer(model, steps, "paper", z["val"])(z["test"])
    return "/".join(f"{roc_auc_score(z['y'], r[k]):.3f}" for k in ("nll", "diff", "combined"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="elpv:poly")
    p.add_argument("--features", choices=("position", "pooled", "whiten"), default="position")
    p.add_argument("--model", choices=MODELS, default="h128")
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=RunConfig.lr, help="peak learning rate (default: the kit's)")
    a = p.parse_args()
    z = features(a.data, a.features)
    preset, kwargs = MODELS[a.model]
    cfg = RunConfig(data=a.data, model=preset, model_kwargs=kwargs, iters=a.iters, seed=a.seed, lr=a.lr, device="cpu",
                    snapshots=False, checkpoint_every=10 ** 9)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as out:
        _, ema, losses, _ = fit(cfg, z["train"], Path(out), progress=False)
    row = {"data": a.data, "features": a.features, "model": a.model, "iters": a.iters, "seed": a.seed, "lr": a.lr,
           "train_s": round(time.time() - t0), "params": sum(q.numel() for q in ema.parameters()),
           "loss": round(float(np.mean(losses[-100:])), 4)}
    row.update({f"S{s}": aurocs(ema, s, z) for s in (2, 3, 5)})
    torch.manual_seed(a.seed)
    row["control_S3"] = aurocs(models.build_model(preset, z["train"].shape[1], z["train"].shape[-1], **kwargs).eval(),
                               3, z)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

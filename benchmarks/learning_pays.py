"""Where learning pays (issue 19): what a learned residual adds over the data-chosen Gaussian, three seeds.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=2 python benchmarks/learning_pays.py --root /tmp/adlib-suite \
        --only elpv-mono,tex-cloud,part-rot --seeds 0 1 2 --iters 600 --out docs/bench/learning-pays.jsonl
    python benchmarks/learning_pays.py --table docs/bench/learning-pays.jsonl

Per development set (benchmarks/dev_suite.py; never a reported test set): the features are whitened by the
Gaussian `--standardize auto` chooses on the training normals, then
- `control`: the zero residual, eps of N(0, I) (`--model standard`, the closed-form candidate default);
- `residual`: `standard+conv`, a zero-initialised conv residual over that base trained with the kit's own
  `fit` (adlib/runs/train.py) for `--iters` iterations, per seed.
Both score the test part with S = 3 on the paper grid and `local-top`, normalised on the validation normals.
Also per seed: the held-out denoising loss of the validation normals (adlib.models.denoising_loss, the same t
and noise for both), the label-free criterion that would keep the residual: its drop below the base, with the
standard error of the per-image differences (kept when the drop exceeds 2 standard errors).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from dev_suite import build, few_shot  # noqa: E402
from feature_sets import suite_parts  # noqa: E402

from adlib.evaluation.scorers import invad_scorer  # noqa: E402
from adlib.features.standardize import choice_record, fit_stats, standardize  # noqa: E402
from adlib.models import denoising_loss  # noqa: E402
from adlib.runs.config import RunConfig  # noqa: E402
from adlib.runs.train import fit  # noqa: E402
from adlib.method import scoring  # noqa: E402


def scores(model, z_val, z_test, labels, masks) -> dict:
    """Image (and pixel) AUROC of S = 3 local-top, normalised on the validation normals."""
    out = invad_scorer(model, 3, "paper", z_val)(z_test)
    row = {"image_auroc": float(roc_auc_score(labels, out["local-top"]))}
    if masks is not None:
        pm = scoring.pixel_map(out["map"], masks.shape[-1]).numpy()
        row["pixel_auroc"] = float(roc_auc_score(masks.ravel(), pm.ravel()))
    return row


def per_image_loss(model, z, seed=0) -> np.ndarray:
    """Held-out denoising loss of each image (same t and noise for every model, from `seed`)."""
    return np.array([denoising_loss(model, z[i:i + 1], seed=seed + i) for i in range(len(z))])


def run_set(name, z_tr, z_va, z_te, labels, masks, seeds, iters, hidden) -> dict:
    stats = fit_stats(z_tr, "auto")
    w_tr, w_va, w_te = (standardize(z, stats) for z in (z_tr, z_va, z_te))
    rows = []
    for seed in seeds:
        cfg = RunConfig(model="standard+conv", standardize="auto", iters=iters, batch_size=16, seed=seed,
                        device="cpu", snapshots=False, checkpoint_every=10 ** 9,
                        model_kwargs={"residual_kwargs": {"hidden": hidden, "depth": 1}})
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            _, ema, losses, _ = fit(cfg, w_tr, Path(tmp), progress=False)
        train_s = time.perf_counter() - t0
        base_loss, res_loss = per_image_loss(ema.base, w_va), per_image_loss(ema, w_va)
        diff = base_loss - res_loss
        drop, se = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))
        rows.append({"seed": seed, "residual": scores(ema, w_va, w_te, labels, masks),
                     "control": scores(ema.base, w_va, w_te, labels, masks),
                     "held_out_loss": {"base": float(base_loss.mean()), "residual": float(res_loss.mean()),
                                       "drop": drop, "se": se, "keep": drop > 2 * se},
                     "train_seconds": round(train_s, 1), "final_train_loss": float(np.mean(losses[-50:]))})
        print(name, seed, rows[-1], flush=True)
    return {"data": name, "n_train": len(z_tr), "n_val": len(z_va), "n_test": len(z_te), "iters": iters,
            "hidden": hidden, "standardize_choice": choice_record(stats)["chosen"], "seeds": rows}


def table(paths) -> str:
    """Markdown: control vs residual image (pixel) AUROC, mean ± sd over seeds, and the held-out criterion."""
    lines = ["| data | n train | control (standard) | residual (standard+conv) | residual − control | "
             "held-out loss drop (± 2 SE) | kept by the criterion |", "|---|---|---|---|---|---|---|"]
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            s = r["seeds"]

            def cell(kind, key="image_auroc"):
                v = np.array([x[kind][key] for x in s])
                return v, f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}"

            (c, cs), (t, ts) = cell("control"), cell("residual")
            if "pixel_auroc" in s[0]["control"]:
                cs += f" ({cell('control', 'pixel_auroc')[1]})"
                ts += f" ({cell('residual', 'pixel_auroc')[1]})"
            d = t - c
            drop = ", ".join(f"{x['held_out_loss']['drop']:+.4f} ± {2 * x['held_out_loss']['se']:.4f}" for x in s)
            kept = sum(x["held_out_loss"]["keep"] for x in s)
            lines.append(f"| {r['data']} | {r['n_train']} | {cs} | {ts} | {d.mean():+.3f} ± "
                         f"{d.std(ddof=1) if len(d) > 1 else 0:.3f} | {drop} | {kept} of {len(s)} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/adlib-suite")
    ap.add_argument("--out", default="docs/bench/learning-pays.jsonl")
    ap.add_argument("--only", default="")
    ap.add_argument("--few", action="store_true", help="the @20 versions (20 seeded training images)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--table", nargs="*", help="print the markdown table of these JSON-lines files and stop")
    a = ap.parse_args()
    if a.table:
        return print(table(a.table))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for name, _, (z_tr, z_va, z_te, labels, masks) in suite_parts(build(a.root), a.only):
        tr = few_shot(z_tr) if a.few else z_tr
        line = run_set(name + ("@20" if a.few else ""), tr, z_va, z_te, labels, masks, a.seeds, a.iters, a.hidden)
        with open(a.out, "a") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()

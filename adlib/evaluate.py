"""Evaluate one trained run with one InvAD setting: metrics, speed, and calibrated decisions."""

import numpy as np

from . import scoring
from .bench import end_to_end_ips, invad_scorer, method_rows, timed_scorer
from .cache import decode
from .data import load_masks


def evaluate_run(run, data, steps=None, grid=None, score=None, transductive=False, batch_size=32,
                 n_timing=64, skip_bad=False) -> dict:
    steps, grid, score = steps or run.cfg.steps, grid or run.cfg.grid, score or run.cfg.score
    z_val, _ = run.features(data.val, "val features", skip_bad)
    z_test, test = run.features(data.test, "test features", skip_bad)
    labels = np.array([s.label for s in test])
    masks = load_masks(test, run.cfg.image_size) if data.has_masks else None
    scorer = invad_scorer(run.model, steps, grid, z_val, batch_size)
    out, seconds = timed_scorer(scorer, z_test, batch_size)
    if transductive:  # the paper's protocol: min-max fitted on this very test set
        out["combined"] = scoring.Normalizer.fit(out).combined(out)
    val_scores = scorer(z_val)[score]
    threshold = scoring.calibrate_threshold(val_scores, fpr=0.05)
    chosen = {k: v for k, v in out.items() if k in (score, "map")}
    row = method_rows("invad", chosen, labels, masks, run.cfg.image_size,
                      dict(steps=steps, grid=grid, nfe=steps, transductive=transductive))[0]
    images, _ = decode(test[:n_timing], run.cfg.image_size, skip_bad)
    decided = out[score] > threshold
    full, alone = end_to_end_ips(run, images, scorer, batch_size)
    row.update(images_per_second=full, backbone_images_per_second=alone, backbone_ratio=full / alone,
               score_images_per_second=len(z_test) / seconds, batch_size=batch_size, device=run.device,
               threshold=threshold, threshold_fpr_on_val=0.05,
               test_fpr=float(decided[labels == 0].mean()), test_tpr=float(decided[labels == 1].mean()))
    return {"data": data.spec, "run": str(run.path), "n_train": len(data.train), "n_test": len(test), "n_anomalous": int(labels.sum()),
            "seed": run.cfg.seed, "backbone_images_per_second": alone,
            "methods": [row]}

"""Evaluate one trained run with one InvAD setting: metrics, speed, and decisions under its calibration.

Decisions use the run's saved calibration (calibration.json: min-max and threshold fitted on disjoint parts
of the normal validation images) when it was made for this S, grid and score; otherwise one is fitted now
the same way. `transductive` fits the min-max on the test set itself (the paper's reference code); the
threshold is then recomputed on the validation normals *scaled by that same min-max*, so a validation-scale
threshold is never applied to test-scaled scores. test_fpr / test_tpr are the decisions `adlib predict` makes
(`decision`: auto, threshold or full-conformal, adlib/runs/full_conformal.py; transductive: the threshold). A run
deciding by full conformal ranks the images of any data among its own normals, as predict does, so other data
then needs no validation normals of its own.
"""
import json
import time

import numpy as np

from adlib.data import load_masks
from adlib.errors import AdlibError
from adlib.evaluation.bench import end_to_end_ips, invad_scorer, method_rows, timed_scorer
from adlib.features.cache import decode
from adlib.features.standardize import standardize
from adlib.method import calibration, scoring
from adlib.runs import full_conformal


def evaluate_run(run, data, steps=None, grid=None, score=None, transductive=False, batch_size=32,
                 n_timing=64, skip_bad=False, fpr=None, decision="auto") -> dict:
    steps, grid, score = steps or run.cfg.steps, grid or run.cfg.grid, score or run.cfg.score
    if len({s.label for s in data.test}) < 2:  # said before any feature is extracted, not by sklearn
        missing = "normal" if all(s.label for s in data.test) else "anomalous"
        raise AdlibError(f"--data {data.spec}: its test part has no {missing} images, and AUROC/AP/F1 need both classes"
                         + ("; give a folder of anomalous images too: folder:NORMAL_DIR:ANOMALOUS_DIR"
                            if data.spec.startswith("folder:") and missing == "anomalous" else ""))
    z_val, _ = run.features(data.val, "val features", skip_bad)
    raw_test, test = run.raw_features(data.test, "test features", skip_bad)
    z_test = standardize(raw_test, run.stats)
    labels = np.array([s.label for s in test])
    masks = load_masks(test, run.cfg.image_size) if data.has_masks else None
    if data.spec == run.cfg.data or _own_normals(run, data):  # the run's calibration (saved, or refitted its way)
        cal = run.calibration(steps, grid, score, fpr, z_val=z_val if data.spec == run.cfg.data and
                              getattr(run.cfg, "val_share", -1) < 0 else None)
    else:  # other data (a category of a unified run, another folder): full conformal ranks its images among the
        # run's normals, as predict does; a threshold is fitted on the data's own validation normals
        cal = _conformal_own(run, steps, grid, score, fpr, decision, transductive) or {
            **calibration.fit(run.scores(z_val, steps, grid), score, fpr or 0.05, seed=run.cfg.split_seed,
                              pool=run.cfg.map_pool),
            "steps": steps, "grid": grid, "source": f"fitted now on the validation normals of {data.spec}"}
    norm = scoring.Normalizer(**cal["normalizer"])
    scorer = invad_scorer(run.model, steps, grid, z_val[calibration.parts(len(z_val), run.cfg.split_seed)[0]], batch_size,
                          precision=run.precision, pool=run.cfg.map_pool)
    out, seconds = timed_scorer(scorer, z_test, batch_size)
    if transductive:  # the paper's protocol: min-max fitted on this very test set
        norm = scoring.Normalizer.fit(out, run.cfg.map_pool)
        cal = {**calibration.fit(scorer(z_val), score, cal["fpr"], normalizer=norm), "steps": steps, "grid": grid,
               "source": "validation normals scaled by the test set's min-max (transductive)"}
    out[score] = scoring.image_score(out, score, norm)  # on the calibration's scale (saved, or transductive)
    chosen = {k: v for k, v in out.items() if k in (score, "map")}
    row = method_rows("invad", chosen, labels, masks, run.cfg.image_size,
                      dict(steps=steps, grid=grid, nfe=steps, transductive=transductive), label_scores=True)[0]
    images, _ = decode(test[:n_timing], run.cfg.image_size, skip_bad, bit_depth=run.bit_depth)
    cal = full_conformal.resolve(run, cal, "threshold" if transductive else decision)
    if full_conformal.is_conformal(cal):  # each test image ranked among the run's normals (few of them)
        normals, t0 = full_conformal.normal_features(run), time.perf_counter()
        p = full_conformal.p_values(run.cfg, cal, normals, raw_test, progress=True)
        decided, decide_seconds = full_conformal.flags(cal, p), time.perf_counter() - t0
    else:
        decided, decide_seconds = out[score] > cal["threshold"], None
    full, alone = end_to_end_ips(run, images, scorer, batch_size)
    row.update(images_per_second=full, backbone_images_per_second=alone, backbone_ratio=full / alone,
               score_images_per_second=len(z_test) / seconds, batch_size=batch_size, device=run.device,
               precision=run.precision,
               threshold=cal["threshold"], threshold_fpr_on_val=cal["fpr"], fpr_guaranteed=cal["fpr_guaranteed"],
               calibration=cal["source"], n_val=cal["n_val"], decision=cal["decision"],
               decision_images_per_second=None if decide_seconds is None else len(z_test) / decide_seconds,
               test_fpr=float(decided[labels == 0].mean()), test_tpr=float(decided[labels == 1].mean()))
    return {"data": data.spec, "run": str(run.path), "n_train": len(data.train), "n_test": len(test), "n_anomalous": int(labels.sum()),
            "seed": run.cfg.seed, "backbone_images_per_second": alone,
            "methods": [row]}


def _own_normals(run, data) -> bool:
    """Whether data's normals are the run's (another protocol half, e.g. elpv:poly:test of an elpv:poly run), or,
    for a cross-fitted run, among them: its validation images were then fitted on, and only the run's
    cross-fitted calibration is out of sample for them."""
    try:
        split = json.loads((run.path / "split.json").read_text())
    except (OSError, ValueError):
        return False
    mine = set(split.get("train", []) + split.get("val", []) + split.get("skipped_files", []))
    theirs = {s.path for s in data.train + data.val}
    return theirs == mine or (getattr(run.cfg, "calibration", "split") == "cross-fit" and theirs <= mine)


def _conformal_own(run, steps, grid, score, fpr, decision, transductive):
    """The run's own calibration when it decides by full conformal (ranks among its normals, on any data), else None."""
    if decision == "threshold" or transductive or not full_conformal.possible(run.cfg):
        return None
    if decision == "auto" and _saved_decision(run) != full_conformal.DECISION:  # no cross-fitting again to learn it
        return None
    own = full_conformal.resolve(run, run.calibration(steps, grid, score, fpr), decision)
    return {**own, "source": f"{own['source']}: ranked among the run's normals, as `adlib predict` decides"} \
        if full_conformal.is_conformal(own) else None


def _saved_decision(run):
    """The decision in RUN/calibration.json (None when absent or unreadable)."""
    try:
        return json.loads((run.path / calibration.FILE).read_text()).get("decision")
    except (OSError, ValueError):
        return None

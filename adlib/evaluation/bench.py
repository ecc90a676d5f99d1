"""Side-by-side harness: every method scores the same standardised features in one process.

A scorer maps features (B x C x h x w) to {score name: B image scores, "map": B x h x w} (see
adlib.evaluation.scorers). For each we measure the metrics, `score_images_per_second` (cached features -> score) and
`images_per_second` (decoded image -> backbone -> score, on a fixed subset), next to the backbone alone
(the floor).

Speed is read with adlib.evaluation.timing's clock (the device synchronised before each read). `measure` times the
methods interleaved: after one untimed pass of each, every round runs every method once, in an order
rotated each round (the backbone alone is one more method in the end-to-end rounds), so that all of them
meet the same load on a shared machine. Rows give the median over rounds, its min, max, interquartile
range and relative spread (iqr / median); ratios are taken between medians.
"""
import json
import time
from math import ceil

import numpy as np
from tqdm.auto import tqdm

from adlib.data import load_masks
from adlib.evaluation.baselines import KNN, PaDiM
from adlib.evaluation.metrics import METRIC_NAMES, all_metrics, pixel_metrics
from adlib.evaluation.scorers import invad_scorer, map_scorer, reconstruction_scorer
from adlib.evaluation.select import rank_settings
from adlib.evaluation.speed_table import time_heads
from adlib.evaluation.timing import interleaved, rate_summary, timed
from adlib.runs.full_conformal import is_conformal
from adlib.features.cache import decode
from adlib.features.standardize import standardize, unstandardize
from adlib.method import calibration, scoring
from adlib.models.controls import control_model

__all__ = ["invad_scorer", "map_scorer", "reconstruction_scorer", "timed", "timed_scorer", "end_to_end_ips",
           "method_rows", "baseline_methods", "measure", "compare", "label_free_choice", "format_table"]


def timed_scorer(scorer, z, batch_size=32, repeats=3, device=None):
    """(scores of z, seconds per pass): one untimed warm-up batch, then the median of `repeats` passes.

    The warm-up keeps one-time set-up (allocations, oneDNN kernel choice) off the images' bill; the median
    keeps one disturbed pass on a shared machine from deciding a ratio between methods. `device` (default:
    the scorer's own `device`) is synchronised before each clock read."""
    device = getattr(scorer, "device", None) if device is None else device
    scorer(z[:batch_size])
    runs = [timed(scorer, z, device=device) for _ in range(repeats)]
    return runs[0][0], float(np.median([seconds for _, seconds in runs]))


def end_to_end_ips(run, images, scorer, batch_size, rounds=1) -> tuple:
    """(images/s of backbone + standardise + scorer, images/s of the backbone alone), from decoded images,
    by adlib.evaluation.speed_table's procedure (one warm-up round; per round the backbone, then the scorer on those
    features; end to end = backbone + head, so it is never faster than the backbone); medians over rounds."""
    seconds = time_heads(run_backbone(run), {"full": lambda z: scorer(standardize(z, run.stats))}, images, batch_size,
                         rounds, warmup=1, device=run.device)
    b = np.asarray(seconds["backbone"], dtype=float)
    return len(images) / float(np.median(b + np.asarray(seconds["full"]))), len(images) / float(np.median(b))


def run_backbone(run):
    """The run's backbone as its scoring runs it: under the run's backbone precision (fp32), float32 out."""
    if getattr(run, "backbone_autocast", None) is None:
        return run.extractor

    def backbone(images):
        with run.backbone_autocast():
            return run.extractor(images).float()
    return backbone


def _speed(prefix, seconds, n) -> dict:
    r = rate_summary(seconds, n)
    return {prefix: r["median"], f"{prefix}_min": r["min"], f"{prefix}_max": r["max"], f"{prefix}_iqr": r["iqr"],
            f"{prefix}_spread": r["spread"]}


def method_rows(name, out, labels, masks, image_size, extra, label_scores=None):
    """One row per image score of a method; the pixel metrics of its one map are computed once.
    label_scores: give each row its `score` name; None = only when the method offers several image scores (InvAD's
    nll / diff / combined / ...), not a baseline's one score (its map's max)."""
    pixel = pixel_metrics(masks, scoring.pixel_map(out["map"], image_size).numpy()) if masks is not None else None
    keys = [k for k in out if k != "map"]
    label_scores = len(keys) > 1 if label_scores is None else label_scores
    rows = []
    for key in keys:
        m = all_metrics(labels, out[key], masks, pixel=pixel)
        row = {"name": name, **extra, **({"score": key} if label_scores else {})}
        row.update({k: m[k] for k in METRIC_NAMES}, mad=m["mad"])
        rows.append(row)
    return rows


def baseline_methods(model, z_train, recon=((0.1, 3), (0.3, 3), (0.1, 10), (0.3, 10)), batch_size=64, seed=0,
                     stats=None):
    """(name, scorer, row fields) for reconstruction at each (r, K) with the same weights, PaDiM and kNN.

    `padim` / `knn` work on the run's standardised features; with the run's `stats`, `padim (raw)` / `knn (raw)`
    are the authors' definitions on the raw backbone features (PaDiM: per-position mean and covariance + 0.01 I,
    max of the Mahalanobis map; kNN: nearest training patch, max over positions). Their scorers take the same
    standardised features as every other method and undo the standardisation first."""
    methods = [(f"reconstruction r={r} K={k}", reconstruction_scorer(model, r, k, batch_size, seed),
                dict(steps=k, nfe=k, r=r)) for r, k in recon]
    methods.append(("padim", map_scorer(PaDiM().fit(z_train).map, batch_size), dict(nfe=0)))
    methods.append(("knn", map_scorer(KNN(seed=seed).fit(z_train).map, batch_size), dict(nfe=0)))
    if stats is not None:
        raw = unstandardize(z_train, stats)
        for name, fitted in (("padim (raw)", PaDiM().fit(raw)), ("knn (raw)", KNN(seed=seed).fit(raw))):
            methods.append((name, map_scorer(lambda z, f=fitted: f.map(unstandardize(z, stats)), batch_size),
                            dict(nfe=0)))
    return methods


def measure(methods, run, z_test, labels, masks, images, batch_size=32, progress=True, rounds=5,
            score_images=None, score_rounds=None):
    """Metrics and speed of every method on the same test features: (rows, median backbone-alone images/s).

    1. Every scorer scores all of z_test once, untimed: the metrics, and each scorer's warm-up.
    2. latent -> score: `score_rounds` interleaved rounds, each scoring the first `score_images` test
       features (default: one batch) with every method. Short calls and many rounds let every method meet
       the same load; by default max(rounds, len(z_test) / score_images) rounds, so all of them together
       cost about one pass over the test set per method.
    3. image -> score end to end on `images` (None: skipped), by adlib.evaluation.speed_table's procedure: each round
       runs the backbone once per batch, then every method's head on those same features; a method's
       end-to-end time per round is backbone + head, so it can never come out faster than its backbone.
    Rows: the medians over rounds and, for each rate, `_min`, `_max`, `_iqr` and `_spread` (iqr / median)
    over its rounds; `backbone_ratio` = median backbone time / median end-to-end time (<= 1)."""
    device = run.device
    outs = [scorer(z_test) for _, scorer, _ in tqdm(methods, desc="methods", disable=not progress)]
    n = min(len(z_test), score_images or batch_size)
    score_rounds = score_rounds or max(rounds, ceil(len(z_test) / n))
    e2e_rounds = rounds if images is not None and len(images) else 0
    bar = tqdm(total=score_rounds + e2e_rounds, desc="timing rounds", disable=not progress)
    score_s = interleaved({i: (lambda s=scorer: s(z_test[:n])) for i, (_, scorer, _) in enumerate(methods)},
                          score_rounds, device, on_round=lambda r: bar.update())
    backbone, e2e = None, {}
    if e2e_rounds:
        heads = {i: (lambda z, s=scorer: s(standardize(z, run.stats))) for i, (_, scorer, _) in enumerate(methods)}
        seconds = time_heads(run_backbone(run), heads, images, batch_size, rounds, warmup=1, device=device,
                             on_round=lambda r: bar.update())
        b = np.asarray(seconds["backbone"], dtype=float)
        e2e = {i: b + np.asarray(seconds[i], dtype=float) for i in heads}
        backbone = _speed("backbone_images_per_second", b, len(images))
    bar.close()
    rows = []
    for i, ((name, _, extra), out) in enumerate(zip(methods, outs)):
        speed = _speed("score_images_per_second", score_s[i], n)
        if backbone is not None:
            speed.update(_speed("images_per_second", e2e[i], len(images)), **backbone)
            speed["backbone_ratio"] = float(np.median(b) / np.median(e2e[i]))
        speed.update(batch_size=batch_size, device=run.device, timing_rounds=rounds, score_timing_rounds=score_rounds,
                     score_timing_images=n, end_to_end_timing_images=0 if images is None else len(images))
        rows += [{**r, **speed} for r in method_rows(name, out, labels, masks, run.cfg.image_size, extra)]
    return rows, None if backbone is None else backbone["backbone_images_per_second"]


def compare(run, data, steps_list=(1, 2, 3, 5, 10), grid="paper", recon=((0.1, 3), (0.3, 3), (0.1, 10), (0.3, 10)),
            batch_size=32, n_timing=32, progress=True, rounds=5):
    """All methods on the run's features of `data`; returns the JSON-ready report."""
    t_start = time.perf_counter()
    z_train, _ = run.features(data.train, "train features")
    z_val, _ = run.features(data.val, "val features")
    z_test, test = run.features(data.test, "test features")
    labels = np.array([s.label for s in test])
    masks = load_masks(test, run.cfg.image_size) if data.has_masks else None
    images, _ = decode(test[:n_timing], run.cfg.image_size, bit_depth=getattr(run, "bit_depth", None))  # as run.features
    control_name, control = control_model(run.model, run.cfg.seed)
    z_norm = z_val[calibration.parts(len(z_val), run.cfg.split_seed)[0]]  # the min-max part, as evaluate's
    precision = getattr(run, "precision", "fp32")
    methods = [(f"invad S={s}", invad_scorer(run.model, s, grid, z_norm, precision=precision),
                dict(steps=s, grid=grid, nfe=s))
               for s in steps_list]
    if control is not run.model:  # a closed-form model is its own control: a second row would repeat the first
        methods.append((f"invad {control_name} S=3", invad_scorer(control, 3, grid, z_norm, precision=precision),
                        dict(steps=3, grid=grid, nfe=3)))
    methods += baseline_methods(run.model, z_train, recon, seed=run.cfg.seed, stats=run.stats)
    rows, backbone = measure(methods, run, z_test, labels, masks, images, batch_size, progress, rounds)
    report = {"data": data.spec, "run": str(run.path), "n_train": len(z_train), "n_val": len(z_val),
              "n_test": len(test), "n_anomalous": int(labels.sum()), "seed": run.cfg.seed,
              "backbone": run.cfg.backbone, "model": run.cfg.model, "methods": rows, "precision": precision,
              "control": control_name if control is not run.model else None,
              "backbone_images_per_second": backbone}
    for row in rows:  # the setting `adlib evaluate` scores with: the recipe's default is judged as shipped
        row["default"] = row["name"] == f"invad S={run.cfg.steps}" and row.get("score") == run.cfg.score
    report["default"] = {"steps": run.cfg.steps, "grid": run.cfg.grid, "score": run.cfg.score,
                         "in_table": run.cfg.steps in steps_list and grid == run.cfg.grid}
    report["label_free_choice"] = label_free_choice(run.model, z_val, steps_list, grid, report["methods"])
    report["timing_rounds"] = rounds
    report["compare_seconds"] = round(time.perf_counter() - t_start, 1)
    timing = run.path / "timing.json"
    if timing.is_file():
        report["training"] = json.loads(timing.read_text())
    return report


def label_free_choice(model, z_val, steps_list, grid, rows) -> dict:
    """S and score chosen on synthetic anomalies of validation normals, against the best by test labels."""
    auroc, steps, _, score = rank_settings(model, z_val, steps_list, (grid,))[0]
    invad = [r for r in rows if r["name"].startswith("invad S=")]
    chosen = next(r for r in invad if r["steps"] == steps and r["score"] == score)
    best = max(invad, key=lambda r: r["image_auroc"])
    return {"steps": steps, "score": score, "synthetic_auroc": auroc, "test_image_auroc": chosen["image_auroc"],
            "best_with_labels": {"steps": best["steps"], "score": best["score"], "test_image_auroc": best["image_auroc"]}}


# (column, header) of format_table; headers are printed whole, columns every row lacks are left out
TABLE = [("image_auroc", "image_auroc"), ("image_ap", "image_ap"), ("image_f1max", "image_f1max"),
         ("pixel_auroc", "pixel_auroc"), ("aupro", "aupro"), ("pixel_ap", "pixel_ap"),
         ("pixel_f1max", "pixel_f1max"), ("mad", "mAD"), ("nfe", "nfe"),
         ("score_images_per_second", "scoring images/s"), ("score_images_per_second_spread", "± (iqr)"),
         ("images_per_second", "end-to-end images/s"), ("backbone_ratio", "backbone_ratio")]
LEGEND = ("mAD: the mean of the seven metrics (image AUROC, AP, F1-max; pixel AUROC, AUPRO, AP, F1-max), of the "
          "image ones alone without masks. nfe: network evaluations per image. scoring images/s: the score from cached "
          "features; end-to-end images/s: backbone and score; backbone_ratio: end-to-end / backbone-alone speed.")


def format_table(report) -> str:
    """The report as a text table (whole column names), a legend, and for rows decided at a calibrated threshold
    (`adlib evaluate`) its false-positive and detection (true-positive) rates on the test images."""
    cols = [(c, h) for c, h in TABLE if any(m.get(c) is not None for m in report["methods"])]
    width = {c: max(len(h), 7) + 2 for c, h in cols}
    head = f"{'method':<28} {'score':<9}" + "".join(f"{h:>{width[c]}}" for c, h in cols)

    def cell(m, c):
        v = m.get(c)
        text = "-" if v is None else f"±{100 * v:.0f}%" if c.endswith("_spread") else \
            f"{v:.3f}" if isinstance(v, float) else str(v)
        return f"{text:>{width[c]}}"
    backbone = report.get("backbone_images_per_second")
    lines = [f"{report['data']}: {report['n_train']} train, {report['n_test']} test ({report['n_anomalous']} anomalous); "
             f"backbone alone {'-' if backbone is None else f'{backbone:.1f}'} images/s"
             + (f"; speeds: medians of {report['timing_rounds']} interleaved rounds" if "timing_rounds" in report else ""),
             head]
    for m in report["methods"]:
        name = m["name"] + (" (default)" if m.get("default") else "")
        lines.append(f"{name:<28} {m.get('score', ''):<9}" + "".join(cell(m, c) for c, _ in cols))
    lines.append(LEGEND)
    for m in report["methods"]:
        if m.get("test_fpr") is not None:
            lines.append(at_threshold(m, report["n_test"] - report["n_anomalous"], report["n_anomalous"]))
    if "label_free_choice" in report:
        c = report["label_free_choice"]
        b = c["best_with_labels"]
        lines.append(f"label-free choice (synthetic anomalies on validation normals): S={c['steps']} {c['score']} -> "
                     f"test image AUROC {c['test_image_auroc']:.3f}; best with labels: S={b['steps']} {b['score']} -> "
                     f"{b['test_image_auroc']:.3f}")
    return "\n".join(lines)


def at_threshold(m: dict, n_normal: int, n_anomalous: int) -> str:
    """One line: the row's decisions (at its calibrated threshold, or full conformal), on the test images, beside
    what it promised."""
    g, target = m.get("fpr_guaranteed"), m.get("threshold_fpr_on_val")
    conformal = is_conformal(m)
    promised = "" if g is None else f"; promised{'' if conformal else ' on validation normals'}: <= {g:.1%}" + (
        f" (target {target:.1%})" if target is not None and abs(g - target) >= 5e-4 else "")
    how = (f"deciding by full conformal among its {m['n_val']} normal images (the decisions alone "
           f"{m['decision_images_per_second']:.1f} images/s)" if conformal else
           f"at its calibrated threshold {m['threshold']:.4g}")
    return (f"{m['name']} {how}: false-positive rate {m['test_fpr']:.1%} "
            f"({round(m['test_fpr'] * n_normal)} of {n_normal} normal test images flagged), detection rate "
            f"(true-positive rate) {m['test_tpr']:.1%} ({round(m['test_tpr'] * n_anomalous)} of {n_anomalous} "
            f"anomalous found){promised}")

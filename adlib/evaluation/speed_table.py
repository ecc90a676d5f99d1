"""End-to-end speed that cannot show a method faster than its own backbone.

Timing "backbone alone" and "backbone + method" as separate pipelines, each with a median of its own
rounds, lets the two medians meet different load on a shared machine: a cheap head (PaDiM, kNN) then
came out *faster* than the backbone it runs on. Here one procedure times every method:

- `warmup` untimed rounds, then `rounds` timed rounds (the same for all methods);
- each round runs the backbone once per batch of the images (timed), then every method's head on those
  very features (timed; the order of the heads rotated each round, so none always runs first);
- a method's end-to-end time in round r is  T_r = B_r + H_r  (backbone B_r, its head H_r >= 0);
- every figure is a median over rounds.

Since T_r >= B_r in every round, each order statistic of the T_r is >= the same order statistic of the
B_r, so median(T) >= median(B) and

    x backbone = (images/s end to end) / (images/s of the backbone alone) = median(B) / median(T) <= 1

by construction of the measurement, with no clamping. Clocks are adlib.evaluation.timing's (device synchronised).
"""
import numpy as np

from adlib.evaluation.timing import rate_summary, timed


def time_heads(backbone, heads: dict, images, batch_size: int = 32, rounds: int = 5, warmup: int = 1,
               device=None, on_round=None) -> dict:
    """{"backbone": [seconds per round], name: [head seconds per round]} over all of `images`.

    backbone(batch) -> features (None: the inputs are features already, only the heads are timed);
    heads: {name: head(features)}. A round runs backbone then every head on each batch of `images`."""
    names = list(heads)
    seconds = {"backbone": [], **{n: [] for n in names}}
    for r in range(warmup + rounds):
        k = r % len(names) if names else 0
        order = names[k:] + names[:k]
        spent = dict.fromkeys(seconds, 0.0)
        for i in range(0, len(images), batch_size):
            batch = images[i:i + batch_size]
            if backbone is not None:
                batch, s = timed(backbone, batch, device=device)
                spent["backbone"] += s
            for name in order:
                spent[name] += timed(heads[name], batch, device=device)[1]
        if r >= warmup:
            for name, s in spent.items():
                if name != "backbone" or backbone is not None:
                    seconds[name].append(s)
            if on_round is not None:
                on_round(r - warmup)
    return seconds


def speed_rows(seconds: dict, n: int) -> dict:
    """{name: speed fields} from `time_heads`'s seconds for n images per round.

    images_per_second: end to end (backbone + head, per round, then the median); head_images_per_second:
    the head alone on features; backbone_ratio: median backbone time / median end-to-end time (<= 1);
    `_spread`: interquartile range / median of the end-to-end rate over rounds."""
    backbone = np.asarray(seconds["backbone"], dtype=float)
    if not len(backbone):
        backbone = None
    out = {}
    for name, head in seconds.items():
        if name == "backbone":
            continue
        head = np.asarray(head, dtype=float)
        total = head if backbone is None else backbone + head
        r = rate_summary(total, n)
        row = {"images_per_second": r["median"], "images_per_second_spread": r["spread"],
               "head_images_per_second": rate_summary(head, n)["median"],
               "head_ms_per_image": 1e3 * float(np.median(head)) / n}
        if backbone is not None:
            row["backbone_images_per_second"] = rate_summary(backbone, n)["median"]
            row["backbone_ratio"] = float(np.median(backbone) / np.median(total))
        out[name] = row
    return out


def speed_table(backbone, heads: dict, images, batch_size: int = 32, rounds: int = 5, warmup: int = 1,
                device=None, on_round=None) -> tuple:
    """(speed_rows of every head, images/s of the backbone alone): `time_heads` then `speed_rows`."""
    seconds = time_heads(backbone, heads, images, batch_size, rounds, warmup, device, on_round)
    rows = speed_rows(seconds, len(images))
    alone = None if backbone is None else rate_summary(seconds["backbone"], len(images))["median"]
    return rows, alone


def run_heads(run, methods) -> tuple:
    """(backbone, heads) of a run for `time_heads`: the run's extractor, and for each (name, scorer, ...)
    of adlib.evaluation.bench the head  features -> standardise with the run's statistics -> scorer."""
    from adlib.features.standardize import standardize
    heads = {m[0]: (lambda z, s=m[1]: s(standardize(z, run.stats))) for m in methods}
    return run.extractor, heads

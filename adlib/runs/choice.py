"""What `--standardize auto` chose from the user's normal images, and why, in one sentence (train's summary line,
the report's details): the Gaussian (held-out NLL, adlib/features/covariance.py) and how far local-top's map
statistics were pooled (`scoring.mean_pool`: the mean only where the content moves between images)."""
from adlib.method.scoring import MOVING


def describe(cfg, normalizer: dict = None) -> str:
    """The sentence for a run's config and its calibration's normaliser; "" when nothing was chosen."""
    choice = cfg.standardize_choice
    if not choice:
        return ""
    nll = choice["held_out_nll"]
    text = (f"standardize auto chose {choice['chosen']} (held-out NLL per image {nll[choice['chosen']]:.5g}; "
            f"per-position rho=0 {nll.get('rho=0', float('nan')):.5g}, pooled rho=1 {nll.get('rho=1', float('nan')):.5g}, "
            f"shared {nll.get('shared', float('nan')):.5g}; {choice['n_held_out']} of "
            f"{choice['n_fit'] + choice['n_held_out']} training images held out)")
    norm = normalizer or {}
    if norm.get("map_mean_pool") is None or norm.get("map_mean") is None:
        return text
    moving = norm.get("map_moving")
    why = ("too few normal maps to measure whether the content moves" if moving is None else
           f"the content moves between images: moving-content {moving:.2f} >= {MOVING}" if moving >= MOVING else
           f"the content stays in place: moving-content {moving:.2f} < {MOVING}")
    mean = "pooled by the same amount" if norm["map_mean_pool"] > 0 else "kept per position"
    return text + (f"; local-top's map spread pooled by {norm['map_pool']:g}, its mean {mean} ({why})"
                   if norm["map_pool"] > 0 else "")

"""`adlib train`: features, standardisation, the eps-network (fitted or trained) and its calibration."""
import json
from dataclasses import replace

from adlib.cli.common import config_from_args, train_options
from adlib.method import SCORES


def cmd_train(a):
    from adlib.runs.choice import describe
    from adlib.runs.full_conformal import is_conformal
    from adlib.runs.run import train_run
    from accelerate import PartialState
    cfg = config_from_args(a)
    run = train_run(replace(cfg, score=a.score) if a.score else cfg, a.out, resume=a.resume, skip_bad=a.skip_bad)
    if PartialState().is_main_process:
        cal = json.loads((run.path / "calibration.json").read_text())
        rule = (f"decisions by full conformal, each new image ranked among all {cal['n_threshold']} normal images: "
                f"false-positive rate <= {cal['fpr_guaranteed']:.1%} promised, and realised on average"
                if is_conformal(cal) else
                f"threshold {cal['threshold']:.4g}: false-positive rate <= {cal['fpr_guaranteed']:.1%} guaranteed "
                + (f"from all {cal['n_threshold']} normal images, cross-fitted in {cal['folds']} folds"
                   if cal.get("calibration") == "cross-fit" else
                   f"from {cal['n_threshold']} of {cal['n_val']} normal validation images"))
        print(f"trained {run.cfg.model} on {run.cfg.data} ({run.num_processes} process(es)): {run.path} ({rule})")
        chose = describe(run.cfg, cal.get("normalizer"))
        if chose:  # `--standardize auto`: the Gaussian the held-out likelihood chose, and the score's pooling
            print(chose)
        sc = run.cfg.score_choice
        if sc:  # `--score auto`: which score separated the normals from their synthetic anomalies best
            print(f"score auto chose {sc['chosen']} (synthetic-anomaly AUROC, out of fold: " + ", ".join(
                f"{k} {v:.4f}" for k, v in sc["synthetic_auroc"].items()) + f"; {sc['n_normals']} normals)")



def add_parsers(sub):
    t = sub.add_parser("train", help="extract features and train an eps-network on normal images")
    train_options(t)
    t.add_argument("--score", choices=[*SCORES, "auto"],
                   help="the run's image score (cpu recipe: local-top); auto, for closed-form models (gaussian, "
                        "standard): max or local-top, whichever best separates the cross-fitted normals from "
                        "synthetic anomalies of them (adlib/runs/crossfit.py); experimental: on the moving-part sets "
                        "it chose local-top where max was better (docs/bench/default-suite.md)")
    t.set_defaults(fn=cmd_train)

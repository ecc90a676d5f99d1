"""`adlib train`: features, standardisation, the eps-network (fitted or trained) and its calibration."""
import json

from adlib.cli.common import config_from_args, train_options


def cmd_train(a):
    from adlib.runs.run import train_run
    from accelerate import PartialState
    run = train_run(config_from_args(a), a.out, resume=a.resume, skip_bad=a.skip_bad)
    if PartialState().is_main_process:
        cal = json.loads((run.path / "calibration.json").read_text())
        print(f"trained {run.cfg.model} on {run.cfg.data} ({run.num_processes} process(es)): {run.path} "
              f"(threshold {cal['threshold']:.4g}: false-positive rate <= {cal['fpr_guaranteed']:.1%} guaranteed "
              f"from {cal['n_threshold']} of {cal['n_val']} normal validation images)")



def add_parsers(sub):
    t = sub.add_parser("train", help="extract features and train an eps-network on normal images")
    train_options(t)
    t.set_defaults(fn=cmd_train)

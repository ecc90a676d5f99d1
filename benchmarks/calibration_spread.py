"""Why the cross-fitted threshold is conservative: out-of-fold scores of the normals against test normals' scores.

    ADLIB_CACHE=/tmp/adlib-cache OMP_NUM_THREADS=1 python benchmarks/calibration_spread.py tex-cloud [few]

For one development set (benchmarks/dev_suite.py; `few`: its 20-normal version), the cpu default's cross-fitted
calibration (adlib/runs/crossfit.py) is compared with the test normals as the deployed model scores them: mean
norm map, its spread over images, the local-top scores (mean, sd, largest), the realised false-positive rate at
the threshold against the promise, and the full model's in-sample scores of the normals.
"""
import sys, numpy as np, torch
sys.path.insert(0, "benchmarks")
from dev_suite import build, few_shot
from feature_sets import suite_parts
from adlib.runs import crossfit
from adlib.runs.config import RunConfig
from adlib.method import calibration, scoring
from adlib.method.inversion import invert, make_grid
from adlib.features.standardize import standardize
name = sys.argv[1]; few = len(sys.argv) > 2
for nm, spec, (z_tr, z_va, z_te, y, masks) in suite_parts(build("/tmp/adlib-suite"), name):
    normals = torch.cat([z_tr, z_va]); normals = few_shot(normals) if few else normals
    cfg, stats = crossfit.with_choice(RunConfig(), normals)
    ids = calibration.fold_ids(len(normals), cfg.folds, cfg.split_seed)
    raw = crossfit.out_of_fold(cfg, normals, ids, cfg.steps, cfg.grid)
    rec = calibration.fit_cross(raw, ids, cfg.score, 0.05, cfg.map_pool)
    _, model = crossfit.fit_normals(cfg, normals, stats)
    test = scoring.raw_scores(invert(model, standardize(z_te[y == 0], stats), make_grid(3, "paper")))
    # in-sample maps of the training normals under the full model
    ins = scoring.raw_scores(invert(model, standardize(normals, stats), make_grid(3, "paper")))
    norm = scoring.Normalizer(**rec["normalizer"])
    ts = scoring.image_score(test, "local-top", norm)
    oof = np.array(rec["val_scores"])
    print(nm, "few" if few else "", cfg.standardize_choice["chosen"], "n", len(normals))
    print(f"  mean map: OOF {raw['map'].mean():.4f}  test normals {test['map'].mean():.4f}  in-sample {ins['map'].mean():.4f}")
    print(f"  map std over images (mean over positions): OOF {raw['map'].std(0).mean():.4f} test {test['map'].std(0).mean():.4f}")
    print(f"  local-top: OOF mean {oof.mean():.3f} sd {oof.std():.3f} max {oof.max():.3f} | test mean {ts.mean():.3f} sd {ts.std():.3f} | thr {rec['threshold']:.3f} realised {np.mean(ts > rec['threshold']):.3f} promised {rec['fpr_guaranteed']:.3f}")
    # the max score too
    print(f"  max: OOF mean {raw['map'].flatten(1).max(1).values.mean():.3f} test {test['map'].flatten(1).max(1).values.mean():.3f}")
    print("  OOF sorted:", np.round(np.sort(oof)[-8:], 2), " test sorted:", np.round(np.sort(ts)[-8:], 2))
    # score the training normals with the FULL model but each with a normaliser... (in-sample)
    ins_s = scoring.image_score(ins, "local-top", norm)
    print("  in-sample full-model scores of the normals: top", np.round(np.sort(ins_s)[-5:], 2))
    top = np.argsort(oof)[-3:]
    print("  fold ids of top OOF:", ids[top], "their in-sample:", np.round(ins_s[top], 2))

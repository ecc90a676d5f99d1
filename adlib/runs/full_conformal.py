"""Full (transductive) conformal decisions from few normals: the rate promised is the rate realised.

A new image u is judged by the closed-form model refitted on the n normals plus u, all n + 1 scored in-sample
with a normaliser fitted on their n + 1 maps (the Gaussian choice kept from the n, as cross-fitting folds keep it):

    p(u) = #{i in n + 1 : s_i >= s_u} / (n + 1),    flagged when p(u) <= fpr.

The n + 1 images are treated alike, so a normal u exchangeable with the n is flagged with probability
floor(fpr (n + 1)) / (n + 1) (Vovk et al. 2005; Lei et al. 2018): 1/21 = 4.76 % at n = 20, fpr = 0.05. The
cross-fitted threshold (crossfit.py) only bounds that rate: on ELPV it realises a fraction of it, because an
outlying normal scored by a fold model without it sets the threshold (docs/bench/few-shot.md).

Fast path (`standard` eps on `auto` features, the cpu default; `in_sample_maps`): at position p the refit is
    Sigma_p = c D_p D_p^T + A,   c = (1 - rho) / n,   A = rho S_pooled + ridge I,
D_p the n + 1 centred features there (C x (n + 1)). The vectors scored are D_p's own columns, so by Woodbury
their squared Mahalanobis distances are the diagonal of
    G_p (I + c G_p)^-1,   G_p = D_p^T A^-1 D_p,
one C x C Cholesky for all positions instead of P of them. `refit_maps` does it the long way, for any closed-form
model (and tests/test_full_conformal.py holds the two equal).

In the kit (`decision` in the calibration record; predict and evaluate --decision auto | threshold | full-conformal):
a cross-fitted run with fewer than calibration.FEW_NORMALS normals and the fast path decides this way (`applies`),
flagging at p <= fpr_guaranteed (the asked fpr, or 1/(n + 1) when n + 1 < 1/fpr: u flagged only above all n).
0.03 s an image on one core at n = 10, 0.06 s at n = 20, 0.2 s at n = 50 (docs/bench/few-shot.md); other runs keep
the threshold.
"""
from dataclasses import replace

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from adlib.errors import AdlibError
from adlib.features.covariance import RIDGE, candidates
from adlib.features.standardize import standardize
from adlib.method import DECISIONS, calibration, scoring
from adlib.method.inversion import invert, make_grid
from adlib.runs import crossfit, refit


def refit_maps(cfg, both: torch.Tensor) -> torch.Tensor:
    """Norm maps (m x h x w) of the m images `both`, under the run's model refitted on them (crossfit.fit_normals)."""
    stats, model = crossfit.fit_normals(cfg, both)
    return scoring.norm_map(invert(model, standardize(both, stats), make_grid(cfg.steps, cfg.grid)))


def has_fast_path(cfg) -> bool:
    return cfg.standardize == "auto" and bool(cfg.standardize_choice) and \
        getattr(crossfit.shape_model(cfg), "eps_scale", None) is not None


def in_sample_maps(cfg, both: torch.Tensor) -> torch.Tensor:
    """`refit_maps` in closed form for `standard` on `auto` features (module docstring), in float64."""
    rho, shared = float(cfg.standardize_choice["rho"]), bool(cfg.standardize_choice["shared"])
    m, c, h, w = both.shape
    x = both.double().flatten(2)                                         # m x C x P
    eye = torch.eye(c, dtype=torch.float64)
    if shared:  # one mean and one covariance for all m * P vectors
        _, mean, sigma = next(candidates(both, [], RIDGE, shared=True))   # covariance.py's own shared Gaussian
        d = (x - mean[0][None, :, None]).permute(1, 0, 2).reshape(c, -1)
        chol = torch.linalg.cholesky(sigma[0])
        dist2 = torch.linalg.solve_triangular(chol, d, upper=False).pow(2).sum(0).reshape(m, h * w)
    else:
        d = (x - x.mean(0, keepdim=True)).permute(1, 2, 0)               # C x P x m
        pooled = d.reshape(c, -1) @ d.reshape(c, -1).T / (h * w * max(1, m - 1))
        chol = torch.linalg.cholesky(rho * pooled + RIDGE * eye)
        y = torch.linalg.solve_triangular(chol, d.reshape(c, -1), upper=False).reshape(c, h * w, m)
        gram = torch.einsum("cpi,cpj->pij", y, y)                        # P x m x m: D_p^T A^-1 D_p
        k = (1 - rho) / max(1, m - 1)
        dist2 = torch.linalg.solve(torch.eye(m, dtype=torch.float64) + k * gram, gram).diagonal(dim1=1, dim2=2).T
    gain = float(invert(crossfit.shape_model(cfg), torch.ones(()), make_grid(cfg.steps, cfg.grid)))
    return (gain * dist2.clamp_min(0).sqrt()).reshape(m, h, w).float()


def in_sample_scores(cfg, z: torch.Tensor, u: torch.Tensor) -> np.ndarray:
    """Image scores of the n normals z and then u (n + 1 values), each in-sample under the refit on all n + 1."""
    both = torch.cat([z, u[None]])
    maps = in_sample_maps(cfg, both) if has_fast_path(cfg) else refit_maps(cfg, both)
    raw = scoring.raw_map_scores(maps, both.shape[1])
    return scoring.image_score(raw, cfg.score, scoring.Normalizer.fit(raw, cfg.map_pool))


def p_value(cfg, z: torch.Tensor, u: torch.Tensor) -> float:
    """p(u): the share of the n + 1 in-sample scores at or above u's (u flagged when p <= fpr)."""
    s = in_sample_scores(cfg, z, u)
    return float((s >= s[-1]).mean())


_, THRESHOLD, DECISION = DECISIONS  # "auto", "threshold", "full-conformal"


def possible(cfg) -> bool:
    """Whether a run can decide by full conformal: cross-fitted, with the closed-form fast path."""
    return crossfit.resolve(cfg) == "cross-fit" and has_fast_path(cfg)


def applies(cfg, n: int) -> bool:
    """Whether a run decides by full conformal by default: `possible`, and fewer than FEW_NORMALS normals."""
    return n < calibration.FEW_NORMALS and possible(cfg)


def mark(cfg, record: dict) -> dict:
    """The cross-fitted record with its `decision`: full conformal where `applies`, else the threshold."""
    if not applies(cfg, record["n_normals"]):
        return {**record, "decision": THRESHOLD}
    return {**record, "decision": DECISION, "method": record["method"] + (
        f"; decisions: full conformal, each new image ranked among the {record['n_normals']} normals under the model "
        f"refitted on them and it, flagged at p <= {record['fpr_guaranteed']:.4g} (the threshold is kept for "
        f"--decision threshold and the ONNX graph; it flags fewer)")}


def resolve(run, record: dict, decision: str = "auto") -> dict:
    """The record deciding as asked: `auto` keeps its own decision (records written before it: the threshold)."""
    if decision not in DECISIONS:
        raise AdlibError(f"--decision {decision}: use one of {', '.join(DECISIONS)}")
    if decision == "auto":
        return {**record, "decision": record.get("decision", THRESHOLD)}
    if decision == DECISION and not possible(run.cfg):
        raise AdlibError(f"--decision full-conformal refits the run's Gaussian once per image, in closed form only for "
                         f"a cross-fitted `--model standard` run on `--standardize auto` features (the cpu recipe); "
                         f"{run.path} has --model {run.cfg.model}, --standardize {run.cfg.standardize}, "
                         f"{run.cfg.calibration} calibration: use --decision threshold")
    return {**record, "decision": decision}


def is_conformal(record: dict) -> bool:
    return record.get("decision") == DECISION


def normal_features(run) -> torch.Tensor:
    """Raw features of the run's n normals: RUN/normals.safetensors when the run keeps them, else extracted again."""
    if refit.stored(run.path):
        return load_file(run.path / refit.FILE)["features"]
    return crossfit.normal_features(run)


def p_values(cfg, record: dict, normals: torch.Tensor, z: torch.Tensor, progress: bool = False) -> np.ndarray:
    """p(u) of each image u in z (raw features, B x C x h x w) against the n normals, with the record's score,
    steps and grid."""
    cfg = replace(cfg, score=record["score"], steps=record["steps"], grid=record["grid"])
    return np.array([p_value(cfg, normals, u) for u in
                     tqdm(z.float(), desc="full conformal", unit="img", leave=False, disable=not progress)])


def flags(record: dict, p: np.ndarray) -> np.ndarray:
    """Anomalous: p <= the rate the record promises (fpr_guaranteed; a hair of slack for its float rounding)."""
    return np.asarray(p) <= record["fpr_guaranteed"] + 1e-9

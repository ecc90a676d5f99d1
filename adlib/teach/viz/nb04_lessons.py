"""Notebook 04's verdicts, each computed from the run and judged by its uncertainty (course v2, issue 22).

- speeds with their spread: every images/s is a median over timed rounds with its interquartile range (IQR);
  two speeds are *level on this machine* when their IQRs overlap; the end-to-end figure predicted by the
  formula 1 / (1/B + 1/H) from the medians sits beside the one measured round by round;
- the design (S, grid, score) chosen on the development half of the test images only (`choose`), and a check
  that scrambling the held-out half cannot change it (`blind_to_held_out`);
- with a Gaussian ε on whitened features every S is PaDiM (`gaussian_every_s`, section 0b, before the sweep): the
  norm map is PaDiM's Mahalanobis map times one number g_S, checked on the run's own features;
- what the S-curve can show depends on the ε-model (`eps_kind`): a Gaussian ε on whitened features ranks every
  image identically at every S (section 0b; notebook 05 derives it), so it cannot show the paper's trend; a
  trained network can be compared with it;
- AUROCs printed with their Hanley-McNeil standard error and compared by adlib.teach.verdicts (2 standard
  errors of the difference), never by a fixed cut-off.
"""
import re

import numpy as np

from adlib.evaluation.baselines import PaDiM
from adlib.evaluation.metrics import image_metrics
from adlib.features.standardize import fit_stats, standardize
from adlib.method import scoring
from adlib.method.inversion import invert, make_grid
from adlib.teach import verdicts
from adlib.teach.viz.base import SCORE_LABELS
from adlib.teach.viz.gaussian_theory import step_gains
from adlib.teach.viz.paper import PAPER_ABLATION, PAPER_RECONSTRUCTION
from adlib.teach.viz.sweep_lessons import StepExplorer


# ---------------------------------------------------------------- speeds and their spread
def _quartiles(x) -> tuple:
    q1, med, q3 = np.percentile(np.asarray(x, dtype=float), [25, 50, 75])
    return float(med), (float(q1), float(q3))


def rates(seconds, n: int) -> tuple:
    """(median images/s, (25 %, 75 %) quartiles) of n items timed in each round."""
    return _quartiles(n / np.asarray(seconds, dtype=float))


def end_to_end(B: float, H: float) -> float:
    """Images/s of backbone (B images/s alone) then head (H images/s alone): 1 / (1/B + 1/H)."""
    return 1.0 / (1.0 / B + 1.0 / H)


def speed_summary(seconds: dict, n: int) -> tuple:
    """({method: speed fields}, backbone fields) from adlib.evaluation.speed_table.time_heads' seconds per round.

    B = n / median(backbone seconds), H = n / median(head seconds): images/s alone. `images_per_second` and
    `backbone_ratio` are the formula of those two medians (1/(1/B + 1/H) and (1/B)/(1/B + 1/H)); the
    `measured_*` fields are the same quantities computed in every round (n / (b_r + h_r), b_r / (b_r + h_r))
    and their median. Each `*_iqr` is the (25 %, 75 %) quartile pair over the rounds."""
    b = np.asarray(seconds["backbone"], dtype=float)
    B, b_iqr = n / float(np.median(b)), _quartiles(n / b)[1]
    back = {"images_per_second": B, "iqr": b_iqr, "ms_per_image": 1e3 * float(np.median(b)) / n, "rounds": len(b)}
    rows = {}
    for name, sec in seconds.items():
        if name == "backbone":
            continue
        h = np.asarray(sec, dtype=float)
        H = n / float(np.median(h))
        m_ips, m_iqr = _quartiles(n / (b + h))
        m_ratio, r_iqr = _quartiles(b / (b + h))
        rows[name] = {"head_images_per_second": H, "head_iqr": _quartiles(n / h)[1],
                      "head_ms_per_image": 1e3 * float(np.median(h)) / n,
                      "images_per_second": end_to_end(B, H), "backbone_ratio": end_to_end(B, H) / B,
                      "measured_images_per_second": m_ips, "measured_iqr": m_iqr,
                      "measured_ratio": m_ratio, "measured_ratio_iqr": r_iqr, "backbone_images_per_second": B}
    return rows, back


def overlap(a: tuple, b: tuple) -> bool:
    """Whether two (low, high) intervals overlap: two speeds whose IQRs overlap are level on this machine."""
    return a[0] <= b[1] and b[0] <= a[1]


def fmt_num(value: float, like: float = None) -> str:
    """A speed with 0 decimals from 100 up, else 1 (`like`: the value whose size sets the decimals)."""
    return f"{value:.{0 if (value if like is None else like) >= 100 else 1}f}"


def fmt_speed(value: float, iqr: tuple) -> str:
    """'215 [198–230]': a median images/s and its interquartile range over the rounds."""
    return f"{fmt_num(value)} [{fmt_num(iqr[0], value)}–{fmt_num(iqr[1], value)}]"


def speed_verdicts(rows) -> dict:
    """{name: 'fastest' | 'level on this machine' | 'slower'}: each method's measured end-to-end speed against
    the fastest one's, judged by their IQRs (overlapping = level), never by a fixed percentage."""
    top = max(rows, key=lambda r: r["measured_images_per_second"])
    return {r["name"]: "fastest" if r is top else
            "level on this machine" if overlap(r["measured_iqr"], top["measured_iqr"]) else "slower" for r in rows}


def head_pair_sentence(a: dict, b: dict) -> str:
    """Two heads' speeds alone, judged by their IQRs."""
    same = overlap(a["head_iqr"], b["head_iqr"])
    return (f"{a['name']} head {fmt_speed(a['head_images_per_second'], a['head_iqr'])} vs {b['name']} "
            f"{fmt_speed(b['head_images_per_second'], b['head_iqr'])} images/s alone: "
            + ("their IQRs overlap, level on this machine" if same else "their IQRs do not overlap")
            + f"; × backbone {a['backbone_ratio']:.2f} vs {b['backbone_ratio']:.2f} (formula)")


def ratio_sentence(row: dict, back: dict) -> str:
    """Exercise 4's sentence: the measured B and H, the formula's end-to-end speed and ratio from them, and
    the ratio measured round by round, every speed with its IQR."""
    B, H = back["images_per_second"], row["head_images_per_second"]
    return (f"{row['name']} measured H = {H:.4g} images/s alone (IQR {row['head_iqr'][0]:.4g}–{row['head_iqr'][1]:.4g}) "
            f"and the backbone B = {B:.4g} images/s (IQR {back['iqr'][0]:.4g}–{back['iqr'][1]:.4g}), so end to end "
            f"1/(1/B + 1/H) = {end_to_end(B, H):.4g} images/s = {end_to_end(B, H) / B:.2f} × backbone (formula); "
            f"measured round by round {row['measured_ratio']:.2f} × backbone "
            f"(IQR {row['measured_ratio_iqr'][0]:.2f}–{row['measured_ratio_iqr'][1]:.2f}, {back['rounds']} rounds)")


def sentence_ratio_agrees(text: str) -> bool:
    """Whether a sentence's 'H = … B = … = R × backbone' obeys R = (1/B)/(1/B + 1/H) within its rounding."""
    H = float(re.search(r"H = ([\d.e+]+)", text).group(1))
    B = float(re.search(r"B = ([\d.e+]+)", text).group(1))
    R = float(re.search(r"([\d.]+) × backbone", text).group(1))   # the first ratio: the formula's
    return abs(R - end_to_end(B, H) / B) <= 0.006   # R has 2 decimals, B and H 4 significant digits


# ---------------------------------------------------------------- choosing without the held-out half
def choose(step_scores: dict, labels, dev) -> tuple:
    """(grid, S, score) with the best image AUROC on the development half: the only labels and scores
    read are those where `dev` is True. Exact ties go to the first key (paper grid, fewest steps)."""
    y, dev = np.asarray(labels), np.asarray(dev, dtype=bool)
    best, best_auroc = None, -1.0
    for (grid, S), scores in step_scores.items():
        for name, v in scores.items():
            a = image_metrics(y[dev], np.asarray(v, dtype=float)[dev])["image_auroc"]
            if a > best_auroc:
                best, best_auroc = (grid, S, name), a
    return best


def blind_to_held_out(step_scores: dict, labels, dev, seed: int = 0) -> bool:
    """Whether `choose` ignores the held-out half: its labels flipped and every score there replaced by noise
    must leave the choice unchanged."""
    g = np.random.default_rng(seed)
    dev = np.asarray(dev, dtype=bool)
    y = np.asarray(labels).copy()
    y[~dev] = 1 - y[~dev]
    scrambled = {}
    for key, scores in step_scores.items():
        scrambled[key] = {}
        for name, v in scores.items():
            v = np.asarray(v, dtype=float).copy()
            v[~dev] = g.normal(size=(~dev).sum()) * (np.abs(v).max() + 1)
            scrambled[key][name] = v
    return choose(scrambled, y, dev) == choose(step_scores, labels, dev)


# ---------------------------------------------------------------- section 0b: with a Gaussian ε, every S is PaDiM
def _spearman(a, b) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(np.asarray(a, dtype=float), np.asarray(b, dtype=float))[0])


def gaussian_every_s(z_train, z_test, steps, grid: str = "paper", eps: float = 0.01, gauss=None) -> dict:
    """Section 0b's check on a run's own features, for each S of `steps` that `grid` allows.

    PaDiM's Gaussian (per position: mean and covariance + eps I of z_train) whitens z_test with the kit's
    `--standardize whiten` (`fit_stats`): w = Σ^-1/2 (z - μ), whose norm is PaDiM's map M. In w the Gaussian is
    N(0, I), λ = 1 in every direction; its ε, a fresh `EpsGaussian` (the general formula, not `EpsStandard`'s
    one multiply), makes each DDIM step one multiplication, so x_T = g_S w with g_S = `step_gains` at λ = 1
    (notebook 05, section 4): row "whitened". `gauss` (row "run"): a Gaussian ε in z's own coordinates (the run's
    control when it is one), inverted on z_test and measured against its own Mahalanobis map; its λ need not all
    be 1 (the ridge; N < C), and where they differ so do the gains.

    Returns {"whitening_error": max |‖w‖ - M| / M, "lam": {row: (min, max) of λ}, "rows": {row: {S: numbers}}},
    numbers = gain (g_S at λ = 1), gains ((min, max) of `step_gains` over the model's λ), ratio (mean of norm map /
    Mahalanobis map over all positions and images), spread ((max - min) / mean of that ratio), rho_nll (Spearman
    of the images' NLL with ½ΣM², the ranking of the exact flow) and rho_max (Spearman of the map's maximum with
    M's maximum, PaDiM's image score)."""
    from adlib.models import EpsGaussian
    padim = PaDiM(eps).fit(z_train).map(z_test).double()
    w = standardize(z_test, fit_stats(z_train, "whiten", eps=eps))
    out = {"whitening_error": float(((w.double().norm(dim=1) - padim).abs() / padim).max()), "lam": {}, "rows": {}}
    models = {"whitened": (EpsGaussian(channels=w.shape[1], grid=w.shape[-1]), w, padim)}
    if gauss is not None:
        models["run"] = (gauss, z_test, gauss.mahalanobis_map(z_test).double())
    for name, (m, x, maha) in models.items():
        lam = m.eigval.double().flatten().cpu().numpy()
        out["lam"][name] = (float(lam.min()), float(lam.max()))
        out["rows"][name] = rows = {}
        for S in steps:
            try:
                points = make_grid(S, grid)
            except ValueError:
                continue
            x_T = invert(m, x, points)
            amap = scoring.norm_map(x_T).double()
            ratio, g = (amap / maha).flatten(), step_gains(lam, points)
            rows[S] = dict(gain=float(step_gains([1.0], points)[0]), gains=(float(g.min()), float(g.max())),
                           ratio=float(ratio.mean()), spread=float((ratio.max() - ratio.min()) / ratio.mean()),
                           rho_nll=_spearman(scoring.nll(x_T), maha.pow(2).flatten(1).sum(1)),
                           rho_max=_spearman(amap.flatten(1).max(1).values, maha.flatten(1).max(1).values))
    return out


def gaussian_every_s_markdown(check: dict) -> str:
    """`gaussian_every_s` as a table, one row per S: the whitened N(0, I) and, if measured, the run's Gaussian."""
    run = "run" in check["rows"]
    head = ("| S | g_S (λ = 1) | N(0, I) on PaDiM-whitened: map / M [(max − min) / mean] | ρ NLL · ρ max |"
            + (" the run's Gaussian: gains over its λ | map / its M [(max − min) / mean] | ρ NLL · ρ max |" if run else "")
            + "\n|---|---|---|---|" + ("---|---|---|" if run else "") + "\n")
    lines = []
    for S, r in check["rows"]["whitened"].items():
        line = f"| {S} | {r['gain']:.4f} | {r['ratio']:.4f} [{r['spread']:.0e}] | {r['rho_nll']:.4f} · {r['rho_max']:.4f} |"
        q = check["rows"].get("run", {}).get(S)
        if q:
            line += (f" {q['gains'][0]:.3f} … {q['gains'][1]:.3f} | {q['ratio']:.4f} [{q['spread']:.2f}] | "
                     f"{q['rho_nll']:.4f} · {q['rho_max']:.4f} |")
        lines.append(line)
    return head + "\n".join(lines)


# ---------------------------------------------------------------- what the S-curve can show
def eps_kind(model, control_kind: str, standardize: str) -> str:
    """'gaussian': a closed-form Gaussian ε (gaussian, standard) on whitened features: every ranking is PaDiM's at
    any S (section 0b; notebook 05, section 3); 'gaussian+residual': a trained residual over that Gaussian (its
    control, the zero residual, is the Gaussian); 'network': a trained ε-network, free to rank differently at each S."""
    from adlib.models.gaussian import EpsGaussian
    whitened = standardize in ("whiten", "auto")
    model = getattr(model, "wrapped", model)  # on a GPU the notebooks wrap the model (OnDevice)
    if control_kind == "itself" and isinstance(model, EpsGaussian):
        return "gaussian" if whitened else "network"
    if control_kind == "zero-residual" and whitened:
        return "gaussian+residual"
    return "network"


def change_word(c: dict) -> str:
    return {"higher": "rises", "lower": "falls", "tie": "stays level"}[c["verdict"]]


def trend_sentences(measured: dict, reconstruction: dict, labels, kind: str, model_name: str, rho_min: float) -> list:
    """The measured S-curves (score -> {S: AUROC}, all test images) against the paper's, each change judged by
    2 standard errors, and the verdict on the paper's trend that this ε-model allows (`eps_kind`)."""
    out, moves = [], {}
    values = [v for k in SCORE_LABELS for v in measured.get(k, {}).values()]
    ceiling = bool(values) and all(verdicts.compare_aurocs(v, 1.0, labels)["verdict"] == "tie" for v in values)
    if ceiling:
        out.append("Every measured AUROC is level with a perfect 1.000: this data is too easy to show how S matters "
                   "(`--profile cpu` on ELPV, or MVTec AD, can).")
    for k, label in SCORE_LABELS.items():
        common = sorted(set(PAPER_ABLATION[k]) & set(measured.get(k, {})))
        if len(common) < 2:
            continue
        a, b = common[0], common[-1]
        paper = "falls" if PAPER_ABLATION[k][b] < PAPER_ABLATION[k][a] else "rises"
        moves[k] = (paper, change_word(verdicts.compare_aurocs(measured[k][b], measured[k][a], labels)))
        out.append(f"{label}: from S={a} to S={b} the paper {paper} ({PAPER_ABLATION[k][a]:.1f} → "
                   f"{PAPER_ABLATION[k][b]:.1f} %); here it {moves[k][1]} ({verdicts.fmt_auroc(measured[k][a], labels)} "
                   f"→ {verdicts.fmt_auroc(measured[k][b], labels)}).")
    flat = all(m == "stays level" for _, m in moves.values())
    same = bool(moves) and all(p == m for p, m in moves.values())
    ranking = f"lowest Spearman ρ of the NLL ranking against the largest S: {rho_min:.3f}"
    if kind == "gaussian":
        out.append(f"Verdict: this run's ε ({model_name}) is a Gaussian on whitened features, so every S ranks the "
                   f"images like PaDiM (section 0b; {ranking}): this sweep **cannot show** the paper's "
                   f"trend, whatever its curve does.")
    elif kind == "gaussian+residual":
        out.append(f"Verdict: this run's ε ({model_name}) is a Gaussian on whitened features plus a trained residual; "
                   f"the Gaussian alone (its zero-residual control) ranks like PaDiM at every S (section 0b; "
                   f"{ranking}), so only the residual can move the curve. "
                   + ("It stays level for every score: the sweep shows the Gaussian's flat curve and **cannot show** "
                      "the paper's trend." if flat else
                      "It moves beyond 2 standard errors somewhere, the residual's doing: "
                      + ("the paper's direction for every score." if same else "not the paper's trend on every score.")))
    else:
        out.append(f"Verdict: this run's ε ({model_name}) is a trained network, free to rank differently at each S "
                   f"({ranking}), so the curves compare: "
                   + ("at the ceiling, though, nothing can be told apart." if ceiling else
                      "the paper's direction for every score." if same else
                      "not the paper's trend on every score (other data, other model size)."))
    s0 = min(set(measured.get("combined", {})) & set(PAPER_ABLATION["combined"]), default=None)
    if reconstruction and s0 is not None:
        k0 = min(reconstruction)
        c = verdicts.compare_aurocs(measured["combined"][s0], reconstruction[k0], labels)
        word = {"higher": "higher", "lower": "lower", "tie": "level"}[c["verdict"]]
        out.append(f"Reconstruction with K={k0} steps: {verdicts.fmt_auroc(reconstruction[k0], labels)} vs InvAD's "
                   f"combined {verdicts.fmt_auroc(measured['combined'][s0], labels)} at S={s0}: InvAD {word} (the "
                   f"paper: {PAPER_ABLATION['combined'][3]:.1f} vs {PAPER_RECONSTRUCTION[3]:.1f} % at S = K = 3).")
    return out


def ablation_markdown(measured: dict, steps, labels, where: str) -> str:
    """The paper's table (%) and the measured one (% ± one standard error) interleaved row by row."""
    head = "| score | source | " + " | ".join(f"S={s}" for s in steps) + " |\n|---|---|" + "---|" * len(steps) + "\n"
    rows = []
    for k, label in SCORE_LABELS.items():
        p, m = PAPER_ABLATION[k], measured.get(k, {})
        rows.append(f"| {label} | paper, MVTec AD | " + " | ".join("–" if s not in p else f"{p[s]:.1f}" for s in steps) + " |")
        rows.append(f"| {label} | {where} | " + " | ".join(
            "–" if s not in m else f"{100 * m[s]:.1f} ± {100 * verdicts.auroc_se(m[s], labels):.1f}" for s in steps) + " |")
    return head + "\n".join(rows) + "\n"


# ---------------------------------------------------------------- S = 1, as a question for this run
def one_step_question(auroc: dict, ref_S: int, labels, score: str) -> tuple:
    """(exercise 1's question, the comparison): S = 1 against S = ref_S on this run, worded by the verdict."""
    c = verdicts.compare_aurocs(auroc[1], auroc[ref_S], labels)
    head = (f"On this run ({score}, paper grid) S = 1 scores {verdicts.fmt_auroc(auroc[1], labels)} and S = {ref_S} "
            f"{verdicts.fmt_auroc(auroc[ref_S], labels)}")
    ask = {"tie": f": level within 2 standard errors. Why can one ε evaluation at t = 0 rank the images as well as "
                  f"{ref_S}? (What would a Gaussian ε on whitened features answer at t = 0?)",
           "lower": f": S = 1 is lower, beyond 2 standard errors. Why does a single step lose here?",
           "higher": f": S = 1 is higher, beyond 2 standard errors. What does the single step keep that more steps lose?"}
    return head + ask[c["verdict"]], c


def one_step_answer(c: dict, nums: dict, kind: str) -> str:
    """Exercise 1's answer for the verdict `c` of `one_step_question`, from `one_step_numbers` and the ε-model."""
    gauss = (f"A Gaussian ε on whitened features answers ε(z, 0) = {nums['noise_std']:.3f}·z exactly, so x_T = "
             f"({nums['c_z']:.4f} + {nums['c_eps']:.4f}·{nums['noise_std']:.3f})·z is a rescaled z and every ranking is "
             f"PaDiM's at any S (section 0b).")
    if c["verdict"] == "tie":
        if kind in ("gaussian", "gaussian+residual"):
            return gauss + (f" This run's ε is that Gaussian{' plus a trained residual' if kind != 'gaussian' else ''}: "
                            f"ε(z, 0) has median cosine {nums['eps_cos']:.2f} with z (1.00 = exactly the rescaled z), "
                            f"and the measured AUROCs are level.")
        return (f"This run's ε is a trained network, yet ε(z, 0) has median cosine {nums['eps_cos']:.2f} with z: "
                f"x_T keeps enough of z's ranking. " + gauss)
    if c["verdict"] == "lower":
        return (f"S = 1 loses here. At t = 0 the network was trained to find noise of std {nums['noise_std']:.3f}; its answer (median "
                f"cosine {nums['eps_cos']:.2f} with z) is {100 * nums['eps_share']:.0f} % of x_T and follows z badly. "
                f"More steps re-evaluate ε at noisier t, where it learned the normal features' shape.")
    return (f"The single step's x_T is mostly ε(z, 0) (median cosine {nums['eps_cos']:.2f} with z), a near-rescaled z: "
            f"more steps add the network's errors at noisier t.")


# ---------------------------------------------------------------- who won, every AUROC with its standard error
def method_sentences(chosen, control_prefix: str, control_kind: str, labels) -> list:
    """Which method won on the held-out half (each method's setting chosen on the development half), whether
    training beat its control, and PaDiM against the Gaussian inside InvAD: every AUROC with its standard
    error, every verdict by 2 standard errors of the difference."""
    from adlib.teach.viz.sweep_lessons import _best, _label
    fmt = lambda r: f"{_label(r)} {verdicts.fmt_auroc(r['image_auroc'], labels)}"  # noqa: E731
    trained = _best([r for r in chosen if not r["name"].startswith(control_prefix)], "invad")
    control = _best(chosen, control_prefix)
    others = [x for x in (_best(chosen, "padim"), _best(chosen, "knn"), _best(chosen, "reconstruction")) if x]
    ranked = sorted([x for x in (trained, control, *others) if x], key=lambda r: -r["image_auroc"])
    level = [r for r in ranked if verdicts.compare_aurocs(ranked[0]["image_auroc"], r["image_auroc"], labels)["verdict"] == "tie"]
    out = [(f"No clear winner: {', '.join(fmt(r) for r in level)} are within 2 standard errors of the best."
            if len(level) > 1 else f"{fmt(ranked[0])} wins: " + verdicts.sentence(
                _label(ranked[0]), ranked[0]["image_auroc"], _label(ranked[1]), ranked[1]["image_auroc"], labels) + ".")]
    if trained is not None and control is not None and control_kind != "itself":
        what = ("its Gaussian base alone (the residual set to zero)" if control_kind == "zero-residual"
                else "the untrained network")
        out.append(f"Against its control, {what}: " + verdicts.sentence(
            _label(trained), trained["image_auroc"], _label(control), control["image_auroc"], labels) + ".")
    elif control_kind == "itself":
        out.append("This model is a closed-form Gaussian ε with nothing trained: it is its own control.")
    padim = next((x for x in others if x["name"] == "padim"), None)
    gauss = trained if control_kind == "itself" else control if control_kind == "zero-residual" else None
    if padim is not None and gauss is not None:
        out.append("PaDiM against the Gaussian inside InvAD (the same per-position Gaussian; PaDiM takes the map's "
                   "largest distance, exactly): " + verdicts.sentence(
                       "padim", padim["image_auroc"], _label(gauss), gauss["image_auroc"], labels) + ".")
    return out


# ---------------------------------------------------------------- figures with their uncertainty
def with_error_bars(fig, labels, scale: float = 1.0, only: str = None):
    """Each AUROC point of a figure (in units of 1/scale: 100 for %) gets ± one Hanley-McNeil standard error;
    `only`: the traces whose name contains it (e.g. "measured", not the paper's)."""
    for tr in fig.data:
        ys = [] if tr.y is None else [v / scale for v in tr.y]
        if ys and all(0 <= v <= 1 for v in ys) and (only is None or only in (tr.name or "")):
            tr.error_y = dict(type="data", array=[scale * verdicts.auroc_se(v, labels) for v in ys], visible=True)
    return fig


class StepExplorerSE(StepExplorer):
    """`StepExplorer` whose title prints the AUROC with its standard error."""

    def figure_for(self, steps: int, score: str, grid: str):
        fig, numbers = super().figure_for(steps, score, grid)
        if numbers is not None:
            a = numbers["auroc"]
            fig.update_layout(title=fig.layout.title.text.replace(
                f"AUROC {a:.3f}", f"AUROC {verdicts.fmt_auroc(a, self.labels)}"))
        return fig, numbers

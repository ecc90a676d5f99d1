"""Notebook 04's computed lessons and its S explorer (adlib.teach.viz.sweep_lessons)."""
import numpy as np
import pytest
import torch

from adlib.schedule import ABAR
from adlib.teach.viz import sweep_lessons as sl


class Linear(torch.nn.Module):
    """eps(x, t) = k x: the closed-form Gaussian eps on whitened features has this form at each t."""

    def __init__(self, k=0.01):
        super().__init__()
        self.k = k

    def forward(self, x, t):
        return self.k * x


def test_one_step_numbers_are_the_library_inversion():
    z = torch.randn(6, 4, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    n = sl.one_step_numbers(Linear(0.01), z, "paper")
    assert (n["t_from"], n["t_to"]) == (0, 999) and n["max_error"] < 1e-12
    a0, aT = ABAR[0].item(), ABAR[999].item()
    assert n["c_z"] == pytest.approx((aT / a0) ** 0.5) and n["noise_std"] == pytest.approx(0.01, rel=1e-3)
    assert n["eps_norm"] == pytest.approx(0.01 * n["z_norm"], rel=1e-6) and n["eps_cos"] == pytest.approx(1.0)
    ref = sl.one_step_numbers(Linear(0.01), z, "reference")
    assert ref["t_to"] == 1000 and ref["c_z"] == 0 and ref["eps_share"] == pytest.approx(1.0)  # abar_T = 0: x_T = eps


def test_one_step_sentences_follow_the_numbers():
    n = sl.one_step_numbers(Linear(), torch.randn(4, 3, 2, 2), "paper")
    collapsed = " ".join(sl.one_step_sentences(n, {1: 0.55, 3: 0.9, 10: 0.85}))
    assert "collapses" in collapsed and "S = 3" in collapsed
    kept = " ".join(sl.one_step_sentences(n, {1: 0.89, 3: 0.9}))
    assert "does *not* collapse" in kept and "nearly a multiple of z here (median cosine 1.00)" in kept
    other = " ".join(sl.one_step_sentences(dict(n, eps_cos=0.3), {1: 0.89, 3: 0.9}))
    assert "not a multiple of z (median cosine 0.30)" in other


def test_plateau_step():
    assert sl.plateau_step({1: 0.5, 2: 0.8, 3: 0.9, 5: 0.902, 10: 0.85}) == 3
    assert sl.plateau_step({1: 0.5, 2: 0.6, 3: 0.7}) == 3
    assert sl.plateau_step({1: 0.9, 2: 0.8}) == 1


def test_threshold_at_fpr_flags_at_most_that_share_of_normals():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0, 1, 500), rng.normal(3, 1, 100)]
    labels = np.r_[np.zeros(500), np.ones(100)].astype(int)
    t = sl.threshold_at_fpr(scores, labels, 0.01)
    assert t["fpr"] <= 0.01 and t["fpr"] == pytest.approx(0.01)  # 5 of 500 above
    assert t["tpr"] == pytest.approx((scores[labels == 1] > t["threshold"]).mean())
    assert sl.threshold_at_fpr(scores[:10], labels[:10], 0.01)["fpr"] == 0  # 10 normals: none may pass


def test_head_speed_needed():
    assert sl.head_speed_needed(10.0, 0.9) == pytest.approx(90.0)
    assert 1 / (1 / 10.0 + 1 / 90.0) == pytest.approx(9.0)
    assert sl.head_speed_needed(10.0, 1.0) == float("inf")


ROWS = [dict(name="invad S=3", score="combined", image_auroc=0.80), dict(name="invad S=1", score="nll", image_auroc=0.6),
        dict(name="invad zero-residual S=3", score="combined", image_auroc=0.78),
        dict(name="padim", image_auroc=0.88), dict(name="knn", image_auroc=0.86),
        dict(name="reconstruction r=0.3 K=3", image_auroc=0.6)]


def test_method_sentences_say_who_won_and_what_training_added():
    s = " ".join(sl.method_sentences(ROWS, "invad zero-residual", "zero-residual"))
    assert "padim wins with image AUROC 0.880, +0.020 over the runner-up (knn, 0.860)" in s
    assert "invad S=3 (combined), reaches 0.800: -0.080 against the best method" in s
    assert "training added +0.020" in s and "PaDiM is +0.100 against it" in s
    rows = [dict(r, image_auroc=0.95) if r["name"] == "invad S=3" else r for r in ROWS]
    s = " ".join(sl.method_sentences(rows, "invad zero-residual", "zero-residual"))
    assert s.startswith("invad S=3 (combined) wins") and "training added +0.170" in s
    rows = [dict(r, image_auroc=0.953) if r["name"] in ("knn", "invad S=3") else r for r in ROWS]
    s = " ".join(sl.method_sentences([dict(r, image_auroc=0.954) if r["name"] == "padim" else r for r in rows],
                                     "invad zero-residual", "zero-residual"))
    assert s.startswith("No clear winner: padim 0.954, ") and "knn 0.953" in s and "best trained" not in s
    rows = [dict(r, name=r["name"].replace("zero-residual", "untrained")) for r in ROWS]
    s = " ".join(sl.method_sentences([dict(r, image_auroc=0.9) if "untrained" in r["name"] else r for r in rows],
                                     "invad untrained", "untrained"))
    assert "training lost -0.100" in s and "ε = 0" in s and "PaDiM is" not in s


def test_step_explorer_callback():
    rng = np.random.default_rng(1)
    labels = np.r_[np.zeros(40), np.ones(20)].astype(int)
    good = np.r_[rng.normal(0, 1, 40), rng.normal(4, 1, 20)]
    scores = {("paper", 1): {"combined": rng.normal(0, 1, 60)}, ("paper", 3): {"combined": good},
              ("reference", 3): {"combined": good}}
    ex = sl.StepExplorer(scores, labels, steps=1)
    assert ex.numbers["auroc"] < 0.75 and "S = 1, paper grid" in ex.figure.layout.title.text
    ex.steps.value = 3  # the widget's observer calls update
    assert ex.numbers["auroc"] > 0.95 and "ε at t = 0, 333, 666 → lands on 999" in ex.figure.layout.title.text
    assert ex.out.outputs and "application/vnd.plotly.v1+json" in ex.out.outputs[0]["data"]
    fig, nums = ex.figure_for(1, "combined", "reference")
    assert nums is None and "not run" in fig.layout.title.text


def test_speeds_follow_one_formula_from_the_medians_shown():
    """Issue 22: the table's images/s and x backbone are 1/(1/B + 1/H) of the medians it prints, spread shown."""
    seconds = {"backbone": [2.0, 2.2, 1.9, 3.0], "cheap": [0.1, 0.12, 0.1, 0.5], "slow": [2.0, 2.0, 2.1, 1.9]}
    rows, back = sl.speed_from_seconds(seconds, 16)
    B = back["images_per_second"]
    assert B == pytest.approx(16 / np.median(seconds["backbone"])) and back["spread"] > 0 and back["rounds"] == 4
    for name, r in rows.items():
        H = r["head_images_per_second"]
        assert r["images_per_second"] == pytest.approx(1 / (1 / B + 1 / H))
        assert r["backbone_ratio"] == pytest.approx(r["images_per_second"] / B) and r["backbone_ratio"] < 1
        assert r["head_ms_per_image"] == pytest.approx(1e3 / H)
    assert rows["cheap"]["backbone_ratio"] > rows["slow"]["backbone_ratio"]
    assert rows["cheap"]["head_spread"] > rows["slow"]["head_spread"]


def test_design_chosen_on_the_development_half_reported_on_the_other():
    from adlib.data.datasets import Sample
    test = [Sample(f"n{i}.png", 0) for i in range(20)] + [Sample(f"a{i}.png", 1) for i in range(10)]
    dev = sl.dev_mask(test)
    labels = np.array([s.label for s in test])
    assert dev.sum() == 15 and labels[dev].sum() == 5 and labels[~dev].sum() == 5   # each class halved
    rows = [dict(name="invad S=1", dev_auroc=0.9, held_auroc=0.7, image_auroc=0.8),
            dict(name="invad S=3", dev_auroc=0.8, held_auroc=0.95, image_auroc=0.87),
            dict(name="invad zero-residual S=3", dev_auroc=0.7, held_auroc=0.7, image_auroc=0.7),
            dict(name="padim", dev_auroc=0.85, held_auroc=0.86, image_auroc=0.85)]
    chosen = {r["name"]: r for r in sl.choose_on_dev(rows, "invad zero-residual")}
    assert set(chosen) == {"invad S=1", "invad zero-residual S=3", "padim"}   # S=1 won on dev, not S=3 on held-out
    assert chosen["invad S=1"]["image_auroc"] == 0.7 and chosen["invad S=1"]["all_auroc"] == 0.8
    v = np.r_[np.zeros(20), np.ones(10)]
    assert sl.half_aurocs(v, labels, dev) == (1.0, 1.0)


def test_ties_follow_standard_errors_when_labels_are_given():
    labels = np.r_[np.zeros(118), np.ones(313)]
    assert sl.plateau_step({1: 0.940, 3: 0.948, 10: 0.954}, labels=labels) == 1       # all within 2 se
    assert sl.plateau_step({1: 0.940, 3: 0.948, 10: 0.954}) == 10                     # the old fixed 0.005 calls 0.006 a gain
    assert sl.plateau_step({1: 0.70, 3: 0.95, 10: 0.954}, labels=labels) == 3
    s = " ".join(sl.method_sentences(ROWS, "invad zero-residual", "zero-residual", labels=np.r_[np.zeros(10), np.ones(10)]))
    assert "No clear winner" in s and "±" in s and "standard errors" in s
    n = dict(t_from=0, t_to=999, abar_from=0.9999, abar_to=4e-5, c_z=0.006, c_eps=1.0, noise_std=0.01, eps_norm=0.01,
             z_norm=1.0, eps_share=0.99, eps_cos=0.99, max_error=0.0)
    assert "does *not* collapse" in " ".join(sl.one_step_sentences(n, {1: 0.948, 3: 0.954}, labels=labels))
    assert "single step loses" in " ".join(sl.one_step_sentences(n, {1: 0.70, 3: 0.954}, labels=labels))

"""Notebook 01's lessons as package functions: the exact reverse-scoring AUROC (F distribution) against Monte
Carlo for several d, the chi moments, and the shell paradox's typicality score with its data-dependent sentences.
Also: notebook 01's reverse-scoring check follows the formula for the D it is run with (at D = 16 a fixed
'AUROC < 0.1' failed)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from adlib.teach.viz import prior_figure, sample_norms, shell, theory

NB = Path(__file__).resolve().parents[1] / "notebooks" / "01_prior_density.ipynb"


@pytest.mark.parametrize("d", [16, 64, 192, 1024])
@pytest.mark.parametrize("shift, scale", [(0.0, 0.9), (0.0, 1.1), (0.05, 1.0), (0.1, 0.95)])
def test_nll_auroc_formula_matches_monte_carlo(d, shift, scale):
    n = 3000
    normal = sample_norms(d, n, 0.0, 1.0, seed=1)
    odd = sample_norms(d, n, shift, scale, seed=2)
    labels = np.r_[np.zeros(n), np.ones(n)]
    measured = theory._auroc(labels, np.r_[normal, odd])
    predicted = theory.nll_auroc_theory(d, shift, scale)
    assert abs(measured - predicted) <= 4 * theory.auroc_standard_error(predicted, n, n) + 1e-3


def test_nll_auroc_formula_limits_and_direction():
    assert theory.nll_auroc_theory(50, 0.0, 1.0) == pytest.approx(0.5)
    assert theory.nll_auroc_theory(16, 0.0, 0.9) == pytest.approx(stats.f(16, 16).cdf(0.81))
    for scale in (0.9, 1.1):  # farther from 0.5 as d grows, on the side of the scale
        a = [theory.nll_auroc_theory(d, 0.0, scale) for d in (4, 16, 64, 256, 1024)]
        assert all(abs(x - 0.5) < abs(y - 0.5) for x, y in zip(a, a[1:]))
        assert all((x < 0.5) == (scale < 1) for x in a)


def test_old_fixed_threshold_failed_at_d16_and_the_dimension_where_it_holds():
    """The notebook used to assert AUROC < 0.1 (scale 0.9) and > 0.9 (scale 1.1) at any D: false below d = 149 / 182."""
    assert theory.nll_auroc_theory(16, 0.0, 0.9) > 0.1 and theory.nll_auroc_theory(16, 0.0, 1.1) < 0.9
    d_rev = theory.dimension_for_auroc(0.1, 0.9)
    assert theory.nll_auroc_theory(d_rev, 0.0, 0.9) <= 0.1 < theory.nll_auroc_theory(d_rev - 1, 0.0, 0.9)
    d_fwd = theory.dimension_for_auroc(0.9, 1.1)
    assert theory.nll_auroc_theory(d_fwd, 0.0, 1.1) >= 0.9 > theory.nll_auroc_theory(d_fwd - 1, 0.0, 1.1)
    assert (d_rev, d_fwd) == (149, 182)
    with pytest.raises(ValueError):
        theory.dimension_for_auroc(0.1, 0.9, d_max=100)


def test_auroc_standard_error_matches_repeated_experiments():
    d, n, scale = 16, 150, 0.9
    labels = np.r_[np.zeros(n), np.ones(n)]
    aurocs = [theory._auroc(labels, np.r_[sample_norms(d, n, seed=2 * k), sample_norms(d, n, 0.0, scale, 2 * k + 1)])
              for k in range(200)]
    se = theory.auroc_standard_error(theory.nll_auroc_theory(d, 0.0, scale), n, n)
    assert 0.75 * se < np.std(aurocs) < 1.25 * se
    assert theory.auroc_standard_error(0.3, 40, 60) == pytest.approx(theory.auroc_standard_error(0.7, 60, 40))


@pytest.mark.parametrize("d", [1, 2, 16, 192, 3072])
def test_chi_moments_match_scipy(d):
    assert theory.chi_mean(d) == pytest.approx(stats.chi(d).mean(), rel=1e-10)
    assert theory.chi_sd(d) == pytest.approx(stats.chi(d).std(), rel=1e-6)
    assert theory.chi_mean(d) < math.sqrt(d)


def _latents(ratios, d=256, seed=0):
    """Latents of exactly the given ||x|| / sqrt(d), random directions."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((len(ratios), d))
    return x / np.linalg.norm(x, axis=1, keepdims=True) * (np.asarray(ratios)[:, None] * math.sqrt(d))


def test_typicality_is_the_distance_from_the_shell():
    x = _latents([0.3, 1.0, 2.0], d=100)
    assert np.allclose(shell.norm_ratio(x), [0.3, 1.0, 2.0])
    assert np.allclose(shell.typicality(x), [7.0, 0.0, 10.0])
    assert np.allclose(shell.typicality(x, radius=0.0), [3.0, 10.0, 20.0])
    import torch
    assert np.allclose(shell.typicality(torch.from_numpy(x.reshape(3, 4, 5, 5))), [7.0, 0.0, 10.0])


def test_shell_paradox_inside_the_shell_ranks_typicality_backwards():
    """The issue's case: normal images at ~0.29 sqrt(d), anomalous ones at ~0.46 sqrt(d)."""
    g = np.random.default_rng(0)
    ratios = np.r_[0.29 + 0.02 * g.standard_normal(40), 0.46 + 0.05 * g.standard_normal(20)]
    labels = np.r_[np.zeros(40), np.ones(20)]
    s = shell.shell_summary(_latents(ratios), labels)
    assert s["auroc_nll"] > 0.95 and s["auroc_typicality"] < 0.05
    assert s["ratio_normal"] == pytest.approx(0.29, abs=0.02)
    text = " ".join(shell.shell_sentences(s, train_ratio=0.3))
    assert "BACKWARDS" in text and "inside the shell" in text and "distance from the origin" in text
    assert "does not carry normal features onto the prior's typical set" in text
    assert "about as far out" in text
    wider = " ".join(shell.shell_sentences(s, train_ratio=0.29 / 1.4))   # 1.4x is not 'about as far out'
    assert "about as far" not in wider and "1.4× as far from the origin" in wider
    curve = shell.typicality_curve(_latents(ratios), labels, [0.0, math.sqrt(256)])
    assert curve[0] == pytest.approx(s["auroc_nll"]) and curve[1] == pytest.approx(s["auroc_typicality"])


def test_shell_sentences_follow_the_numbers_in_other_cases():
    labels = np.r_[np.zeros(30), np.ones(30)]
    g = np.random.default_rng(1)
    outside = shell.shell_summary(_latents(np.r_[3 + 0.1 * g.random(30), 8 + g.random(30)]), labels)
    text = " ".join(shell.shell_sentences(outside, train_ratio=0.3))
    assert outside["auroc_typicality"] > 0.95 and "does not rank backwards" in text and "outside the shell" in text
    assert "not where the training images go" in text
    on = shell.shell_summary(_latents(np.r_[1 + 0.01 * g.standard_normal(30), 1.5 + 0.1 * g.random(30)]), labels)
    text = " ".join(shell.shell_sentences(on))
    assert "BACKWARDS" not in text and "land near the shell" in text
    reverse = shell.shell_summary(_latents(np.r_[1 + 0.01 * g.standard_normal(30), 0.5 + 0.1 * g.random(30)]), labels)
    text = " ".join(shell.shell_sentences(reverse))
    assert reverse["auroc_nll"] < 0.05 and "The NLL ranks them backwards" in text and "right way" in text


def test_input_sentence():
    assert "about as far out" in shell.input_sentence(0.4, 0.42, "whiten", 36, 192)
    assert "1.2× as far out" in shell.input_sentence(0.4, 0.5, "whiten", 36, 192)   # the wording follows the ratio
    assert "about as far" not in shell.input_sentence(0.41, 0.58, "whiten", 36, 192)
    far = shell.input_sentence(0.42, 10.7, "whiten", 36, 192)
    assert "25.5× farther out" in far and "36 training images in 192 channels" in far
    assert "channels" not in shell.input_sentence(1.0, 5.0, "whiten", 500, 192)


def test_shell_figure_switches_to_a_log_axis():
    assert shell.shell_figure({"normal": [0.3, 0.4], "anomalous": [0.5]}).layout.xaxis.type == "linear"
    assert shell.shell_figure({"normal": [0.3, 36.0], "anomalous": [100.0]}).layout.xaxis.type == "log"


def _cells():
    return [("".join(c["source"]), c) for c in json.loads(NB.read_text())["cells"] if c["cell_type"] == "code"]


def test_notebook_reverse_scoring_check_follows_the_formula_at_d16(monkeypatch):
    """Run notebook 01's parameters, imports and section-3 check cells with D = 16. The old cell asserted
    AUROC < 0.1 whatever D (true only from d = 149): it failed here; the check now compares with the formula."""
    import plotly.graph_objects as go
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: None)
    cells = _cells()
    params = next(src for src, c in cells if "parameters" in c["metadata"].get("tags", []))
    imports = next(src for src, _ in cells if "import adlib.teach.notebooks as nbk" in src)
    check = next(src for src, _ in cells if "prior_figure(D" in src)
    ns = {}
    exec(params, ns)
    ns.update(D=16, N=1000)
    exec(imports, ns)
    exec(check, ns)  # raises AssertionError with the old fixed thresholds
    assert 0.1 < ns["inside"]["auroc_nll"] < 0.5
    assert ns["predicted"][0.9] == pytest.approx(theory.nll_auroc_theory(16, 0.0, 0.9))


def test_prior_figure_agrees_with_the_formula():
    _, numbers = prior_figure(64, 0.0, 0.9, n=2000, seed=0)
    p = theory.nll_auroc_theory(64, 0.0, 0.9)
    assert abs(numbers["auroc_nll"] - p) <= 4 * theory.auroc_standard_error(p, 2000, 2000)


def test_shell_sentences_when_normals_are_inside_and_anomalies_cross_the_shell():
    """The cpu profile's case (ELPV, smoke run): normal images at ~0.58 sqrt(d), anomalies spread across the shell."""
    g = np.random.default_rng(2)
    ratios = np.r_[0.58 + 0.05 * g.standard_normal(100), g.uniform(0.7, 1.8, 100)]
    labels = np.r_[np.zeros(100), np.ones(100)]
    s = shell.shell_summary(_latents(ratios), labels)
    assert s["auroc_nll"] > 0.95 and 0.3 < s["auroc_typicality"] < 0.5 and s["anomalous_nearer"] > 0.5
    text = " ".join(shell.shell_sentences(s, train_ratio=0.41))
    assert "BACKWARDS" in text and "cross it" in text and "distance from the origin" in text
    assert f"{s['anomalous_nearer']:.0%} of the anomalous images" in text

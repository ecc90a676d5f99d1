"""Notebook 01 (issue 22): where new normal latents land against the training images is stated as a ratio and
judged by standard errors (never 'about as far out' for 1.4×), and every real-data AUROC carries its standard
error (adlib.teach.verdicts)."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from adlib.teach import verdicts
from adlib.teach.viz import nb01_shell, shell

NB = Path(__file__).resolve().parents[1] / "notebooks" / "01_prior_density.ipynb"


def _teacher_case(seed=0):
    """The graded cpu run: 64 training images at ~0.41·√d, ~100 normal test images at ~0.58·√d (1.4×)."""
    g = np.random.default_rng(seed)
    return 0.41 + 0.04 * g.standard_normal(64), 0.58 + 0.06 * g.standard_normal(100)


def _old_sentences(train_ratio, rn):
    """The wordings the check must reject: before issue 22 (a factor-2 tolerance called 1.4× 'about as far out')
    and shell.shell_sentences' current one (a rounded '1.4×' and 'though within a factor 2')."""
    k = rn / train_ratio
    before = (f"The model's own training images land at {train_ratio:.2f}·√d: "
              + ("normal test images land about as far out, so the model treats them like its training data."
                 if abs(math.log(k)) < math.log(2) else "normal test images are not where the training images go."))
    current = (f"normal test images land {k:.1f}× as far from the origin ({rn:.2f}·√d): farther out than the "
               "training images, though within a factor 2.")
    return before, current


def test_a_1_4x_ratio_is_stated_and_judged_farther_out():
    train, test = _teacher_case()
    c = nb01_shell.compare_ratios(train, test)
    assert c["verdict"] == "higher" and 1.3 < c["ratio"] < 1.5
    text = nb01_shell.latent_sentence(c)
    assert f"{c['ratio']:.2f}×" in text and "farther out" in text and "±" in text and "about as far" not in text
    nb01_shell.check_ratio_sentence(text, c)
    for old in _old_sentences(c["train"], c["test"]):
        with pytest.raises(AssertionError):
            nb01_shell.check_ratio_sentence(old, c)


def test_the_same_distribution_is_level_and_says_so():
    g = np.random.default_rng(1)
    c = nb01_shell.compare_ratios(0.5 + 0.05 * g.standard_normal(64), 0.5 + 0.05 * g.standard_normal(100))
    assert c["verdict"] == "tie"
    text = nb01_shell.latent_sentence(c)
    assert "level" in text and f"{c['ratio']:.2f}×" in text
    nb01_shell.check_ratio_sentence(text, c)
    with pytest.raises(AssertionError):   # a verdict the standard error does not support
        nb01_shell.check_ratio_sentence(text.replace("level", "farther out"), c)


def test_input_sentence_names_the_whitening_rank_only_when_it_applies():
    train, test = _teacher_case()
    c = nb01_shell.compare_ratios(train, test)
    assert "36 training images in 192 channels" in nb01_shell.input_sentence(c, "whiten", 36, 192)
    assert "channels" not in nb01_shell.input_sentence(c, "auto", 36, 192)
    nb01_shell.check_ratio_sentence(nb01_shell.input_sentence(c, "whiten", 36, 192), c)


def test_shell_sentences_give_every_auroc_its_standard_error():
    g = np.random.default_rng(2)
    ratios = np.r_[0.58 + 0.05 * g.standard_normal(100), g.uniform(0.7, 1.8, 100)]
    labels = np.r_[np.zeros(100), np.ones(100)]
    d = 256
    x = np.stack([r * math.sqrt(d) * v / np.linalg.norm(v) for r, v in zip(ratios, g.standard_normal((200, d)))])
    s = shell.shell_summary(x, labels)
    text = " ".join(nb01_shell.shell_sentences(s, labels))
    assert verdicts.fmt_auroc(s["auroc_nll"], labels) in text and verdicts.fmt_auroc(s["auroc_typicality"], labels) in text
    assert "BACKWARDS" in text and "inside the shell" in text
    assert nb01_shell.where(1.0 + 1 / math.sqrt(2 * d), d) == "on" and nb01_shell.where(0.8, d) == "inside" and nb01_shell.where(0.9, 12288) == "inside"


def _code_cells():
    return ["".join(c["source"]) for c in json.loads(NB.read_text())["cells"] if c["cell_type"] == "code"]


def test_notebook_checks_its_ratio_sentences_and_prints_real_aurocs_with_standard_errors():
    code = _code_cells()
    joined = "\n".join(code)
    assert "nb01_shell.check_ratio_sentence(" in joined and "shell_sentences(summary, train_ratio)" not in joined
    start = next(i for i, c in enumerate(code) if "run.invert(z_test)" in c)   # section 5: real data from here
    real = [c for c in code[start:] if not re.match(r"# [1-4]\.", c)]   # answers 1-4 are synthetic
    raw = [m for c in real for m in re.findall(r"\{([^{}]*auroc[^{}]*|curve\[[^{}]*\]|a_train):\.3f\}", c, re.I)
           if "local" not in m and "measured" not in m]
    assert not raw, f"real-data AUROCs printed without a standard error: {raw}"

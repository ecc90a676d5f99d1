"""Notebook 03 (issue 22): one vocabulary for its baselines (the *control* is `control_model`'s, eps = 0 is the
*zero ε*), reconstruction's t_r = r (T - 1) as `adlib.evaluation.baselines` computes it, and the one-image
comparison judged by standard errors, not a fixed 2 % cut-off."""
import json
import re
from pathlib import Path

import numpy as np
import torch

from adlib.models import build_model
from adlib.models.controls import ZeroEps
from adlib.schedule import T
from adlib.teach.viz import nb03_lessons as nb03

NB = Path(__file__).resolve().parents[1] / "notebooks" / "03_visualize_latents.ipynb"


def _cells():
    return json.loads(NB.read_text())["cells"]


def _src(c):
    return "".join(c["source"])


def test_the_control_is_control_models_and_the_zero_eps_only_when_it_outputs_zero():
    z = torch.randn(20, 6, 4, 4) * 2 + 1
    res = build_model("gaussian+conv", 6, 4, residual_kwargs=dict(hidden=8, depth=1)).fit_base(z)
    c = nb03.control_vs_zero_eps(res, z[:3])
    assert c["name"] == "zero-residual" and c["control"] is res.base and not c["is_zero_eps"]
    assert "not this run's control" in c["sentence"]
    mlp = nb03.control_vs_zero_eps(build_model("mlp", 6, 4, hidden=8, depth=1), z[:3])
    assert mlp["name"] == "untrained" and mlp["is_zero_eps"] and "*is* the zero ε" in mlp["sentence"]


def test_a_device_wrapper_is_unwrapped_before_asking_for_the_control():
    res = build_model("gaussian+conv", 6, 4, residual_kwargs=dict(hidden=8, depth=1))

    from adlib.teach.notebooks.device import OnDevice   # what on_device wraps a model in for a GPU
    assert nb03.unwrap(OnDevice(res, "cpu")) is res and nb03.unwrap(res) is res
    assert nb03.control_vs_zero_eps(OnDevice(res, "cpu"), torch.randn(2, 6, 4, 4))["name"] == "zero-residual"


def test_t_r_is_r_times_T_minus_1_as_the_baseline_computes_it():
    z = torch.randn(1, 3, 2, 2)
    for r in (0.002, 0.1, 0.3, 0.7, 1.0):
        assert nb03.reconstruction_start(ZeroEps(), z, r, 10) == max(1, round(r * (T - 1)))
    assert nb03.reconstruction_start(ZeroEps(), z, 0.7, 10) != round(0.7 * T)   # 699, not 700


def test_side_sentence_uses_standard_errors_not_a_fixed_cutoff():
    mask = np.zeros((32, 32))
    mask[:8, :8] = 1                                     # 4 of 16 cells at grid 4
    base = {"nfe_reconstruction": 10, "nfe_invad": 3, "r": 0.3, "k": 10, "steps": 3, "t_r": 300,
            "invad": torch.zeros(4, 4), "contrast_kind": "auroc"}
    close = nb03.side_sentence({**base, "contrast_invad": 0.90, "contrast_reconstruction": 0.85}, mask)
    assert "level" in close and "±" in close           # 0.05 apart on 16 cells: noise, not a 2 % win
    far = nb03.side_sentence({**base, "contrast_invad": 1.0, "contrast_reconstruction": 0.2}, mask)
    assert "is higher" in far
    peak = nb03.side_sentence({**base, "contrast_kind": "peak", "contrast_invad": 3.0,
                               "contrast_reconstruction": 2.0})
    assert "no verdict" in peak and "3.33× fewer" in peak


# ---- the notebook's text and checks (each fails on the notebook before issue 22's fixes)

EPS_ZERO_AS_CONTROL = re.compile(r"untrained control|control[:\s]*(ε|eps|\\epsilon(_\\theta)?)\s*=\s*0|"
                                 r"control: eps|control that (notebooks )?04 and 05", re.I)


def test_eps_zero_is_never_called_the_control():
    bad = [line for c in _cells() for line in _src(c).splitlines() if EPS_ZERO_AS_CONTROL.search(line)]
    assert not bad, f"eps = 0 is 'the zero ε', the control is control_model's: {bad}"
    head = _src(_cells()[0])
    assert "**control**" in head and "**zero ε**" in head and "control_model" in head, "the glossary defines both"
    code = "\n".join(_src(c) for c in _cells() if c["cell_type"] == "code")
    assert 'ctl["name"] == control_model(unwrap(run.model), run.cfg.seed)[0]' in code


def test_t_r_is_written_r_times_T_minus_1_and_checked_against_the_code():
    md = "\n".join(_src(c) for c in _cells() if c["cell_type"] == "markdown")
    defs = re.findall(r"t_r\s*=\s*([^$]{0,24})", md)
    assert defs and all(d.startswith((r"r\,(T-1)", r"\mathrm{round}(")) for d in defs), defs
    assert "999" in re.search(r"\\mathrm\{round\}\(([^)]*)\)", md).group(1)
    code = "\n".join(_src(c) for c in _cells() if c["cell_type"] == "code")
    assert "reconstruction_start(" in code and "max(1, round(SIDE_R * (T - 1)))" in code


def test_the_one_image_verdict_and_image_aurocs_come_with_standard_errors():
    code = "\n".join(_src(c) for c in _cells() if c["cell_type"] == "code")
    assert "il.side_by_side_sentence(" not in code and "side_sentence(first" in code   # no fixed 2 % tie
    assert "verdicts.level_with_best(aurocs, labels)" in code and "({aurocs[best]:.3f})" not in code


def test_the_write_the_core_step_is_an_exercise_not_a_duplicate_in_section_3():
    cells = _cells()
    ex = next(i for i, c in enumerate(cells) if _src(c).startswith("## Exercises"))
    lessons = "\n".join(_src(c) for c in cells[:ex] if c["cell_type"] == "code")
    assert "x0_hat" not in lessons, "the step by hand lives in the exercise's answer only"
    answer = next(_src(c) for c in cells[ex:] if _src(c).startswith("# 4.") and "def invert_step" in _src(c))
    assert 'make_grid(3, g_)' in answer and '("paper", "reference")' in answer and "rtol=1e-4" in answer

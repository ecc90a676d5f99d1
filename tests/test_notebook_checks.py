"""Quality gates warn on a student's data (and fail under ADLIB_STRICT_GATES=1, as in CI); DATA from
another dataset than RUN_DIR's is refused in one line instead of scored with the wrong calibration."""
import json
import re
from pathlib import Path

import pytest

from adlib.errors import AdlibError
import adlib.teach.notebooks as nbk

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_a_missed_gate_warns_and_goes_on(monkeypatch):
    monkeypatch.delenv(nbk.checks.STRICT_ENV, raising=False)
    with pytest.warns(nbk.QualityWarning, match="MIN_AUROC = 0.9"):
        assert nbk.quality_gate("best image AUROC", 0.6, 0.9) is False
    assert nbk.quality_gate("best image AUROC", 0.95, 0.9) is True
    assert nbk.quality_gate("best image AUROC", 0.1, None) is True


def test_a_missed_gate_fails_under_strict(monkeypatch):
    monkeypatch.setenv(nbk.checks.STRICT_ENV, "1")
    with pytest.raises(AssertionError, match="ADLIB_STRICT_GATES"):
        nbk.quality_gate("best image AUROC", 0.6, 0.9)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_asserts_a_quality_gate(path):
    """MIN_* gates go through nbk.quality_gate; a bare `assert ... >= MIN_AUROC` stops a student's notebook."""
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert not re.search(r"assert[^\n]*MIN_[A-Z_]*AUROC", code), f"{path.name}: a bare assert on a MIN_*AUROC gate"


@pytest.mark.parametrize("spec, trained_on, same", [
    ("elpv:mono", "elpv:mono", True),
    ("elpv:poly:dev", "elpv:poly", True),
    ("elpv:poly:test", "elpv:poly:dev", True),
    ("elpv:mono", "elpv:poly", False),
    ("elpv:all", "elpv:mono", False),
    ("/data/mvtec/bottle", "mvtec:/data/mvtec/bottle", True),
    ("mvtec:/data/mvtec/bottle", "mvtec-root:/data/mvtec", True),
    ("mvtec:/data/mvtec/bottle", "mvtec:/data/mvtec/cable", False),
    ("elpv:mono", "mvtec:/data/mvtec/cable", False),
])
def test_same_data(spec, trained_on, same):
    assert nbk.same_data(spec, trained_on) is same


def test_open_run_refuses_data_from_another_dataset(tmp_path, monkeypatch):
    class FakeRun:  # open_run reads only the run's path and its training data
        def __init__(self, path, weights="ema"):
            self.path = Path(path)
            self.cfg = type("Cfg", (), {"data": "elpv:poly", "split_seed": 0})()

    import adlib.runs.run
    monkeypatch.setattr(adlib.runs.run, "Run", FakeRun)
    with pytest.raises(AdlibError, match=r"DATA 'elpv:mono' is not the data RUN_DIR .* was trained on"):
        nbk.open_run(tmp_path, "elpv:mono")


def test_01_says_which_run_its_real_latents_come_from():
    """01 runs before 02 in the main job, so without RUN_DIR it scores the small smoke run, not 02's: it must
    say so (it used to train and use that run silently, and its AUROC differed from 03's)."""
    path = next(p for p in NOTEBOOKS if p.stem.startswith("01_"))
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    cell = next(c for c in cells if "nbk.open_run(RUN_DIR" in c)
    assert "run.path" in cell and "if RUN_DIR is None:" in cell and "SMOKE run" in cell and "notebook 02" in cell

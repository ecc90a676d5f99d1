"""Notebooks 05 and 06 as a course hands them out (issue 13): header, glossary, exercises whose answers are
computed and checked in collapsed cells, quality gates through nbk.quality_gate, and 05's profiles choosing
designs on ELPV's dev half of the data notebook 02 trains on (so the main job extracts no extra features)."""
import re

import nbformat
import pytest

import adlib.teach.notebooks as nbk

NB = {"05": nbk.notebooks_dir() / "05_beyond_gaussian.ipynb", "06": nbk.notebooks_dir() / "06_inspect_your_images.ipynb"}
GLOSSARY = {
    "05": ["closed-form ε", "whitening", "Mahalanobis distance", "PaDiM", "flow map", "gain", "eigenvalue",
           "residual", "zero-residual control", "local-top", "dev/test halves"],
    "06": ["threshold", "false-positive rate", "calibration", "overlay", "ONNX", "engine", "FPR"],
}


def _cells(key):
    return nbformat.read(str(NB[key]), as_version=4).cells


@pytest.mark.parametrize("key", sorted(NB))
def test_header_before_the_parameters_cell(key):
    cells = _cells(key)
    head = cells[0]
    assert head.cell_type == "markdown" and "parameters" in cells[1].metadata.get("tags", [])
    text = head.source
    assert re.match(rf"# {key} · \S", text)
    for part in ("**You will learn**", "**Prerequisites**", "**Run time**", "**Glossary**"):
        assert part in text, part
    learn = text.split("**You will learn**")[1].split("**Prerequisites**")[0]
    assert 3 <= len(re.findall(r"^- ", learn, re.M)) <= 5
    assert re.search(r"smoke [\d.]+ min · cpu [\d.]+ min · full: a GPU, not measured", text)
    glossary = text.split("**Glossary**")[1]
    terms = re.findall(r"^- \*\*(.+?)\*\*", glossary, re.M)
    for term in GLOSSARY[key]:
        assert any(term in t for t in terms), f"{key}: glossary lacks {term!r}"


@pytest.mark.parametrize("key", sorted(NB))
def test_exercises_then_collapsed_answers_that_check_themselves(key):
    cells = _cells(key)
    heads = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    assert len(heads) == 1
    ex = heads[0]
    numbered = re.findall(r"^(\d+)\. ", cells[ex].source, re.M)
    assert 3 <= len(numbered) <= 5 and numbered == [str(i) for i in range(1, len(numbered) + 1)]
    assert cells[ex + 1].cell_type == "markdown" and cells[ex + 1].source.startswith("## Answers")
    answers = cells[ex + 2:]
    assert answers, "no answer cells"
    for c in answers:
        assert c.metadata.get("tags") == ["answers"] and c.metadata.get("jupyter", {}).get("source_hidden") is True
    checks = [c for c in answers if c.cell_type == "code"]
    assert len(checks) >= 3 and all("assert " in c.source for c in checks), "every answer cell checks its answer"


@pytest.mark.parametrize("key", sorted(NB))
def test_quality_gate_not_an_assert(key):
    code = "\n".join(c.source for c in _cells(key) if c.cell_type == "code")
    assert 'nbk.quality_gate(' in code and "MIN_AUROC)" in code
    assert not re.search(r"assert[^\n]*MIN_AUROC", code)


@pytest.mark.parametrize("profile", nbk.PROFILES)
def test_05_chooses_designs_on_a_dev_half(profile):
    prof = nbk.load_profile(profile)
    data = {**(prof.get("shared") or {}), **(prof.get("05_beyond_gaussian") or {})}["DATA"]
    if str(data).startswith("elpv"):
        assert str(data).endswith(":dev"), f"{profile}: 05 must choose on elpv:TYPE:dev, not {data}"


def test_05_cpu_uses_the_data_02_trains_on():
    """Same train/validation images and image size as 02's run: the feature cache is shared, and 02's
    gaussian+conv run (RUN_DIR) is the one section 5 analyses."""
    prof = nbk.load_profile("cpu")
    shared, own = prof["shared"], prof["05_beyond_gaussian"]
    assert nbk.same_data(own["DATA"], shared["DATA"])
    assert own.get("IMAGE_SIZE") == prof["02_train_on_gpu"].get("IMAGE_SIZE")
    assert "RUN_DIR" in nbk.declared_parameters(NB["05"])

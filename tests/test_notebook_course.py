"""Every notebook follows the course conventions (issue 13): a header with what it teaches, prerequisites,
measured run times and a glossary; exercises at the end with collapsed answers that execute (nbval and the
runner run them, so the answers are tested); README's notebook table quotes the same measured times."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMES = re.compile(r"smoke\s+([\d.]+)\s*min\s*·\s*cpu\s+([\d.]+)\s*min")


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _src(cell):
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_says_what_when_how_long_and_the_words(path):
    head = _src(_cells(path)[0])
    assert head.startswith(f"# {path.stem[:2]} · "), f"{path.name}: the first cell is the '# NN · Title' header"
    for part in ("**You will learn**", "**Prerequisites**", "**Run time**", "**Glossary**"):
        assert part in head, f"{path.name}: the header has no {part}"
    assert TIMES.search(head), f"{path.name}: the header's run time reads 'smoke X min · cpu Y min'"
    glossary = head.split("**Glossary**", 1)[1]
    assert len(re.findall(r"^\s*[-*] ", glossary, flags=re.M)) >= 3, f"{path.name}: a glossary of at least 3 terms"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_ends_with_exercises_and_collapsed_answers_that_check_themselves(path):
    cells = _cells(path)
    heads = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and _src(c).lstrip().startswith("## Exercises")]
    assert len(heads) == 1, f"{path.name}: one '## Exercises' section"
    n = len(re.findall(r"^\d+\. ", _src(cells[heads[0]]), flags=re.M))
    assert 3 <= n <= 5, f"{path.name}: {n} numbered exercises, want 3-5"
    rest = cells[heads[0] + 1:]
    assert rest and _src(rest[0]).lstrip().startswith("## Answers"), f"{path.name}: '## Answers' follows the exercises"
    answers = rest[1:]
    assert answers, f"{path.name}: no answer cells"
    for c in answers:
        meta = c.get("metadata", {})
        assert "answers" in meta.get("tags", []), f"{path.name}: answer cells are tagged 'answers'"
        assert meta.get("jupyter", {}).get("source_hidden") is True, f"{path.name}: answer cells are collapsed"
    code = "\n".join(_src(c) for c in answers if c["cell_type"] == "code")
    assert code.count("assert") >= 2, f"{path.name}: the answers check themselves with asserts"


def test_readme_table_quotes_the_measured_times():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        head_times = TIMES.search(_src(_cells(path)[0]))
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{path.stem}`")), None)
        assert row, f"README's notebook table has no row for {path.stem}"
        assert head_times and all(f"{t} min" in row for t in head_times.groups()), \
            f"README's row for {path.stem} should quote the header's times {head_times.groups() if head_times else None}"

"""Unified multi-category training and the resumable per-category benchmark, on three generated categories."""
import csv
import json

import pytest

from adlib.cli import main
from adlib.data import load_spec
from adlib.data.mini import make_mini_root
from adlib.errors import AdlibError
import adlib.evaluation.benchmark as bm

CATS = ["grain", "tiles", "weave"]
TRAIN = ["--iters", "20", "--image-size", "64", "--batch-size", "4"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_mini_root(tmp_path_factory.mktemp("root") / "cats", size=64, n_train=20, n_test_good=4,
                          n_test_per_defect=2)


@pytest.fixture(scope="module")
def unified(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "unified"
    assert main(["benchmark", "--data", f"mvtec-root:{root}", "--out", str(out), *TRAIN]) == 0
    return out


def test_root_spec_is_every_category(root):
    data = load_spec(f"mvtec-root:{root}")
    parts = data.categories()
    assert list(parts) == CATS and data.has_masks
    assert len(data.train) == sum(len(p.train) for p in parts.values())
    assert {s.category for s in data.test} == set(CATS)
    alone = load_spec(f"mvtec:{root / 'tiles'}")  # a category inside the root splits as it does alone
    assert [s.path for s in parts["tiles"].val] == [s.path for s in alone.val]


def test_root_errors_name_the_folder(tmp_path):
    with pytest.raises(AdlibError, match="no such folder"):
        load_spec(f"mvtec-root:{tmp_path / 'nope'}")
    with pytest.raises(AdlibError, match="no category folders"):
        load_spec(f"mvtec-root:{tmp_path}")


def test_unified_table(unified, root):
    rows = list(csv.DictReader((unified / "results.csv").open()))
    assert [r["category"] for r in rows] == CATS + ["mean"]
    table = json.loads((unified / "results.json").read_text())
    for key in bm.COLUMNS:
        vals = [r[key] for r in table["rows"]]
        assert table["mean"][key] == pytest.approx(sum(vals) / len(vals))
    assert all(r["image_auroc"] > 0.7 and r["aupro"] is not None for r in table["rows"])
    split = json.loads((unified / "run" / "split.json").read_text())
    assert split["train"] == [s.path for s in load_spec(f"mvtec-root:{root}").train]  # every category's normals
    md = (unified / "results.md").read_text()
    assert "| **mean** |" in md and "paper mean" in md and "| 99.0 |" in md


def test_benchmark_resumes_and_skips_finished_categories(root, tmp_path, monkeypatch):
    out, calls, real = tmp_path / "b", [], bm.evaluate_run

    def dies_on_second(run, part, *a, **k):
        calls.append(part.spec)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(run, part, *a, **k)
    monkeypatch.setattr(bm, "evaluate_run", dies_on_second)
    assert main(["benchmark", "--data", f"mvtec-root:{root}", "--out", str(out), *TRAIN]) == 130
    assert [p.stem for p in (out / "categories").glob("*.json")] == ["grain"] and not (out / "results.csv").exists()
    monkeypatch.setattr("adlib.runs.run.train_run", lambda *a, **k: pytest.fail("trained again"))
    calls.clear()
    monkeypatch.setattr(bm, "evaluate_run", lambda run, part, *a, **k: calls.append(part.spec) or real(run, part, *a, **k))
    assert main(["benchmark", "--data", f"mvtec-root:{root}", "--out", str(out), *TRAIN]) == 0
    assert [c.split("/")[-1] for c in calls] == ["tiles", "weave"]
    assert len(list(csv.DictReader((out / "results.csv").open()))) == 4


def test_other_settings_are_refused(unified, root, capsys):
    assert main(["benchmark", "--data", f"mvtec-root:{root}", "--out", str(unified), "--iters", "21",
                 "--image-size", "64", "--batch-size", "4"]) == 2
    assert "--iters 20 (asked 21)" in capsys.readouterr().err


def test_per_category_setting(root, tmp_path):
    out = tmp_path / "pc"
    assert main(["benchmark", "--data", f"mvtec-root:{root}", "--out", str(out), "--setting", "per-category",
                 *TRAIN]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == CATS
    assert json.loads((out / "runs" / "tiles" / "config.json").read_text())["data"].endswith("tiles")
    assert len(json.loads((out / "results.json").read_text())["rows"]) == 3


def test_evaluate_a_unified_run_per_category(unified, tmp_path, capsys):
    assert main(["evaluate", str(unified / "run"), "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert all(f"| {c} |" in printed for c in CATS) and "| **mean** |" in printed
    e = json.loads((tmp_path / "e.json").read_text())
    saved = json.loads((unified / "results.json").read_text())
    assert [r["image_auroc"] for r in e["rows"]] == [r["image_auroc"] for r in saved["rows"]]


def test_benchmark_needs_a_root(capsys, tmp_path):
    assert main(["benchmark", "--data", "elpv:mono", "--out", str(tmp_path / "x")]) == 2
    assert "mvtec-root:PATH" in capsys.readouterr().err


def test_bad_options_write_nothing(root, capsys, tmp_path):
    out = tmp_path / "b"
    assert main(["benchmark", "--data", f"mvtec-root:{root}", "--out", str(out), *TRAIN, "--model", "nope"]) == 2
    assert "--model 'nope'" in capsys.readouterr().err
    assert not out.exists()  # no benchmark.json that a corrected rerun would be refused by

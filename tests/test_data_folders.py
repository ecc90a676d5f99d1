"""A user's plain folders (`folder:NORMAL_DIR[:ANOMALOUS_DIR]`) and the data folder (data/, $ADLIB_DATA).

Unit tests write tiny PNGs (the loader lists files, it does not decode them); the CLI round trip trains
and evaluates a tiny run on folders made from the generated miniature.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import adlib
from adlib.cli import main
from adlib.data import data_dir, load_folder, load_spec, make_mini_mvtec
from adlib.data.paths import DATA_ENV
from adlib.errors import AdlibError

REPO = Path(__file__).resolve().parents[1]
TINY = ["--iters", "4", "--batch-size", "4", "--image-size", "64"]


def _png(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    return path


def _images(folder, n, prefix="img", suffix=".png"):
    return [_png(folder / f"{prefix}{i:03d}{suffix}", i) for i in range(n)]


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """An empty data folder and a current directory of its own, so nothing of the checkout's data/ is found."""
    (tmp_path / "DATA").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "DATA"))
    monkeypatch.chdir(tmp_path / "cwd")


@pytest.fixture
def parts(tmp_path):
    """20 normals (two in a subfolder) and 6 anomalous images (one directly, five in defect subfolders)."""
    good, bad = tmp_path / "parts" / "good", tmp_path / "parts" / "bad"
    _images(good, 18)
    _images(good / "batch2", 2, "late")
    _png(bad / "odd.png")
    _images(bad / "crack", 3)
    _images(bad / "stain", 2)
    return good, bad


# --- folder: SPEC ----------------------------------------------------------------------------------

def test_folder_split_sizes_and_labels(parts):
    good, bad = parts
    spec = f"folder:{good}:{bad}"
    data = load_spec(spec)
    assert data.spec == spec and not data.has_masks  # the SPEC as given: evaluate finds the run's calibration
    assert (len(data.train), len(data.val)) == (14, 2)  # 20 normals: 10 % validation, 20 % test, the rest trains
    normals = [s for s in data.test if s.label == 0]
    anomalous = [s for s in data.test if s.label == 1]
    assert len(normals) == 4 and len(anomalous) == 6
    assert all(s.label == 0 and s.defect == "good" and s.mask is None for s in data.train + data.val + normals)
    every = [s.path for s in data.train + data.val + normals]
    assert len(set(every)) == 20 and set(every) == {str(p) for p in good.rglob("*.png")}
    assert sorted(s.defect for s in anomalous) == ["bad"] + ["crack"] * 3 + ["stain"] * 2
    assert {s.path for s in anomalous} == {str(p) for p in bad.rglob("*.png")}
    assert data.info["normal"] == str(good.resolve()) and data.info["anomalous"] == str(bad.resolve())
    json.dumps(data.split_record())  # saved with every run


def test_folder_split_is_seeded_and_reproducible(parts):
    good, bad = parts
    split = lambda seed: [[s.path for s in part] for part in (lambda d: (d.train, d.val, d.test))(load_folder(good, bad, seed))]
    assert split(3) == split(3)
    assert split(3) != split(4)
    assert sorted(sum(split(3), [])) == sorted(sum(split(4), []))  # the same images, dealt differently
    assert load_spec(f"folder:{good}:{bad}", 3).split_record()["train"] == split(3)[0]


def test_folder_without_anomalous_holds_only_normals(parts):
    good, _ = parts
    data = load_spec(f"folder:{good}")
    assert (len(data.train), len(data.val), len(data.test)) == (14, 2, 4)
    assert all(s.label == 0 for s in data.test) and data.info["anomalous"] is None


def test_folder_images_recursive_hidden_skipped_any_suffix_case(tmp_path):
    good = tmp_path / "good"
    want = [_png(good / "a.PNG"), _png(good / "b.JpEg"), _png(good / "sub" / "c.png"),
            _png(good / "sub" / "deeper" / "d.TIF"), _png(good / "e.bmp")]
    _png(good / ".hidden.png"), _png(good / "._a.PNG"), _png(good / ".ipynb_checkpoints" / "f.png")
    _png(good / ".cache" / "sub" / "g.png")
    (good / "notes.txt").write_text("not an image"), (good / "h.png.bak").write_bytes(b"x")
    (good / "folder.png").mkdir()  # a folder named like an image
    data = load_folder(good)
    assert sorted(s.path for s in data.train + data.val + data.test) == sorted(str(p) for p in want)


def test_anomalous_folder_inside_the_normal_one_is_not_normal(tmp_path):
    good = tmp_path / "parts"
    _images(good, 10)
    bad = _images(good / "rejects", 3, "r")
    data = load_spec(f"folder:{good}:{good / 'rejects'}")
    assert {s.path for s in data.test if s.label == 1} == {str(p) for p in bad}
    assert not {str(p) for p in bad} & {s.path for s in data.train + data.val + data.test if s.label == 0}
    assert len(data.train) + len(data.val) + sum(s.label == 0 for s in data.test) == 10


def test_too_few_normals_is_one_line_naming_the_folder(tmp_path):
    good = tmp_path / "few"
    _images(good, 4)
    _png(good / ".hidden.png")  # hidden files do not count
    with pytest.raises(AdlibError) as e:
        load_spec(f"folder:{good}")
    assert str(good) in _one_line(e) and "4 normal image" in str(e.value) and "at least 5" in str(e.value)
    _png(good / "fifth.png")
    data = load_spec(f"folder:{good}")  # five: 2 train, 2 validation (what calibration needs), 1 test
    assert (len(data.train), len(data.val), len(data.test)) == (2, 2, 1)


@pytest.mark.parametrize("which", ["normal", "anomalous"])
def test_missing_folder_is_named(parts, tmp_path, which):
    good, bad = parts
    nope = tmp_path / "no-such-folder"
    spec = f"folder:{nope}" if which == "normal" else f"folder:{good}:{nope}"
    with pytest.raises(AdlibError) as e:
        load_spec(spec)
    assert str(nope) in _one_line(e) and "no such folder" in str(e.value)
    with pytest.raises(AdlibError, match="does not exist"):  # the Python API says so too
        load_folder(nope) if which == "normal" else load_folder(good, nope)


def test_folder_spec_errors(parts, tmp_path):
    good, bad = parts
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    _png(empty / ".only-hidden.png")
    cases = {f"folder:{good}:{bad}:{tmp_path}": "separates the two folders",  # a third folder, or a ':' in a name
             f"folder:{good}:{good}": "the same",
             f"folder:{good}:{empty}": str(empty),  # an anomalous folder without images
             "folder:": "no folder given",
             f"folder:{good}:": "no folder given"}
    for spec, needle in cases.items():
        with pytest.raises(AdlibError) as e:
            load_spec(spec)
        assert needle in _one_line(e), (spec, str(e.value))


# --- the data folder -------------------------------------------------------------------------------

def test_data_dir_is_the_repository_data_folder_unless_adlib_data_is_set(tmp_path, monkeypatch):
    assert data_dir() == tmp_path / "DATA"
    monkeypatch.delenv(DATA_ENV)
    assert data_dir() == Path(adlib.__file__).resolve().parents[1] / "data" == REPO / "data"
    assert (REPO / "data" / "README.md").is_file()


def _category(path):
    return make_mini_mvtec(path, seed=1, size=48, n_train=4, n_test_good=1, n_test_per_defect=1)


def test_mvtec_name_resolves_in_mvtec_ad_then_data(tmp_path):
    data = tmp_path / "DATA"
    _category(data / "mvtec_ad" / "bottle")
    _category(data / "bottle")  # shadowed by mvtec_ad/bottle
    _category(data / "mine")
    assert load_spec("mvtec:bottle").spec == str(data / "mvtec_ad" / "bottle")
    assert load_spec("bottle").spec == str(data / "mvtec_ad" / "bottle")  # a bare name is an mvtec: name
    assert load_spec("mvtec:mine").spec == str(data / "mine")
    _category(Path("bottle"))  # a folder relative to the current directory comes first
    assert load_spec("mvtec:bottle").spec == "bottle"


def test_mvtec_root_and_folder_names_resolve_in_data(tmp_path, parts):
    data = tmp_path / "DATA"
    _category(data / "mvtec_ad" / "bottle"), _category(data / "mvtec_ad" / "cable")
    root = load_spec("mvtec-root:mvtec_ad")
    assert root.spec == f"mvtec-root:{data / 'mvtec_ad'}" and root.info["categories"] == ["bottle", "cable"]
    good, bad = parts
    shutil.copytree(good, data / "good_parts"), shutil.copytree(bad, data / "bad_parts")
    direct = load_spec(f"folder:{data / 'good_parts'}:{data / 'bad_parts'}")
    found = load_spec("folder:good_parts:bad_parts")
    assert found.spec == "folder:good_parts:bad_parts"
    assert [s.path for s in found.train + found.val + found.test] == [s.path for s in direct.train + direct.val + direct.test]
    assert load_spec("folder:good_parts").info["normal"] == str(data / "good_parts")


@pytest.mark.parametrize("spec, looked", [
    ("mvtec:bottle", ["{cwd}/bottle", "{data}/mvtec_ad/bottle", "{data}/bottle"]),
    ("bottle", ["{cwd}/bottle", "{data}/mvtec_ad/bottle", "{data}/bottle"]),
    ("mvtec-root:mvtec_ad", ["{cwd}/mvtec_ad", "{data}/mvtec_ad"]),
    ("folder:good_parts", ["{cwd}/good_parts", "{data}/good_parts"]),
    ("folder:{tmp}/parts/good:bad_parts", ["{cwd}/bad_parts", "{data}/bad_parts"]),
])
def test_not_found_lists_every_place_looked(spec, looked, tmp_path, parts):
    spec = spec.format(tmp=tmp_path)
    with pytest.raises(AdlibError) as e:
        load_spec(spec)
    line = _one_line(e)
    assert spec in line and DATA_ENV in line
    for place in looked:
        assert place.format(cwd=tmp_path / "cwd", data=tmp_path / "DATA") in line, line


def test_absolute_path_is_not_looked_up_in_data(tmp_path):
    _category(tmp_path / "DATA" / "nowhere")
    with pytest.raises(AdlibError) as e:
        load_spec(f"mvtec:{tmp_path}/x/nowhere")
    assert f"looked in {tmp_path}/x/nowhere;" in _one_line(e) and "elpv:mono" in str(e.value)


def test_no_data_folder_says_how_to_set_one(monkeypatch, tmp_path):
    import adlib.data.paths as paths
    monkeypatch.delenv(DATA_ENV)
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "adlib" / "data" / "paths.py"))
    assert paths.data_dir() is None  # an installed package has no data/ beside it
    with pytest.raises(AdlibError) as e:
        load_spec("folder:good_parts")
    assert f"set {DATA_ENV}" in _one_line(e) and str(tmp_path / "cwd" / "good_parts") in str(e.value)


# --- generated examples -----------------------------------------------------------------------------

def test_make_data_script(tmp_path, monkeypatch):
    out = tmp_path / "DATA"
    r = subprocess.run(["bash", str(REPO / "scripts" / "make_data.sh"), str(out)], capture_output=True, text=True,
                       env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "examples").iterdir()) == [
        "hole_000.png", "normal_000.png", "normal_001.png", "scratch_000.png", "spot_000.png"]
    mini = load_spec("mvtec:mini")
    assert mini.spec == str(out / "mini") and mini.has_masks
    flat = load_spec("folder:mini-folder/good:mini-folder/bad")
    normals = len(flat.train) + len(flat.val) + sum(s.label == 0 for s in flat.test)
    assert (normals, sum(s.label for s in flat.test)) == (52, 18)
    assert {s.defect for s in flat.test if s.label} == {"scratch", "spot", "hole"}
    reference = make_mini_mvtec(tmp_path / "reference", seed=0)  # the notebooks' DATA = "mini", file for file
    assert (out / "mini" / "test" / "spot" / "000.png").read_bytes() == (reference / "test" / "spot" / "000.png").read_bytes()
    assert (out / "examples" / "spot_000.png").read_bytes() == (reference / "test" / "spot" / "000.png").read_bytes()


def test_gitignore_keeps_user_data_out_of_git(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    check = lambda rel: subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", rel]).returncode == 0
    assert check("data/mvtec_ad/bottle/train/good/000.png") and check("data/good_parts/x.jpg") and check("data/mini")
    assert not check("data/README.md")


# --- the command line: train and evaluate on folder: ------------------------------------------------

def _visible_lines(err: str) -> list:
    lines = (line.rsplit("\r", 1)[-1].strip() for line in err.split("\n"))
    return [line for line in lines if line and not line.startswith("warning: ")]


@pytest.fixture
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_cli_train_and_evaluate_on_folders(tmp_path, capsys, _one_thread):
    mini = make_mini_mvtec(tmp_path / "mini", seed=5, size=64, n_train=24, n_test_good=6, n_test_per_defect=2)
    data = tmp_path / "DATA"  # a user's layout: normals flat, anomalous images one folder per defect
    (data / "parts" / "good").mkdir(parents=True)
    for split in ("train", "test"):
        for f in (mini / split / "good").glob("*.png"):
            shutil.copy(f, data / "parts" / "good" / f"{split}_{f.name}")
    for d in ("scratch", "spot", "hole"):
        shutil.copytree(mini / "test" / d, data / "parts" / "bad" / d)

    run = tmp_path / "run"
    assert main(["train", "--data", "folder:parts/good:parts/bad", "--out", str(run), *TINY]) == 0, capsys.readouterr()
    split = json.loads((run / "split.json").read_text())
    assert split["spec"] == "folder:parts/good:parts/bad" and split["normal"] == str(data / "parts" / "good")
    assert (len(split["train"]), len(split["val"])) == (21, 3)  # 30 normals: 3 validation, 6 test, 21 train
    report = tmp_path / "r.json"
    assert main(["evaluate", str(run), "--json", str(report)]) == 0, capsys.readouterr()
    r = json.loads(report.read_text())
    assert (r["n_test"], r["n_anomalous"]) == (6 + 6, 6)
    assert r["data"] == "folder:parts/good:parts/bad" and 0 <= r["methods"][0]["image_auroc"] <= 1
    capsys.readouterr()

    # without the anomalous folder: training works, evaluation says in one line what it needs
    only = tmp_path / "run-normals"
    assert main(["train", "--data", "folder:parts/good", "--out", str(only), *TINY]) == 0, capsys.readouterr()
    capsys.readouterr()
    for argv in (["evaluate", str(only)], ["evaluate", str(run), "--data", "folder:parts/good"]):
        assert main(argv) == 2
        lines = _visible_lines(capsys.readouterr().err)
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert "no anomalous images" in lines[0] and "folder:NORMAL_DIR:ANOMALOUS_DIR" in lines[0], lines[0]

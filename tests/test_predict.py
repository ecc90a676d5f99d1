"""`adlib predict` / `Run.predict`: CSV, maps and report on the miniature's test folder, resuming, bad input
(one line, exit 2, nothing half-written), input discovery, --fpr, per-batch extraction, and the report in
headless Chromium."""
import csv
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlib.cli import main
from adlib.deploy.predict import COLUMNS, find_images, predict, read_predictions
import adlib.deploy.predict as predict_mod
from adlib.errors import AdlibError
from adlib.features.backbone import FeatureExtractor
from adlib.method import calibration
from adlib.method.scoring import SCORES

BATCH = ["--batch-size", "8"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: torch on one thread


def _fails(capsys, argv, *needles) -> str:
    """main(argv) exits 2 with one `error:` line (warnings aside) holding every needle."""
    rc = main(argv)
    out, err = capsys.readouterr()
    lines = [x.rsplit("\r", 1)[-1].strip() for x in err.split("\n")]
    lines = [x for x in lines if x and not x.startswith("warning: ")]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (rc, out, err)
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def _files(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _predict(run, inputs, out, *extra, capsys=None):
    assert main(["predict", str(run.path), *map(str, inputs), "--out", str(out), *BATCH, *extra]) == 0


@pytest.fixture(scope="module")
def predicted(tiny_run, mini, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "out"
    _predict(tiny_run, [mini / "test"], out)
    return out


def _rows(out):
    with open(out / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- what predict writes

def test_csv_maps_and_report(predicted, tiny_run, mini):
    rows = _rows(predicted)
    images = sorted(p.relative_to(mini / "test").as_posix() for p in (mini / "test").rglob("*.png"))
    assert tuple(rows[0]) == COLUMNS and sorted(r["name"] for r in rows) == images  # one row per image
    threshold = tiny_run.calibration()["threshold"]
    for r in rows:
        assert float(r["threshold"]) == threshold
        assert r["decision"] == ("anomalous" if float(r["score"]) > threshold else "normal")
        assert r["path"] == str(mini / "test" / r["name"]) and r["map"] == f"maps/{r['name']}"
        with Image.open(predicted / r["map"]) as im, Image.open(r["path"]) as src:
            assert im.size == src.size  # 128 px: not shrunk
            assert 0 <= int(r["x"]) < src.width and 0 <= int(r["y"]) < src.height
        assert (predicted / "thumbs" / f"{r['name']}.jpg").is_file()
    assert any(r["decision"] == "anomalous" for r in rows if not r["name"].startswith("good/"))
    state = json.loads((predicted / "predict.json").read_text())
    assert state["images"] == len(rows) and state["skipped"] == 0 and state["weights"] == "ema"
    html = (predicted / "report.html").read_text()
    order = [html.index(f'"maps/{r["name"]}"') for r in sorted(rows, key=lambda r: -float(r["score"]))]
    assert order == sorted(order)  # most anomalous first
    for key in ("fpr", "fpr_guaranteed", "n_val", "method", "source"):
        assert key in state["calibration"]
    c = state["calibration"]
    assert c["method"] in html and c["source"] in html and f"{100 * c['fpr_guaranteed']:.1f} %" in html
    assert f"<b>{c['n_val']}</b> normal validation images" in html
    assert f"{threshold:.6g}" in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # one self-contained file:
    assert "<script>" in html and "<script src" not in html and "<link" not in html  # inline script, no loads


def test_scores_are_the_runs_own(predicted, tiny_run, mini):
    """The same numbers as the kit's own path: features -> run.scores -> calibration.decide."""
    from adlib.data import Sample
    rows = _rows(predicted)
    z, _ = tiny_run.features([Sample(r["path"], 0) for r in rows])
    values, flags = calibration.decide(tiny_run.calibration(), tiny_run.scores(z))
    np.testing.assert_allclose([float(r["score"]) for r in rows], values, rtol=1e-4, atol=1e-4)


def test_run_predict_api_and_weights(tiny_run, mini, tmp_path):
    from adlib.runs.run import Run
    raw = Run(tiny_run.path, "model")
    s = predict(raw, [mini / "test" / "good"], tmp_path / "o", batch_size=16, maps=False, progress=False)
    assert s["weights"] == "model" and s["images"] == 8 and s["maps"] is False
    assert not (tmp_path / "o" / "maps").exists() and all(r["map"] == "" for r in _rows(tmp_path / "o"))
    assert (tmp_path / "o" / "report.html").is_file()


# ---------------------------------------------------------------- streaming and resuming

def test_extraction_is_per_batch(tiny_run, mini, tmp_path, monkeypatch):
    sizes = []
    forward = FeatureExtractor.forward
    monkeypatch.setattr(FeatureExtractor, "forward", lambda self, x: sizes.append(len(x)) or forward(self, x))
    monkeypatch.setattr(predict_mod, "decode", _spy(predict_mod.decode, calls := []))
    _predict(tiny_run, [mini / "test"], tmp_path / "o", "--no-maps")
    assert sizes == [8, 8, 4]  # 20 images, never more than one batch of features at a time
    assert [len(c[0][0]) for c in calls] == [8, 8, 4]


def _spy(fn, calls):
    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return fn(*args, **kwargs)
    return wrapper


def test_interrupted_predict_resumes_without_duplicates(predicted, tiny_run, mini, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    append = predict_mod._append_rows
    calls = []

    def interrupt_after_first(path, rows):
        if calls:
            raise KeyboardInterrupt
        calls.append(len(rows))
        append(path, rows)

    monkeypatch.setattr(predict_mod, "_append_rows", interrupt_after_first)
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tiny_run.path), str(mini / "test"), "--out", str(out), *BATCH])
    assert e.value.code == 130 and "run the same command again" in capsys.readouterr().err
    assert len(_rows(out)) == 8 and not (out / "report.html").exists()
    monkeypatch.setattr(predict_mod, "_append_rows", append)
    scored = []
    monkeypatch.setattr(predict_mod.Predictor, "batch", _spy(predict_mod.Predictor.batch, scored))
    _predict(tiny_run, [mini / "test"], out)
    assert sum(len(c[0][1]) for c in scored) == 12  # only what was missing
    assert (out / "predictions.csv").read_bytes() == (predicted / "predictions.csv").read_bytes()
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == \
        sorted(p.relative_to(predicted) for p in predicted.rglob("*.png"))
    scored.clear()
    _predict(tiny_run, [mini / "test"], out)  # complete: nothing scored, nothing written twice
    assert scored == [] and (out / "predictions.csv").read_bytes() == (predicted / "predictions.csv").read_bytes()
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_out_inside_the_input_folder_is_not_scored(tiny_run, mini, tmp_path):
    folder = shutil.copytree(mini / "test" / "good", tmp_path / "good")
    _predict(tiny_run, [folder], folder / "pred")
    _predict(tiny_run, [folder], folder / "pred")
    assert len(_rows(folder / "pred")) == 8


# ---------------------------------------------------------------- inputs

def test_find_images_recursion_hidden_files_and_suffixes(tmp_path):
    src = Image.new("RGB", (40, 30), "gray")
    for rel in ["a.png", "sub/deeper/b.JPG", "e.TIFF", ".hidden/c.png", "sub/.d.png", "__MACOSX/._f.png",
                ".ipynb_checkpoints/g.png", "x.jpeg"]:
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        src.save(tmp_path / "in" / rel, format="PNG")
    for rel in ["notes.txt", "Thumbs.db", "sub/desktop.ini", ".DS_Store"]:
        (tmp_path / "in" / rel).write_text("clutter")
    names = [n for _, n in find_images([tmp_path / "in"])]
    assert names == ["a.png", "e.TIFF", "sub/deeper/b.JPG", "x.jpeg"]
    # several inputs: named relative to the folder that holds them all; repeats dropped
    both = find_images([tmp_path / "in" / "sub", tmp_path / "in" / "a.png", tmp_path / "in" / "a.png"])
    assert [n for _, n in both] == ["sub/deeper/b.JPG", "a.png"]
    assert [n for _, n in find_images([tmp_path / "in" / "x.jpeg"])] == ["x.jpeg"]
    assert predict_mod.map_name("x.jpeg") == "maps/x.jpeg.png" and predict_mod.map_name("a.png") == "maps/a.png"
    with pytest.raises(AdlibError, match="notes.txt"):
        find_images([tmp_path / "in" / "notes.txt"])


def test_mixed_inputs_through_the_cli(tiny_run, mini, tmp_path):
    rgba = tmp_path / "mine" / "rgba.png"
    rgba.parent.mkdir()
    Image.open(mini / "test" / "good" / "000.png").convert("RGBA").resize((200, 100)).save(rgba)
    Image.open(mini / "test" / "hole" / "000.png").convert("L").save(tmp_path / "mine" / "gray #1.JPG")
    single = shutil.copytree(mini / "test" / "spot", tmp_path / "spot") / "001.png"
    _predict(tiny_run, [tmp_path / "mine", single], tmp_path / "o")
    rows = {r["name"]: r for r in _rows(tmp_path / "o")}
    assert sorted(rows) == ["mine/gray #1.JPG", "mine/rgba.png", "spot/001.png"]  # relative to the inputs' folder
    assert (tmp_path / "o" / "maps" / "mine" / "gray #1.JPG.png").is_file()
    assert 'href="maps/mine/gray%20%231.JPG.png"' in (tmp_path / "o" / "report.html").read_text()
    assert int(rows["mine/rgba.png"]["x"]) < 200 and int(rows["mine/rgba.png"]["y"]) < 100
    with Image.open(tmp_path / "o" / "maps" / "mine" / "rgba.png") as im:
        assert im.size == (200, 100)  # the original's aspect ratio


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing written

def test_bad_run_directories(tiny_run, mini, tmp_path, capsys):
    out = tmp_path / "o"
    _fails(capsys, ["predict", str(tmp_path / "nowhere"), str(mini / "test"), "--out", str(out)], tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    _fails(capsys, ["predict", str(tmp_path / "empty"), str(mini / "test"), "--out", str(out)],
           tmp_path / "empty" / "config.json", "not a run")
    for missing in ("ema", "stats.safetensors"):
        broken = shutil.copytree(tiny_run.path, tmp_path / f"no-{missing}")
        shutil.rmtree(broken / missing) if missing == "ema" else (broken / missing).unlink()
        _fails(capsys, ["predict", str(broken), str(mini / "test"), "--out", str(out)], broken / missing, "--resume")
    _fails(capsys, ["predict", str(tiny_run.path), str(mini / "test"), "--out", str(out), "--weights", "snapshots/nope"],
           "--weights snapshots/nope")
    assert not out.exists()


def test_bad_inputs(tiny_run, mini, tmp_path, capsys):
    out, run = tmp_path / "o", str(tiny_run.path)
    _fails(capsys, ["predict", run, str(tmp_path / "missing.png"), "--out", str(out)], tmp_path / "missing.png", "does not exist")
    (tmp_path / "clutter" / ".hidden").mkdir(parents=True)
    (tmp_path / "clutter" / "notes.txt").write_text("x")
    shutil.copy(mini / "test" / "good" / "000.png", tmp_path / "clutter" / ".hidden" / "a.png")
    _fails(capsys, ["predict", run, str(tmp_path / "clutter"), "--out", str(out)], tmp_path / "clutter", "no images")
    _fails(capsys, ["predict", run, str(tmp_path / "clutter" / "notes.txt"), "--out", str(out)], "notes.txt")
    for option, value in [("--fpr", "1.5"), ("--steps", "0"), ("--batch-size", "0")]:
        _fails(capsys, ["predict", run, str(mini / "test"), "--out", str(out), option, value], f"{option} {value}")
    if not torch.cuda.is_available():
        _fails(capsys, ["predict", run, str(mini / "test"), "--out", str(out), "--device", "cuda"], "--device cuda")
    assert not out.exists()


@pytest.mark.parametrize("how", ["garbage", "garbage-late", "truncated", "truncated-late"])
def test_undecodable_image(tiny_run, mini, tmp_path, capsys, how):
    """Garbage is found from its header before any work; a truncated file only by decoding it: in the first batch
    nothing is written, in a later one the whole batches before it are kept and a rerun continues after them."""
    folder = shutil.copytree(mini / "test" / "good", tmp_path / "in")
    bad = folder / ("zzz_bad.png" if how.endswith("late") else "000_bad.png")
    if how.startswith("garbage"):
        bad.write_bytes(b"\x00not a PNG at all\xff" * 40)
    else:  # a valid header, then the data stops
        bad.write_bytes((folder / "000.png").read_bytes()[:200])
    out, argv = tmp_path / "o", ["predict", str(tiny_run.path), str(folder), "--out", str(tmp_path / "o"), "--batch-size", "4"]
    line = _fails(capsys, argv, bad, "--skip-bad")
    if how == "truncated-late":
        assert "8 images scored so far are kept" in line and len(_rows(out)) == 8 and not (out / "report.html").exists()
    else:
        assert not out.exists()
    assert main(argv + ["--skip-bad"]) == 0
    assert "1 skipped" in capsys.readouterr().out
    rows = {r["name"]: r for r in _rows(out)}
    assert len(rows) == 9 and rows[bad.name]["decision"] == "skipped" and rows[bad.name]["score"] == ""
    assert rows[bad.name]["map"] == "" and all(r["score"] for n, r in rows.items() if n != bad.name)
    assert json.loads((out / "predict.json").read_text())["skipped_files"] == [str(bad)]
    assert "1 skipped" in (out / "report.html").read_text()


def test_output_folder_of_other_predictions(predicted, tiny_run, mini, tmp_path, capsys):
    out = shutil.copytree(predicted, tmp_path / "o")
    before = _files(out)
    base = ["predict", str(tiny_run.path), str(mini / "test"), "--out", str(out), *BATCH]
    for extra, needles in [(["--steps", "2"], ["--steps 2", "--steps 3"]), (["--score", "diff"], ["--score"]),
                           (["--fpr", "0.7"], ["--fpr 0.7"]), (["--weights", "model"], ["--weights model"]),
                           (["--no-maps"], ["--no-maps"]), (["--grid", "reference"], ["--grid reference"])]:
        _fails(capsys, base + extra, out, *needles)
    _fails(capsys, ["predict", str(tiny_run.path), str(mini / "test" / "good"), "--out", str(out)], out, "INPUT")
    saved = (out / "predict.json").read_bytes()
    (out / "predict.json").write_text(json.dumps({**json.loads(saved), "run": "/elsewhere/run"}))
    _fails(capsys, base, out, "/elsewhere/run")
    (out / "predict.json").write_bytes(saved)
    assert _files(out) == before
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    _fails(capsys, ["predict", str(tiny_run.path), str(mini / "test"), "--out", str(other)], other, "predict.json")
    assert [p.name for p in other.iterdir()] == ["keep.txt"]


def test_fpr_recalibrates_the_threshold(tiny_run, mini, tmp_path):
    # nll: with 2 validation normals the combined score's min-max puts both at 1.0, whatever the rate
    _predict(tiny_run, [mini / "test" / "good"], tmp_path / "o", "--score", "nll", "--fpr", "0.7")
    expected = tiny_run.calibration(score="nll", fpr=0.7)
    assert expected["threshold"] < tiny_run.calibration(score="nll")["threshold"]
    assert {float(r["threshold"]) for r in _rows(tmp_path / "o")} == {expected["threshold"]}
    cal = json.loads((tmp_path / "o" / "predict.json").read_text())["calibration"]
    assert cal["fpr"] == 0.7 and cal["threshold"] == expected["threshold"]
    for r in read_predictions(tmp_path / "o"):
        assert r["decision"] == ("anomalous" if r["score"] > expected["threshold"] else "normal")


@pytest.mark.parametrize("kind", SCORES)
def test_every_score_kind(tiny_run, mini, tmp_path, kind):
    """Each score of adlib.method.scoring.SCORES decides as the run's calibration for it says."""
    s = predict(tiny_run, [mini / "test" / "spot"], tmp_path / "o", score=kind, maps=False, progress=False)
    expected = tiny_run.calibration(score=kind)
    assert s["score"] == kind and s["threshold"] == expected["threshold"]
    for r in read_predictions(tmp_path / "o"):
        assert r["decision"] == ("anomalous" if r["score"] > expected["threshold"] else "normal")


def test_help():
    with pytest.raises(SystemExit) as e:
        main(["predict", "--help"])
    assert e.value.code == 0


# ---------------------------------------------------------------- the report in headless Chromium

def test_report_in_headless_chromium(predicted):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import notebook_browser as nb
    reason = nb.browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    console, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=nb.CHROMIUM, headless=True, args=nb.CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((predicted / "report.html").as_uri(), wait_until="load")
            widths = page.evaluate("""() => Promise.all([...document.images].map(async i => {
                i.loading = 'eager'; try { await i.decode(); } catch (e) {} return i.naturalWidth; }))""")
        finally:
            browser.close()
    assert console == []
    assert len(widths) == 3 * len(_rows(predicted)) and min(widths) > 0  # every image, map and overlay loaded
    assert all(u.startswith(predicted.as_uri()) for u in requests), [u for u in requests if "file:" not in u][:3]

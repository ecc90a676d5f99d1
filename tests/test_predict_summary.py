"""`adlib predict`'s summary line and report (issue 20): counts that are right when images are skipped or nothing
was left to score, the false-alarm rate the threshold does promise (with the target beside it), warnings on a
line of their own under a progress bar, and the report page's parts (header, histogram, colour bar, grid,
filter and sort, settings), self-contained."""
import json
import re
import shutil
import sys
import warnings
from pathlib import Path

import pytest

from adlib.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: torch on one thread


@pytest.fixture(scope="module")
def images(mini, tmp_path_factory):
    """Three good test images and one undecodable file."""
    folder = tmp_path_factory.mktemp("inputs") / "cells"
    folder.mkdir()
    for p in sorted((mini / "test" / "good").glob("*.png"))[:2] + sorted(mini.glob("test/[!g]*/*.png"))[:1]:
        shutil.copy(p, folder / f"{p.parent.name}-{p.name}")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def _summary(capsys, run, inputs, out, *extra) -> str:
    assert main(["predict", str(run.path), *map(str, inputs), "--out", str(out), "--batch-size", "2", "--skip-bad",
                 "--engine", "torch", *extra]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_skipped_images_are_not_counted_as_scored(tiny_run, images, tmp_path, capsys):
    line = _summary(capsys, tiny_run, [images], tmp_path / "p")
    assert "4 images:" in line and "1 skipped (undecodable)" in line
    assert re.search(r"scored 3 now at [0-9.]+ images/s, skipped 1 undecodable", line), line
    state = json.loads((tmp_path / "p" / "predict.json").read_text())
    assert state["scored_now"] == 3 and state["skipped_now"] == 1


def test_a_rerun_that_scores_nothing_says_so_without_a_speed(tiny_run, images, tmp_path, capsys):
    folder = shutil.copytree(images, tmp_path / "cells", ignore=shutil.ignore_patterns("broken.png"))
    _summary(capsys, tiny_run, [folder], tmp_path / "p")
    (folder / "broken.png").write_bytes(b"not a png")  # the only image left to do is undecodable
    line = _summary(capsys, tiny_run, [folder], tmp_path / "p")
    assert "none scored now, skipped 1 undecodable" in line and "images/s" not in line, line
    assert json.loads((tmp_path / "p" / "predict.json").read_text())["scored_now"] == 0
    line = _summary(capsys, tiny_run, [folder], tmp_path / "p")
    assert "nothing left to score" in line and "images/s" not in line and "scored" not in line.split("(")[0], line


def test_the_summary_promises_the_rate_that_holds_with_the_target_beside_it(tiny_run, images, tmp_path, capsys):
    cal = tiny_run.calibration()
    assert cal["fpr_guaranteed"] > cal["fpr"]  # 2 validation images: 1/3 can be promised, not 5 %
    line = _summary(capsys, tiny_run, [images], tmp_path / "p")
    promised = f"false alarms on good images <= {100 * cal['fpr_guaranteed']:.1f} % (target 5.0 %)"
    assert promised in line and "<= 5.0 %" not in line, line


def test_promise_without_a_target_when_the_rate_holds():
    from adlib.deploy.report import promise
    assert promise({"fpr": 0.05, "fpr_guaranteed": 0.05}) == "false alarms on good images ≤ 5.0 %"
    assert promise({"fpr": 0.05}, "<=") == "false alarms on good images <= 5.0 %"  # records without the field
    assert promise({"fpr": 0.05, "fpr_guaranteed": 0.25}).endswith("≤ 25.0 % (target 5.0 %)")


def test_a_warning_under_a_progress_bar_starts_on_its_own_line(capsys):
    from tqdm.auto import tqdm
    from adlib.cli.main import _one_line_warnings
    from adlib.errors import AdlibWarning
    with _one_line_warnings():  # the formatter Python's default showwarning prints with (pytest records instead)
        with tqdm(total=4, desc="predict", file=sys.stderr) as bar:
            bar.update(2)
            sys.stderr.write(warnings.formatwarning("only 2 normal validation images", AdlibWarning, "x.py", 1))
            bar.update(2)
        sys.stderr.write(warnings.formatwarning("after the bar", AdlibWarning, "x.py", 1))
    err = capsys.readouterr().err
    lines = err.split("\n")
    assert "warning: only 2 normal validation images" in lines, err
    assert lines.count("warning: after the bar") == 1 and "\n\nwarning: after" not in err, err


# ---------------------------------------------------------------- the report page

@pytest.fixture(scope="module")
def report(tiny_run, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "p"
    assert main(["predict", str(tiny_run.path), str(images), "--out", str(out), "--skip-bad", "--engine", "torch"]) == 0
    return out


def test_the_report_says_in_plain_words_what_was_flagged_and_what_is_promised(report, tiny_run):
    from adlib.deploy.report import read_predictions
    page = (report / "report.html").read_text()
    rows = read_predictions(report)
    flagged = sum(r["decision"] == "anomalous" for r in rows)
    header = page[page.index("<header>"):page.index("</header>")]
    assert re.sub("<[^>]+>", "", header).startswith(f"{flagged} of 3 images flagged")
    cal = tiny_run.calibration()
    assert f"promises false alarms on good images ≤ {100 * cal['fpr_guaranteed']:.1f} % (target 5.0 %)" in header
    assert "could not be read" in header and "√" not in header and "‖" not in header  # no formulas up top
    assert "#the-method-in-five-lines" in header
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert "threshold" in svg and f"good validation images ({len(cal['val_scores'])})" in svg
    assert "linear-gradient" in page  # the maps' colour bar
    assert "<details><summary>" in page and "<details open" not in page  # run and options, closed
    assert f"standardize auto chose {tiny_run.cfg.standardize_choice['chosen']}" in page  # what the good images chose
    for r in rows:
        if r["score"] is not None:
            for rel in (f"thumbs/{r['name']}.jpg", f"heat/{r['name']}.png", r["map"]):
                assert (report / rel).is_file() and f'src="{rel}"' in page, rel


def test_the_report_filters_sorts_and_enlarges_in_headless_chromium(report):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import notebook_browser as nb
    reason = nb.browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    from adlib.deploy.report import read_predictions
    rows = read_predictions(report)
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=nb.CHROMIUM, headless=True, args=nb.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((report / "report.html").as_uri(), wait_until="load")
            visible = lambda: page.evaluate("[...document.querySelectorAll('.card')].filter(c => c.offsetParent)"
                                            ".map(c => c.dataset.name)")
            assert len(visible()) == len(rows)
            page.click("button[data-show=anomalous]")
            assert sorted(visible()) == sorted(r["name"] for r in rows if r["decision"] == "anomalous")
            page.click("button[data-show=all]")
            page.select_option(".controls select", "low")
            scored = sorted((r for r in rows if r["score"] is not None), key=lambda r: r["score"])
            assert visible()[:len(scored)] == [r["name"] for r in scored]
            page.click(".card img >> nth=2")
            page.wait_for_selector(".zoom img")
            assert page.evaluate("document.querySelector('.zoom img').decode().then(() => "
                                 "document.querySelector('.zoom img').naturalWidth)") > 0
            page.keyboard.press("Escape")
            assert page.query_selector(".zoom") is None
        finally:
            browser.close()
    assert errors == [] and all(u.startswith(report.as_uri()) for u in requests), (errors, requests[:3])

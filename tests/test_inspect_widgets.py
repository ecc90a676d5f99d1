"""adlib.teach.viz.PredictionExplorer (notebook 06): its callbacks driven without a browser, on a tiny run's predictions."""
from datetime import datetime, timezone

import numpy as np
import pytest
import torch

from adlib.deploy.predict import predict, read_predictions
from adlib.teach.viz import PredictionExplorer
from adlib.teach.viz.inspect import rates, threshold_options


@pytest.fixture(scope="module")
def predicted(tiny_run, mini, tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("inspect") / "out"
    predict(tiny_run, [mini / "test"], out, batch_size=10, progress=False)
    torch.set_num_threads(n)
    return out


@pytest.fixture
def explorer(predicted, tiny_run):
    return PredictionExplorer(predicted, tiny_run)


def test_rates_and_threshold_options():
    val, scores = [0.1, 0.5, 0.9, 1.3], [0.2, 0.6, 2.0, 5.0, 7.0]
    assert rates(val, scores, 0.9) == {"threshold": 0.9, "val_above": 1, "n_val": 4, "val_fpr": 0.25,
                                       "flagged": 3, "n": 5}
    assert rates(val, scores, 7.0)["flagged"] == 0 and rates(val, scores, -1)["val_fpr"] == 1.0
    opts = threshold_options(val, scores, 1.0)
    assert opts == sorted(opts) and {*val, *scores, 1.0} == set(opts)
    many = threshold_options(val, np.arange(10_000.0), 1.0, most=50)
    assert len(many) <= 50 + 5 and 1.0 in many and set(val) <= set(many)


def test_images_sorted_by_score_with_their_maps(explorer, predicted):
    rows = read_predictions(predicted)
    assert [r["score"] for r in explorer.rows] == sorted((r["score"] for r in rows), reverse=True)
    assert len(explorer.image.options) == len(rows) == 20
    explorer.image.value = 3
    r = explorer.rows[3]
    assert explorer.picture.value == (predicted / r["map"]).read_bytes()
    assert r["name"] in explorer.info.value and f"{r['score']:.4g}" in explorer.info.value


def test_threshold_slider_shows_live_rates(explorer):
    cal = explorer.record
    assert explorer.threshold.value == cal["threshold"]
    val, scores = np.asarray(cal["val_scores"]), explorer.scores
    for t in (explorer.threshold.options[0][1], cal["threshold"], explorer.threshold.options[-1][1]):
        explorer.threshold.value = t  # the observer runs on_threshold
        n_val, flagged = int((val > t).sum()), int((scores > t).sum())
        assert f"{n_val} of {len(val)}</b> normal validation" in explorer.rates_html.value
        assert f"{flagged} of {len(scores)}</b> scored images flagged" in explorer.rates_html.value
        shown = explorer.rows[explorer.image.value]["score"]
        assert f"<b>{'anomalous' if shown > t else 'normal'}</b> at threshold" in explorer.info.value


def test_upload_scores_an_image_like_predict(explorer, mini, predicted):
    row = next(r for r in read_predictions(predicted) if r["name"] == "hole/001.png")
    content = (mini / "test" / "hole" / "001.png").read_bytes()
    explorer.upload.value = ({"name": "mine.png", "type": "image/png", "size": len(content),
                              "content": memoryview(content), "last_modified": datetime.now(timezone.utc)},)  # the observer scores it
    assert f"{row['score']:.4g}" in explorer.upload_info.value and "mine.png" in explorer.upload_info.value
    assert explorer.upload_picture.value[:8] == b"\x89PNG\r\n\x1a\n"
    got = explorer.score_file("again.png", content)
    assert got["score"] == pytest.approx(row["score"], rel=1e-4, abs=1e-4) and (got["x"], got["y"]) == (int(row["x"]), int(row["y"]))


@pytest.mark.parametrize("name, content, needle", [("bad.png", b"\x00garbage" * 20, "cannot decode"),
                                                   ("notes.txt", b"hello", "not an image")])
def test_bad_uploads_say_so_without_raising(explorer, name, content, needle):
    assert "error" in explorer.score_file(name, content)
    assert needle in explorer.upload_info.value and name in explorer.upload_info.value
    assert explorer.upload_picture.value == b""


def test_without_the_run_uploads_are_refused_politely(predicted):
    e = PredictionExplorer(predicted)
    assert "error" in e.score_file("x.png", b"...") and "PredictionExplorer(out, run)" in e.upload_info.value

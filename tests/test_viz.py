"""adlib.teach.viz: figure builders and the explorers' widget callbacks, driven without a browser."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from scipy import integrate, stats

from adlib.method import scoring
from adlib.teach import viz


def _titles(fig):
    return [a.text for a in fig.layout.annotations]


def test_chi_pdf_is_the_chi_density():
    for d in (1, 2, 3, 16, 192, 12288):
        r = np.linspace(1e-3, math.sqrt(d) + 8, 2000)
        assert np.allclose(viz.chi_pdf(r, d), stats.chi(d).pdf(r), rtol=1e-6, atol=1e-12)
        assert integrate.quad(lambda x: float(viz.chi_pdf(x, d)), 0, math.sqrt(d) + 12, points=[math.sqrt(d)],
                              limit=200)[0] == pytest.approx(1, abs=1e-6)
    assert viz.chi_pdf(0.0, 1) == pytest.approx(math.sqrt(2 / math.pi))
    assert viz.chi_pdf(0.0, 5) == 0


def test_sample_norms_follow_the_prior_and_the_shift():
    d = 3072
    r = viz.sample_norms(d, 4000, seed=1)
    assert r.mean() == pytest.approx(math.sqrt(d), rel=0.01) and r.std() == pytest.approx(1 / math.sqrt(2), rel=0.1)
    shifted = viz.sample_norms(d, 4000, shift=0.5, scale=1.0, seed=1)
    assert (shifted ** 2).mean() == pytest.approx(d * 1.25, rel=0.01)  # E||x||^2 = d (scale^2 + shift^2)
    assert np.array_equal(viz.sample_norms(64, 10, seed=3), viz.sample_norms(64, 10, seed=3))
    assert viz.prior_nll_from_norm(0.0, 4) == pytest.approx(2 * math.log(2 * math.pi))


def test_prior_figure_shows_reverse_scoring():
    fig, inside = viz.prior_figure(192, scale=0.9, n=500)
    assert isinstance(fig, go.Figure) and len(fig.data) == 3  # two histograms and the chi curve
    assert inside["auroc_nll"] < 0.2 and "reverse scoring" in fig.layout.title.text
    _, outside = viz.prior_figure(192, scale=1.1, n=500)
    assert outside["auroc_nll"] > 0.8
    _, shifted = viz.prior_figure(192, shift=0.5, scale=1.0, n=500)
    assert shifted["auroc_nll"] > 0.9 and shifted["sqrt_d"] == pytest.approx(math.sqrt(192))


def test_prior_explorer_callbacks_update_the_figure():
    ex = viz.PriorExplorer(d=16, shift=0.0, scale=0.9, n=300)
    assert "d = 16" in ex.figure.layout.title.text and ex.numbers["auroc_nll"] < 0.5
    ex.d.value = 3072  # an observe callback fires as in the browser
    assert "d = 3072" in ex.figure.layout.title.text
    assert ex.numbers["auroc_nll"] < 0.01  # higher d: the shell is sharper, the mis-ranking more decisive
    ex.scale.value = 1.2
    assert ex.numbers["auroc_nll"] > 0.99
    ex.shift.value = 0.5
    assert "N(0.5, 1.2² I)" in ex.figure.data[1].name


def test_local_anomalies_keep_the_nll_but_not_the_diff():
    x, labels = viz.local_anomaly_latents(channels=64, grid=8, n=300, patch=2, local_scale=2.0, seed=0)
    assert x.shape == (600, 64, 8, 8) and labels.sum() == 300
    sq = x.pow(2).flatten(1).sum(1).numpy()
    assert sq[labels == 1].mean() == pytest.approx(sq[labels == 0].mean(), rel=0.01)
    fig, aurocs = viz.score_histograms(scoring.raw_scores(x), labels)
    assert abs(aurocs["nll"] - 0.5) < 0.1 and aurocs["diff"] > 0.99
    assert len(fig.data) == 4 and "AUROC" in _titles(fig)[0]
    with pytest.raises(ValueError):
        viz.local_anomaly_latents(grid=4, patch=2, local_scale=2.0)  # 4 positions x 4 >= 16


def test_local_explorer_callbacks_and_clamping():
    ex = viz.LocalAnomalyExplorer(channels=32, grid=4, n=100, patch=1, local_scale=1.5)
    assert set(ex.aurocs) == {"nll", "diff"}
    before = ex.aurocs["diff"]
    ex.local_scale.value = 3.0
    assert ex.aurocs["diff"] > before
    ex.patch.value = 2  # 4 positions x 3.0^2 > 16: clamped instead of failing in the callback
    assert "2x2" in ex.figure.layout.title.text


def test_loss_figure_reads_loss_csv(tmp_path):
    csv = tmp_path / "loss.csv"
    csv.write_text("iter,loss,lr\n" + "".join(f"{i},{1 / i:.4f},{1e-3:.3e}\n" for i in range(1, 121)))
    fig = viz.loss_figure(csv, window=50)
    assert [t.name for t in fig.data] == ["loss", "loss, mean of 50", "learning rate"]
    assert len(fig.data[1].x) == 71 and fig.data[1].x[0] == 50
    one = tmp_path / "one.csv"
    one.write_text("iter,loss,lr\n1,0.5,1e-3\n")
    assert len(viz.loss_figure(one).data[0].y) == 1


def test_bar_figure():
    fig = viz.bar_figure({"EMA": {"nll": 0.9, "combined": 0.95}, "raw": {"nll": 0.8, "combined": 0.9}}, "t")
    assert [t.name for t in fig.data] == ["NLL only", "NLL + Diff"] and list(fig.data[0].y) == [0.9, 0.8]


def _latents(n=6, c=8, g=4, steps=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    states = [torch.randn(n, c, g, g, generator=gen) * (1 + k) for k in range(steps + 1)]
    images = torch.rand(n, 3, 32, 32, generator=gen)
    labels = np.array([0, 0, 0, 1, 1, 1])[:n]
    masks = np.zeros((n, 32, 32), bool)
    masks[labels == 1, :8, :8] = True
    return states, images, labels, masks


def test_trajectory_and_overlay_figures():
    states, images, labels, masks = _latents()
    fig = viz.trajectory_figure(states, 4, points=[0, 333, 666, 999])
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 4 and np.allclose(heat[-1].z, scoring.norm_map(states[-1][4:5])[0].numpy())
    assert _titles(fig)[0] == "z₀ (features)" and "999" in _titles(fig)[-1]
    fig = viz.overlay_figure(images[0], scoring.norm_map(states[-1][:1])[0], masks[0], title="x", zrange=(0, 9))
    assert [t.type for t in fig.data] == ["image", "image", "heatmap", "image"]
    assert fig.data[2].zmin == 0 and fig.data[2].zmax == 9 and np.asarray(fig.data[2].z).shape == (32, 32)
    assert len(viz.overlay_figure(images[0], torch.ones(4, 4)).data) == 3  # no mask, no third panel


def test_roc_figure_reports_adlib_auroc():
    labels = np.array([0, 0, 1, 1])
    fig = viz.roc_figure(labels, {"nll": np.array([0.1, 0.4, 0.35, 0.8])})
    assert "AUROC 0.750" in fig.data[0].name and fig.data[-1].name == "chance"


def test_position_labels_and_pca():
    states, _, labels, masks = _latents()
    pos = viz.position_labels(labels, masks, 4)
    assert pos.shape == (6, 4, 4)
    assert (pos[:3] == 0).all() and (pos[3:, 0, 0] == 2).all() and (pos[3:, 3, 3] == 1).all()
    assert (viz.position_labels(labels, None, 4)[3:] == 1).all()
    fig, xy = viz.pca_figure(states[-1], pos, max_points=20)
    assert xy.shape == (96, 2) and sum(len(t.x) for t in fig.data) == 20
    assert abs(xy.mean(0)).max() < 1e-6  # centred projections


def test_latent_explorer_callbacks():
    states, images, labels, masks = _latents()
    scores = {"nll": np.arange(6.0), "diff": np.arange(6.0)[::-1], "combined": np.ones(6)}
    ex = viz.LatentExplorer(images, states, scores, labels, masks, names=[f"img{i}" for i in range(6)],
                            points=[0, 333, 666, 999])
    assert ex.image.value == 3 and ex.step.value == 3 and ex.score.value == "combined"  # first anomalous, x_T
    assert "img3" in ex.figure.layout.title.text and len(_titles(ex.figure)) == 3 + 1  # 3 panels + the marker
    ex.image.value = 5
    ex.score.value = "nll"
    assert ex.figure.layout.title.text.startswith("img5: nll = 5")
    assert ex.figure.layout.shapes[0].x0 == 5.0  # the marker sits at this image's score
    ex.step.value = 0
    assert "step 0 (t = 0)" in _titles(ex.figure)[0]
    heat = [t for t in ex.figure.data if t.type == "heatmap"][0]
    assert (heat.zmin, heat.zmax) == ex.zrange[0]
    fig = ex.figure_for(1, 2, "diff")
    assert fig is not ex.figure and "img1" in fig.layout.title.text
    no_masks = viz.LatentExplorer(images, states, scores, labels)
    assert len(_titles(no_masks.figure)) == 2 + 1


def test_sweep_and_speed_figures():
    rows = [{"steps": s, "grid": g, "score": k, "image_auroc": 0.9 - 0.01 * s, "score_images_per_second": 100 / s}
            for s in (1, 3, 10) for g in ("paper", "reference") for k in ("nll", "diff", "combined")]
    fig = viz.sweep_figure(rows)
    assert len(fig.data) == 6 and list(fig.data[0].x) == [1, 3, 10] and list(fig.layout.xaxis.tickvals) == [1, 3, 10]
    assert viz.sweep_figure(rows, "score_images_per_second", log_y=True).layout.yaxis.type == "log"
    methods = [{"name": "invad S=3", "score": "combined", "image_auroc": 0.9, "images_per_second": 50.0},
               {"name": "reconstruction r=0.1 K=3", "image_auroc": 0.7, "images_per_second": 40.0},
               {"name": "padim", "image_auroc": 0.95, "images_per_second": 60.0}]
    fig = viz.speed_auroc_figure(methods, backbone_ips=70.0)
    assert [t.name for t in fig.data] == ["InvAD (ours)", "reconstruction", "PaDiM", "backbone alone"]
    assert list(fig.data[-1].x) == [70.0, 70.0] and not fig.layout.shapes


def test_ablation_table_and_figure():
    measured = {"nll": {3: 0.9, 5: 0.85}, "diff": {3: 0.8}, "combined": {3: 0.95}}
    md = viz.ablation_markdown(viz.PAPER_ABLATION, measured, [3, 5, 1000], where="mini")
    lines = md.strip().splitlines()
    assert len(lines) == 2 + 6 and "| NLL only | paper, MVTec AD | 96.1 | 95.2 | 89.1 |" in lines
    assert "| NLL only | mini | 90.0 | 85.0 | – |" in lines
    fig = viz.paper_vs_measured_figure(measured)
    assert len(fig.data) == 6 and list(fig.data[1].y) == [90.0, 85.0]


def test_compare_to_paper_is_computed_from_the_numbers():
    falling = {k: {3: 0.95 - 0.01 * i, 10: 0.90 - 0.01 * i, 50: 0.80} for i, k in enumerate(("combined", "diff", "nll"))}
    text = viz.compare_to_paper(falling, {3: 0.6, 10: 0.9})
    assert len(text) == 7
    assert all("the same trend" in t for t in text[:3])
    assert "the same order" in text[3] and "NLL + Diff (95.0) > Diff only (94.0) > NLL only (93.0)" in text[3]
    assert "4.0 points below the paper's 99.0" in text[4]
    assert "agrees: few-step reconstruction is clearly worse" in text[5] and "the same direction" in text[6]
    rising = {k: {3: 0.6, 50: 0.9} for k in ("nll", "diff", "combined")}
    text = viz.compare_to_paper(rising, {3: 0.99})
    assert all("a different trend" in t and "rises" in t for t in text[:3])
    assert "ties here cannot confirm" in text[3] and "better here" in text[5] and len(text) == 6
    reversed_order = {"nll": {3: 0.99}, "diff": {3: 0.90}, "combined": {3: 0.80}}
    assert "a different order" in viz.compare_to_paper(reversed_order)[0]
    assert viz.compare_to_paper({"nll": {1: 0.9}}) == []  # nothing comparable: say nothing
    saturated = viz.compare_to_paper({k: {3: 1.0, 50: 1.0} for k in ("nll", "diff", "combined")})
    assert "at the ceiling" in saturated[0] and "stays flat" in saturated[1]


def test_explorers_put_each_new_figure_into_their_output_widget():
    ex = viz.PriorExplorer(d=16, n=100)
    ex.scale.value = 1.3
    assert len(ex.out.outputs) == 1 and ex.out.outputs[0]["output_type"] == "display_data"
    assert ex.out.outputs[0]["data"]["application/vnd.plotly.v1+json"]["layout"]["title"]["text"] == \
        ex.figure.layout.title.text
    assert ex.figure.layout.title.text in ex.out.outputs[0]["data"]["text/plain"]
    states, images, labels, masks = _latents()
    lat = viz.LatentExplorer(images, states, {"nll": np.arange(6.0)}, labels, masks)
    lat.image.value = 0
    assert "image 0" in lat.out.outputs[0]["data"]["text/plain"]
    controls, out = lat.widget.children
    assert [type(c).__name__ for c in controls.children] == ["Dropdown", "IntSlider", "Dropdown"] and out is lat.out

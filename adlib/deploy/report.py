"""The pictures and the page of `adlib predict`: an anomaly map drawn over its image, DIR/report.html, and
reading DIR/predictions.csv back (adlib/predict.py writes it).

The page is for looking, not reading: a header in plain words (how many images were flagged, the false-alarm
rate the decisions promise, and the rule: above the threshold, or, with few good images, full conformal), the
score histogram of the new images over the good validation images with the threshold (none for full conformal),
the maps' colour bar, then a full-width grid of image | anomaly map | overlay per image (most anomalous first;
filter by decision, sort, click to enlarge), and the run and options in a closed <details>.
One self-contained file: inline CSS, SVG and script (adlib/deploy/report_page.py), no request outside DIR
(pictures are relative links to DIR/thumbs, DIR/heat and DIR/maps).
"""
import csv
import html
import json
from pathlib import Path
from urllib.parse import quote

import numpy as np

from adlib.deploy.report_page import CSS, SCRIPT, colour_bar, details_table, histogram_svg
from adlib.files import atomic_write_text
from adlib.runs.full_conformal import is_conformal

CSV, STATE, REPORT, MAPS, THUMBS, HEAT = "predictions.csv", "predict.json", "report.html", "maps", "thumbs", "heat"
HOT = 8.0  # overlay colour, on a log scale: clear at the normal images' typical ||x_T[:, i, j]||, full at HOT x it
# inferno-like colour scale, dark (weak) to pale yellow (strong)
LUT = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float64)
ALPHA = 0.7  # opacity of the colour at full strength
RING = {True: (214, 39, 40), False: (255, 255, 255)}  # the maximum's marker: red when anomalous


def colours(heat: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB floats (... x 3) on the LUT scale."""
    x = np.clip(heat, 0, 1) * (len(LUT) - 1)
    stops = np.arange(len(LUT))
    return np.stack([np.interp(x, stops, LUT[:, c]) for c in range(3)], axis=-1)


def overlay(image, heat: np.ndarray, marker=None, anomalous: bool = False):
    """`image` (PIL RGB) with `heat` (h x w in [0, 1], upsampled bilinearly) drawn over it, opacity rising with
    the heat, and a ring at `marker` (x, y in the image's pixels)."""
    from PIL import Image, ImageDraw
    h = np.asarray(Image.fromarray(np.asarray(heat, dtype=np.float32), mode="F").resize(image.size, Image.BILINEAR))
    alpha = (ALPHA * np.clip(h, 0, 1))[..., None]
    mixed = np.asarray(image, dtype=np.float64) * (1 - alpha) + colours(h) * alpha
    out = Image.fromarray(mixed.round().astype(np.uint8))
    if marker is not None:
        r = max(4, round(0.04 * max(image.size)))
        x, y = marker
        ImageDraw.Draw(out).ellipse((x - r, y - r, x + r, y + r), outline=RING[bool(anomalous)], width=max(2, r // 4))
    return out


def heat_picture(heat: np.ndarray, size):
    """The map alone: `heat` (h x w in [0, 1]) upsampled bilinearly to `size` (w, h) in the LUT's colours."""
    from PIL import Image
    h = np.asarray(Image.fromarray(np.asarray(heat, dtype=np.float32), mode="F").resize(size, Image.BILINEAR))
    return Image.fromarray(colours(h).round().astype(np.uint8))


def _pct(v) -> str:
    return f"{100 * v:.1f} %"


def promise(c: dict, le: str = "≤") -> str:
    """What the threshold promises on good images, from a calibration record: the rate that holds
    (`fpr_guaranteed`: with few validation images more than asked), and the target beside it when they differ."""
    g, target = c.get("fpr_guaranteed", c["fpr"]), c["fpr"]
    same = abs(g - target) < 5e-4  # equal as printed
    return f"false alarms on good images {le} {_pct(g)}" + ("" if same else f" (target {_pct(target)})")


def conformal_rule(c: dict) -> str:
    """A full-conformal record's decision in plain words: flagged when more unusual than all (but k) of its normals."""
    n = c["n_val"]
    k = int(np.floor(c["fpr_guaranteed"] * (n + 1) + 1e-9)) - 1  # p = (1 + #normals at or above) / (n + 1) <= rate
    than = f"all {n}" if k <= 0 else f"all but {k} of the {n}"
    return f"compared with the {n} good images the run was made from, and flagged when more unusual than {than}"


def _how_chosen(c: dict) -> str:
    """The threshold's story, from the calibration record."""
    if is_conformal(c):
        return (f"full conformal on the <b>{html.escape(c['score'])}</b> score: each image {conformal_rule(c)} "
                f"(p-value at most <b>{_pct(c['fpr_guaranteed'])}</b>; rate asked {_pct(c['fpr'])}); the "
                f"cross-fitted threshold {c['threshold']:.6g} is not used.")
    text = (f"threshold <b>{c['threshold']:.6g}</b> on the <b>{html.escape(c['score'])}</b> score, chosen on "
            f"<b>{c['n_val']}</b> normal validation images for a false-positive rate of at most <b>{_pct(c['fpr'])}</b>")
    g = c.get("fpr_guaranteed")
    if g is not None:
        text += (f"; with so few images the rate it can promise is <b>{_pct(g)}</b>" if g > c["fpr"] + 1e-12
                 else f"; guaranteed: at most <b>{_pct(g)}</b>")
    return text + "."


def _img(rel: str, alt: str) -> str:
    if not rel:
        return '<span>no picture</span>'
    url = html.escape(quote(rel))
    return f'<a href="{url}"><img src="{url}" loading="lazy" alt="{html.escape(alt)}"></a>'


def _card(r, out: Path) -> str:
    skipped = r["score"] is None
    pics = ""
    if not skipped and r["map"]:
        name = r["name"]
        thumb, heat = f"{THUMBS}/{name}.jpg", f"{HEAT}/{name}.png"
        pics = ('<div class="pics">' + _img(thumb, f"{name}: image") +
                (_img(heat, f"{name}: anomaly map") if (out / heat).is_file() else "<span>no map</span>") +
                _img(r["map"], f"{name}: map over the image") +
                "<span>image</span><span>anomaly map</span><span>overlay</span></div>")
    score = "" if skipped else f"{r['score']:.6g}"
    p = "" if r.get("p_value") is None else f" · p {r['p_value']:.3f}"
    where = "could not be read" if skipped else f"max at ({r['x']}, {r['y']})"
    label = {"anomalous": "flagged", "normal": "normal", "skipped": "skipped"}.get(r["decision"], r["decision"])
    return (f'<figure class="card {r["decision"]}" data-score="{score}" data-name="{html.escape(r["name"])}">{pics}'
            f'<figcaption><span class="tag">{label}</span><span class="name" title="{html.escape(r["path"])}">'
            f'{html.escape(r["name"])}</span><span class="score">score {score or "–"}{p}</span></figcaption>'
            f'<div class="where">{where}</div></figure>')


def _method_link() -> str:
    """The README's method section, when the README is beside the package (a local file, never the network)."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    where = "the README's section “The method in five lines”"
    return f'<a href="{readme.as_uri()}#the-method-in-five-lines">{where}</a>' if readme.is_file() else where


def render(rows: list, state: dict, out: Path = Path(".")) -> str:
    """The whole page, from the prediction rows and DIR/predict.json (pictures are looked up under `out`)."""
    c = state["calibration"]
    order = sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0), r["name"]))
    counts = {k: sum(r["decision"] == k for r in rows) for k in ("anomalous", "normal", "skipped")}
    scored = counts["anomalous"] + counts["normal"]
    title = f"{counts['anomalous']} of {scored} images flagged"
    conformal = is_conformal(c)
    rule = (f"Each image is {conformal_rule(c)} (full conformal)." if conformal else
            "An image is flagged when its score is above the threshold.")
    head = (f"<header><h1><span class=bad>{counts['anomalous']}</span> of {scored} images flagged</h1>"
            f"<p class=sub>{'This promises' if conformal else 'The threshold promises'} {promise(c)}.</p>"
            + (f"<p class=sub>{counts['skipped']} skipped: the file(s) could not be read.</p>" if counts["skipped"] else "")
            + (f"<p class=note>{html.escape(c['warning'])}</p>" if c.get("warning") else "")
            + f"<p class=sub style='font-size:.95em'>{rule} How scores and decisions are made: "
              f"{_method_link()}.</p></header>")
    new = [r["score"] for r in order if r["score"] is not None]
    flagged = [r["decision"] == "anomalous" for r in order if r["score"] is not None]
    normals = c.get("val_scores") or []
    hist = histogram_svg(new, flagged, normals, None if conformal else c["threshold"]) if new else \
        "<p>No image could be scored.</p>"
    legend = (f"<p><b>Anomaly map colours</b>: how unusual each region is, relative to good images (log scale).</p>"
              f"{colour_bar(LUT, HOT)}<p>The ring marks the most unusual spot (red when the image is flagged). "
              f"Click a picture to enlarge it.</p>" if state.get("maps") else "<p>Maps were not drawn (--no-maps).</p>")
    hist_note = (f"<p style='color:#6b7280;font-size:.9em'>Above the axis: the {len(new)} new images (red: flagged). "
                 + (f"Below: the {len(normals)} good images, each scored by a model fitted without it. No threshold "
                    f"line: each new image is ranked among the good ones under a model refitted with it, so its "
                    f"decision is not a cut on this axis.</p>" if conformal else
                    f"Below: the {len(normals)} good validation images the threshold was chosen on.</p>"))
    buttons = "".join(f'<button data-show="{k}" aria-pressed="{str(k == "all").lower()}">{t} ({n})</button>'
                      for k, t, n in (("all", "All", len(rows)), ("anomalous", "Flagged", counts["anomalous"]),
                                      ("normal", "Normal", counts["normal"]), ("skipped", "Skipped", counts["skipped"]))
                      if k != "skipped" or n)
    controls = (f'<div class="controls">{buttons}<label>Sort <select><option value="high">score, highest first</option>'
                f'<option value="low">score, lowest first</option><option value="name">name</option></select></label>'
                f'<span class="count"></span></div>')
    grid = '<div class="grid" data-show="all">' + "\n".join(_card(r, out) for r in order) + "</div>"
    settings = {"run": f"<code>{html.escape(state['run'])}</code> ({html.escape(state['weights'])} weights)",
                "inversion": f"S = {state['steps']} steps on the {html.escape(state['grid'])} grid",
                "score": html.escape(state["score"]), "threshold": _how_chosen(c),
                "chosen from the good images": html.escape(state.get("choice") or "nothing (no --standardize auto)"),
                "method": html.escape(str(c.get("method", ""))), "calibration source": html.escape(str(c.get("source", ""))),
                "engine": html.escape(f"{state.get('engine', 'torch')} ({state.get('engine_reason', '')})"),
                "inputs": "<br>".join(f"<code>{html.escape(i)}</code>" for i in state.get("inputs", [])),
                "maps": "drawn" if state.get("maps") else "not drawn (--no-maps)"}
    details = f"<details><summary>Run and options used</summary>{details_table(settings)}</details>"
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<title>adlib predict: {title}</title><style>{CSS}</style></head><body>{head}<main>"
            f"<div class=row><div class=hist>{hist}{hist_note}</div><div class=legend>{legend}</div></div>"
            f"{controls}{grid}{details}</main><script>{SCRIPT}</script></body></html>\n")


def read_predictions(out) -> list:
    """DIR/predictions.csv as dicts, score as a float (None when skipped)."""
    with open(Path(out) / CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["score"] = float(r["score"]) if r["score"] else None
        r["p_value"] = float(r["p_value"]) if r.get("p_value") else None
    return rows


def write_report(out) -> Path:
    """DIR/report.html rebuilt from DIR/predictions.csv and DIR/predict.json."""
    out = Path(out)
    state = json.loads((out / STATE).read_text())
    return atomic_write_text(out / REPORT, render(read_predictions(out), state, out))

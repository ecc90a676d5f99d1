"""The pictures and the page of `adlib predict`: an anomaly map drawn over its image, DIR/report.html, and
reading DIR/predictions.csv back (adlib/predict.py writes it).

The page opens offline: inline CSS, no script, no request outside DIR (pictures are relative links to
DIR/maps and DIR/thumbs). Images are sorted by score, most anomalous first, with the threshold and how it
was chosen (the calibration record in DIR/predict.json).
"""
import csv
import html
import json
from pathlib import Path
from urllib.parse import quote

import numpy as np

from adlib.files import atomic_write_text

CSV, STATE, REPORT, MAPS, THUMBS = "predictions.csv", "predict.json", "report.html", "maps", "thumbs"
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


def _pct(v) -> str:
    return f"{100 * v:.1f} %"


def _how_chosen(c: dict) -> str:
    """The threshold's story, from the calibration record."""
    text = (f"threshold <b>{c['threshold']:.6g}</b> on the <b>{html.escape(c['score'])}</b> score, chosen on "
            f"<b>{c['n_val']}</b> normal validation images for a false-positive rate of at most <b>{_pct(c['fpr'])}</b>")
    g = c.get("fpr_guaranteed")
    if g is not None:
        text += (f"; with so few images the rate it can promise is <b>{_pct(g)}</b>" if g > c["fpr"] + 1e-12
                 else f"; guaranteed: at most <b>{_pct(g)}</b>")
    text += f". Method: {html.escape(str(c.get('method', '')))}. Source: {html.escape(str(c.get('source', '')))}."
    if c.get("warning"):
        text += f"<br><span class=warn>warning: {html.escape(c['warning'])}</span>"
    return text


CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}
th{background:#f4f4f4;position:sticky;top:0}.anomalous{color:#d62728;font-weight:600}.normal{color:#1f77b4}
.skipped{color:#888}img{display:block;max-width:160px;max-height:160px}.warn{color:#b35900}
.num{font-variant-numeric:tabular-nums;text-align:right}p{max-width:70em}"""


def _picture(rel: str) -> str:
    if not rel:
        return "<td></td>"
    url = html.escape(quote(rel))
    return f'<td><a href="{url}"><img src="{url}" loading="lazy" alt=""></a></td>'


def _row(rank, r) -> str:
    skipped = r["score"] is None
    thumb = "" if skipped or not r["map"] else f"{THUMBS}/{r['name']}.jpg"
    where = "" if skipped else f"({r['x']}, {r['y']})"
    score = "" if skipped else f"{r['score']:.6g}"
    return (f"<tr><td class=num>{rank}</td>{_picture(thumb)}{_picture(r['map'])}"
            f"<td title=\"{html.escape(r['path'])}\">{html.escape(r['name'])}</td><td class=num>{score}</td>"
            f"<td class={r['decision']}>{r['decision']}</td><td class=num>{where}</td></tr>")


def render(rows: list, state: dict) -> str:
    """The whole page, from the prediction rows and DIR/predict.json."""
    c = state["calibration"]
    order = sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0), r["name"]))
    counts = {k: sum(r["decision"] == k for r in rows) for k in ("anomalous", "normal", "skipped")}
    legend = (f"Colour: ‖x<sub>T</sub>[:, i, j]‖ at each position relative to its typical value on normal images, "
              f"clear at 1× or below, full at {HOT:g}× (log scale); the ring marks the maximum, whose (x, y) in the original "
              f"image's pixels is listed." if state.get("maps") else "Maps were not drawn (--no-maps).")
    head = (f"<h1>adlib predict: {len(rows)} images</h1>"
            f"<p><b class=anomalous>{counts['anomalous']} anomalous</b>, <b class=normal>{counts['normal']} normal</b>"
            + (f", <b class=skipped>{counts['skipped']} skipped</b> (undecodable)" if counts["skipped"] else "")
            + f".</p><p>Run <code>{html.escape(state['run'])}</code> ({html.escape(state['weights'])} weights), "
            f"S = {state['steps']} inversion steps on the {html.escape(state['grid'])} grid.</p>"
            f"<p>An image is anomalous when its score exceeds the {_how_chosen(c)}</p><p>{legend}</p>")
    table = ("<table><thead><tr><th>#</th><th>image</th><th>map</th><th>name</th><th>score</th><th>decision</th>"
             "<th>max (x, y)</th></tr></thead><tbody>"
             + "\n".join(_row(k, r) for k, r in enumerate(order, 1)) + "</tbody></table>")
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>adlib predict</title>"
            f"<style>{CSS}</style></head><body>{head}{table}</body></html>\n")


def read_predictions(out) -> list:
    """DIR/predictions.csv as dicts, score as a float (None when skipped)."""
    with open(Path(out) / CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["score"] = float(r["score"]) if r["score"] else None
    return rows


def write_report(out) -> Path:
    """DIR/report.html rebuilt from DIR/predictions.csv and DIR/predict.json."""
    out = Path(out)
    state = json.loads((out / STATE).read_text())
    return atomic_write_text(out / REPORT, render(read_predictions(out), state))

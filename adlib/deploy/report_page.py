"""The self-contained parts of DIR/report.html (adlib/deploy/report.py assembles the page): its style sheet, its
small script (filter by decision, sort, click to enlarge) and the score histogram as inline SVG. Nothing here
loads anything from outside the page."""
import html

import numpy as np

CSS = """
:root{--bad:#c62828;--good:#1f6fb4;--muted:#6b7280;--line:#e5e7eb;--bg:#f7f7f8}
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#fff}
header{padding:1.2em 2em 1em;background:var(--bg);border-bottom:1px solid var(--line)}
h1{font-size:1.7em;margin:0 0 .2em}h1 .bad{color:var(--bad)}.sub{font-size:1.1em;margin:.1em 0;color:#374151}
.note{color:#8a4b00;background:#fff4e0;border:1px solid #f3d19c;border-radius:6px;padding:.4em .7em;margin:.6em 0 0;
 max-width:70em}a{color:var(--good)}
main{padding:1em 2em 2em}.row{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
.hist{flex:1 1 520px;max-width:760px}.hist svg{width:100%;height:auto}.legend{flex:1 1 280px;max-width:420px}
.bar{height:14px;border-radius:3px;border:1px solid #ccc}.ticks{display:flex;justify-content:space-between;
 font-size:.85em;color:var(--muted)}
.controls{display:flex;flex-wrap:wrap;gap:.5em;align-items:center;margin:1.2em 0 .8em;position:sticky;top:0;
 background:#fffe;padding:.5em 0;z-index:2;border-bottom:1px solid var(--line)}
.controls button{border:1px solid #cbd5e1;background:#fff;border-radius:999px;padding:.3em .9em;cursor:pointer;font:inherit}
.controls button[aria-pressed=true]{background:#1f2328;color:#fff;border-color:#1f2328}
.controls select{font:inherit;padding:.25em}.count{color:var(--muted);margin-left:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:14px}
.card{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px;background:#fff}
.card.anomalous{border-color:#f1a7a7;box-shadow:inset 4px 0 0 var(--bad)}.card.skipped{opacity:.6}
.pics{display:grid;grid-template-columns:repeat(3,1fr);gap:4px}
.pics img{width:100%;aspect-ratio:1;object-fit:contain;background:#111;border-radius:4px;cursor:zoom-in;display:block}
.pics span{font-size:.75em;color:var(--muted);text-align:center}
figcaption{display:flex;gap:.6em;align-items:baseline;margin-top:6px;font-size:.92em}
.name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;flex:1}.score{font-variant-numeric:tabular-nums}
.tag{font-size:.8em;font-weight:600;padding:.1em .5em;border-radius:999px;background:#e8f0fa;color:var(--good)}
.anomalous .tag{background:#fde8e8;color:var(--bad)}.skipped .tag{background:#eee;color:#555}
.grid[data-show=anomalous] .card:not(.anomalous),.grid[data-show=normal] .card:not(.normal),
.grid[data-show=skipped] .card:not(.skipped){display:none}
.where{font-size:.8em;color:var(--muted);margin-top:2px}
details{margin-top:2em;max-width:80em}summary{cursor:pointer;font-weight:600}
details table{border-collapse:collapse;margin:.6em 0}details td{padding:3px 10px;border-bottom:1px solid var(--line);
 vertical-align:top}details td:first-child{color:var(--muted);white-space:nowrap}
.zoom{position:fixed;inset:0;background:#000d;display:flex;align-items:center;justify-content:center;z-index:9;
 cursor:zoom-out;flex-direction:column;color:#eee}
.zoom img{max-width:94vw;max-height:88vh;image-rendering:auto;background:#111}
"""

SCRIPT = """
const grid = document.querySelector('.grid'), cards = [...grid.children];
const count = document.querySelector('.count');
function shown(){ count.textContent = cards.filter(c => c.offsetParent !== null).length + ' shown'; }
document.querySelectorAll('.controls button').forEach(b => b.addEventListener('click', () => {
  document.querySelectorAll('.controls button').forEach(x => x.setAttribute('aria-pressed', x === b));
  grid.dataset.show = b.dataset.show; shown(); }));
document.querySelector('.controls select').addEventListener('change', e => {
  const sc = c => c.dataset.score === '' ? null : +c.dataset.score;  // skipped files stay last
  const num = dir => (a, b) => (sc(a) === null || sc(b) === null) ? (sc(a) === null) - (sc(b) === null)
                                                                    : dir * (sc(a) - sc(b));
  const by = {high: num(-1), low: num(1), name: (a, b) => a.dataset.name.localeCompare(b.dataset.name)}[e.target.value];
  cards.sort(by).forEach(c => grid.appendChild(c)); });
grid.addEventListener('click', e => {
  const img = e.target.closest('img'); if (!img) return; e.preventDefault();
  const z = document.createElement('div'); z.className = 'zoom';
  const big = document.createElement('img'); big.src = img.src; big.alt = img.alt;
  const cap = document.createElement('p'); cap.textContent = img.alt;
  z.append(big, cap); z.addEventListener('click', () => z.remove()); document.body.append(z); });
document.addEventListener('keydown', e => { if (e.key === 'Escape') document.querySelectorAll('.zoom').forEach(z => z.remove()); });
shown();
"""


def histogram_svg(new: list, anomalous: list, normals: list, threshold: float = None, bins: int = 28) -> str:
    """Inline SVG: the new images' scores (bars up, red when flagged) over the good validation images' (bars down,
    grey), with the threshold as a dashed line (None: decisions by full conformal, no single threshold).
    new/anomalous: scores and decisions; normals: scores."""
    every = [float(v) for v in [*new, *normals, threshold] if v is not None and np.isfinite(v)]
    lo, hi = min(every), max(every)
    pad = (hi - lo) * 0.04 or max(abs(hi), 1.0) * 0.05
    lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, bins + 1)
    up_bad = np.histogram([v for v, a in zip(new, anomalous) if a], edges)[0]
    up_ok = np.histogram([v for v, a in zip(new, anomalous) if not a], edges)[0]
    down = np.histogram(normals, edges)[0]
    W, H, L, R, mid = 640, 236, 34, 12, 118  # width, height, margins, the axis' y
    top = max(1, int((up_bad + up_ok).max()), int(down.max()) if len(down) else 1)
    unit = 88 / top
    x = lambda v: L + (v - lo) / (hi - lo) * (W - L - R)
    bw = (W - L - R) / bins
    parts = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="score histogram" xmlns="http://www.w3.org/2000/svg" '
             f'font-size="11" font-family="system-ui,sans-serif">']
    for k in range(bins):
        x0 = L + k * bw + 0.5
        h_ok, h_bad, h_down = up_ok[k] * unit, up_bad[k] * unit, down[k] * unit
        if h_ok:
            parts.append(f'<rect x="{x0:.1f}" y="{mid - h_ok:.1f}" width="{bw - 1:.1f}" height="{h_ok:.1f}" fill="#1f6fb4"/>')
        if h_bad:
            parts.append(f'<rect x="{x0:.1f}" y="{mid - h_ok - h_bad:.1f}" width="{bw - 1:.1f}" height="{h_bad:.1f}" '
                         f'fill="#c62828"/>')
        if h_down:
            parts.append(f'<rect x="{x0:.1f}" y="{mid + 1:.1f}" width="{bw - 1:.1f}" height="{h_down:.1f}" fill="#9ca3af"/>')
    parts.append(f'<line x1="{L}" x2="{W - R}" y1="{mid + .5}" y2="{mid + .5}" stroke="#374151"/>')
    for v in np.linspace(lo + pad, hi - pad, 5):
        parts.append(f'<text x="{x(v):.1f}" y="{H - 6}" text-anchor="middle" fill="#6b7280">{v:.3g}</text>')
    tx = None if threshold is None else x(threshold)
    if tx is not None:
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="16" y2="{mid + 92}" stroke="#c62828" stroke-width="2" '
                     f'stroke-dasharray="5 3"/><text x="{tx + 4:.1f}" y="12" fill="#c62828">threshold {threshold:.4g}'
                     f'</text>')
    parts.append(f'<text x="{W - R}" y="26" text-anchor="end" fill="#1f2328">▲ new images ({len(new)})</text>'
                 f'<text x="{W - R}" y="{mid + 18}" text-anchor="end" fill="#6b7280">▼ good validation images '
                 f'({len(normals)})</text><text x="{L - 4}" y="{H - 4}" text-anchor="end" fill="#6b7280">score</text></svg>')
    return "".join(parts)


def colour_bar(lut, hot: float) -> str:
    """The overlay's colour scale as a CSS gradient with its meaning underneath."""
    stops = ", ".join(f"rgb({int(r)},{int(g)},{int(b)})" for r, g, b in lut)
    return (f'<div class="bar" style="background:linear-gradient(to right, {stops})"></div>'
            f'<div class="ticks"><span>typical of good images</span><span>{hot ** 0.5:.3g}×</span>'
            f'<span>{hot:g}× typical or more</span></div>')


def details_table(items: dict) -> str:
    return "<table>" + "".join(f"<tr><td>{html.escape(str(k))}</td><td>{v}</td></tr>" for k, v in items.items()) + "</table>"

"""An ipywidgets explorer over the output of `adlib predict` / `Run.predict` (notebook 06).

Choose an image (sorted by score) and see its map over it; move a threshold and see, live, the rate of the
calibration's normal validation images above it and how many of the scored images it flags; upload an image
to score it with the same run and calibration. Callbacks are plain methods, so tests drive them without a browser.
"""
import io
import json
import tempfile
from pathlib import Path

import numpy as np

MAX_OPTIONS = 400  # threshold slider positions: every validation score, the calibrated threshold, folder quantiles


def threshold_options(val_scores, scores, threshold, most: int = MAX_OPTIONS) -> list:
    """Sorted candidate thresholds: where the validation rate or the flagged count can change."""
    scores = np.sort(np.asarray(scores, dtype=float))
    if len(scores) > most:
        scores = np.quantile(scores, np.linspace(0, 1, most))
    return sorted({float(v) for v in np.concatenate([np.asarray(val_scores, float), scores, [threshold]])})


def rates(val_scores, scores, t: float) -> dict:
    """At threshold t: validation normals above it (the false-positive rate there) and images flagged."""
    v, s = np.asarray(val_scores, dtype=float), np.asarray(scores, dtype=float)
    return {"threshold": float(t), "val_above": int((v > t).sum()), "n_val": len(v),
            "val_fpr": float((v > t).mean()) if len(v) else float("nan"),
            "flagged": int((s > t).sum()), "n": len(s)}


class PredictionExplorer:
    """`.widget`: image chooser and its map, threshold slider with live rates, and an upload box.

    out: a folder written by Run.predict; run: the same Run, needed only to score uploads."""

    def __init__(self, out, run=None):
        import ipywidgets as w
        from adlib.data.images import IMAGE_SUFFIXES
        from adlib.deploy.report import STATE, read_predictions
        self.out, self.run, self._predictor = Path(out), run, None
        self.state = json.loads((self.out / STATE).read_text())
        self.record = self.state["calibration"]
        rows = [r for r in read_predictions(self.out) if r["score"] is not None]
        self.rows = sorted(rows, key=lambda r: -r["score"])
        self.scores = np.array([r["score"] for r in self.rows])
        self.val = np.asarray(self.record.get("val_scores", []), dtype=float)
        options = [(f"{k}. {r['name']} ({r['score']:.4g})", k - 1) for k, r in enumerate(self.rows, 1)]
        self.image = w.Dropdown(options=options, value=0 if options else None, description="image",
                                layout=w.Layout(width="460px"))
        self.picture, self.info = w.Image(format="png", width=320), w.HTML()
        t = self.record["threshold"]
        self.threshold = w.SelectionSlider(options=[(f"{v:.4g}", v) for v in threshold_options(self.val, self.scores, t)],
                                           value=t, description="threshold", continuous_update=True,
                                           layout=w.Layout(width="460px"))
        self.rates_html = w.HTML()
        self.upload = w.FileUpload(accept=",".join(IMAGE_SUFFIXES), multiple=False, description="score an image")
        self.upload_picture, self.upload_info = w.Image(format="png", width=320), w.HTML()
        self.image.observe(self.show, names="value")
        self.threshold.observe(self.on_threshold, names="value")
        self.upload.observe(self.on_upload, names="value")
        self.widget = w.VBox([w.HBox([self.image]), w.HBox([self.picture, self.info]),
                              w.HBox([self.threshold]), self.rates_html,
                              w.HBox([self.upload]), w.HBox([self.upload_picture, self.upload_info])])
        self.on_threshold()

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def decision(self, score: float) -> str:
        return "anomalous" if score > self.threshold.value else "normal"

    def show(self, change=None) -> dict:
        """Show the chosen image's map and numbers; returns its row."""
        if not self.rows:
            self.info.value = "no scored images"
            return {}
        r = self.rows[self.image.value]
        self.picture.value = (self.out / r["map"]).read_bytes() if r["map"] else b""
        made = (f"{r['decision']} by full conformal, p = {r['p_value']:.3f}" if r.get("p_value") is not None
                else f"{r['decision']} at {self.record['threshold']:.4g}")
        self.info.value = (f"<b>{r['name']}</b><br>score {r['score']:.4g}: <b>{self.decision(r['score'])}</b> at "
                           f"threshold {self.threshold.value:.4g} (calibrated: {made})<br>map maximum at (x, y) = "
                           f"({r['x']}, {r['y']})")
        return r

    def on_threshold(self, change=None) -> dict:
        """Update the live rates (and the chosen image's decision) for the slider's threshold."""
        now = rates(self.val, self.scores, self.threshold.value)
        self.rates_html.value = (
            f"threshold {now['threshold']:.4g}: <b>{now['val_above']} of {now['n_val']}</b> normal validation "
            f"images above it (false-positive rate {now['val_fpr']:.1%}); <b>{now['flagged']} of {now['n']}</b> "
            f"scored images flagged anomalous")
        self.show()
        return now

    @property
    def predictor(self):
        from adlib.deploy.predict import Predictor
        if self._predictor is None:
            self._predictor = Predictor(self.run, self.state["steps"], self.state["grid"], record=self.record)
        return self._predictor

    def score_file(self, name: str, content: bytes) -> dict:
        """Score one uploaded image: shows its map and numbers; returns its row (or {"error": ...})."""
        from adlib.data.images import IMAGE_SUFFIXES
        from adlib.errors import AdlibError
        suffix = Path(name).suffix.lower()
        if self.run is None:
            return self._upload_error("to score uploads, give the run: PredictionExplorer(out, run)")
        if suffix not in IMAGE_SUFFIXES:
            return self._upload_error(f"{name}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(bytes(content))
            try:
                r = self.predictor.batch([str(path)], skip_bad=True)[0]
                if "error" in r:
                    return self._upload_error(f"{name}: cannot decode this image")
                img, _ = self.predictor.overlay(r)
            except AdlibError as e:
                return self._upload_error(f"{name}: {e}")
        buf = io.BytesIO()
        img.save(buf, "PNG")
        self.upload_picture.value = buf.getvalue()
        self.upload_info.value = (f"<b>{name}</b><br>score {r['score']:.4g}: <b>{self.decision(r['score'])}</b> at "
                                  f"threshold {self.threshold.value:.4g}<br>map maximum at (x, y) = ({r['x']}, {r['y']})")
        return {k: v for k, v in r.items() if k != "amap"}

    def _upload_error(self, text: str) -> dict:
        self.upload_picture.value = b""
        self.upload_info.value = f"<span style='color:#d62728'>{text}</span>"
        return {"error": text}

    def on_upload(self, change=None):
        """Score the uploaded file; returns its row."""
        results = [self.score_file(f["name"], f["content"]) for f in self.upload.value or ()]
        return results[-1] if results else None

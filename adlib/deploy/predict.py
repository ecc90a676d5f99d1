"""`adlib predict RUN INPUT... --out DIR`: score image files and folders with a trained run, in a stream.

Per batch: decode, the engine's scoring step (below), then each image's overlay in DIR/maps and its row
appended to DIR/predictions.csv (rewritten through a temporary file and renamed: a row is there whole or not
at all, after its map). Memory is one batch, whatever the number of images. DIR/predict.json records the run
and the settings; a rerun with the same ones skips the images already in the CSV, so an interrupted run loses
nothing and writes nothing twice. DIR/report.html is rebuilt from the CSV at the end (adlib/report.py).

Engines (the scoring step of a decoded batch, in adlib/predict_engines.py; --engine auto | torch | onnx, --onnx FILE):
  torch  backbone -> standardise -> S-step inversion -> raw scores -> the calibration's decision
         (`calibration.decide`), the kit's own path (TorchEngine).
  onnx   the run exported by `adlib export` as one graph, under onnxruntime on the CPU (OnnxEngine, with
         adlib.deploy.export.OnnxScorer): the same decoded batch in, score, norm map and decision out, within
         adlib.deploy.export.SCORE_TOL / MAP_TOL of torch (~3x faster on a CPU, docs/bench/export-speed.md). The graph's
         metadata must match the run (its fingerprint, image size, bit depth, model, weights) and the settings
         (steps, grid, score, fpr, threshold), else it is refused in one line before anything is written.
  auto   (default) onnx when onnxruntime is installed, the run scores on the CPU and `adlib export RUN` has written
         the graph for exactly these settings (adlib.deploy.export.default_path: RUN/export/<weights>-<steps>-<grid>-
         <score>-<fpr>.onnx); otherwise torch. A rerun into a DIR keeps the engine DIR was started with.
The engine is part of DIR's identity (predict.json): a rerun with another engine is refused, as with other
settings.

Decisions (--decision, also part of DIR's identity): `auto` takes the calibration's. A cross-fitted run with fewer
than 50 normals decides by full conformal (adlib/runs/full_conformal.py): each image is ranked among the normals
under the model refitted on them and it, and flagged when its p-value (CSV column p_value; threshold left empty)
is at most the rate promised; that rate is then realised, where the cross-fitted threshold realises a fraction
of it (docs/bench/few-shot.md). Torch only: `--decision threshold` uses the threshold (and an exported graph).

Names: a single folder's images are named by their path inside it; otherwise by their path relative to the
folder that holds all the inputs. DIR/maps/<name> is the overlay (a non-PNG name gets `.png` appended); the
report also shows DIR/thumbs/<name>.jpg (the image) and DIR/heat/<name>.png (the map alone), 256 px.
"""
import csv
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from adlib.data.datasets import Sample, images_under
from adlib.data.images import IMAGE_SUFFIXES, open_image, scaled_array, upright_size
from adlib.deploy.engines import LEGACY, TorchEngine, choose_engine
from adlib.deploy.report import CSV, HEAT, HOT, MAPS, STATE, THUMBS, heat_picture, overlay, read_predictions, write_report
from adlib.errors import AdlibError
from adlib.features.cache import decode
from adlib.files import atomic_path, write_json
from adlib.runs import full_conformal
from adlib.runs.choice import describe
from adlib.runs.run import fingerprint

COLUMNS = ("path", "name", "score", "threshold", "decision", "x", "y", "map", "p_value")  # p: full conformal only
# settings that must agree for a rerun to continue DIR (the flag named in the error)
IDENTITY = {"run": "RUN", "weights": "--weights", "steps": "--steps", "grid": "--grid", "score": "--score",
            "fpr": "--fpr", "maps": "--no-maps", "inputs": "INPUT", "fingerprint": "RUN", "threshold": "--fpr",
            "engine": "--engine", "decision": "--decision"}
ENGINES = ("auto", "torch", "onnx")
MAP_SIDE, THUMB_SIDE = 512, 256  # longest side of the overlays and of the report's thumbnails and maps, in pixels


# ---------------------------------------------------------------- inputs, run and output folder

def find_images(inputs, skip=None) -> list:
    """[(absolute path, name)] of the images in `inputs` (files, and folders searched recursively: image
    suffixes in any case, hidden files and folders skipped), without repeats; `skip`: a folder to leave out."""
    if not inputs:
        raise AdlibError("no INPUT given: name image files or folders to score")
    files, folders = [], []
    for given in inputs:
        p = Path(given).expanduser()
        if p.is_dir():
            found = [Path(os.path.abspath(f)) for f in images_under(p, skip=skip)]
            if not found:
                raise AdlibError(f"input folder {given} holds no images ({', '.join(IMAGE_SUFFIXES)}, found "
                                 f"recursively, hidden files skipped)")
            files += found
            folders.append(Path(os.path.abspath(p)))
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise AdlibError(f"input {given} is not an image file: use {', '.join(IMAGE_SUFFIXES)} files or folders")
            files.append(Path(os.path.abspath(p)))
        else:
            raise AdlibError(f"input {given} does not exist")
    files = list(dict.fromkeys(files))
    root = folders[0] if len(inputs) == 1 and folders else \
        Path(os.path.commonpath([str(Path(os.path.abspath(Path(g).expanduser())).parent) for g in inputs]))
    return [(str(f), f.relative_to(root).as_posix()) for f in files]


def map_name(name: str) -> str:
    """maps/<name>, ending in .png: a.png -> maps/a.png, a.jpg -> maps/a.jpg.png (never two images on one map)."""
    return f"{MAPS}/{name}" + ("" if name.lower().endswith(".png") else ".png")


def check_out(out: Path, state: dict):
    """Refuse an output folder that holds something else: other files, another run's predictions, or
    predictions made with other settings (the option is named)."""
    if out.exists() and not out.is_dir():
        raise AdlibError(f"--out {out} is a file: give a folder for the predictions")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / STATE).is_file():
        raise AdlibError(f"--out {out} is not empty and holds no {STATE}: give a new or empty folder")
    try:
        saved = json.loads((out / STATE).read_text())
    except ValueError:
        raise AdlibError(f"{out / STATE} is damaged: give a new --out, or delete {out}") from None
    for key, flag in IDENTITY.items():
        was = saved.get(key, LEGACY.get(key))
        if was != state[key]:
            what = (f"of run {saved.get('run')}" if key == "run" else
                    f"of another version of run {state['run']} (its weights, calibration or settings changed)"
                    if flag == "RUN" else f"made with {_setting(key, was)}, not {_setting(key, state[key])}")
            raise AdlibError(f"--out {out} holds predictions {what}: give another --out, or delete {out} to start over")


def _setting(key: str, value) -> str:
    """A setting as the command line gives it, for messages."""
    if key == "maps":
        return "maps" if value else "--no-maps"
    if key == "inputs":
        return "INPUT " + (" ".join(value[:2]) + (" ..." if len(value) > 2 else "") if value else "(none)")
    if key == "threshold":
        return f"threshold {value:.6g} (the run's calibration changed; --fpr)"
    return f"{IDENTITY[key]} {value:.6g}" if isinstance(value, float) else f"{IDENTITY[key]} {value}"


# ---------------------------------------------------------------- scoring a batch: adlib/predict_engines.py


class Predictor:
    """A run with one calibration record: `batch(paths)` scores images, `overlay(row)` draws one's map.

    engine: what scores a decoded batch (TorchEngine, the default, or OnnxEngine); settable after creation."""

    def __init__(self, run, steps=None, grid=None, score=None, fpr=None, record=None, engine=None, decision="auto"):
        from adlib.method.inversion import make_grid
        self.run = run
        self.steps = run.cfg.steps if steps is None else steps
        self.grid = grid or run.cfg.grid
        try:
            make_grid(self.steps, self.grid)
        except ValueError as e:
            raise AdlibError(f"--steps {self.steps}: {e}") from None
        if fpr is not None and not 0 < fpr < 1:
            raise AdlibError(f"--fpr {fpr} must be between 0 and 1, e.g. 0.05")
        self.record = full_conformal.resolve(run, record or run.calibration(self.steps, self.grid, score, fpr), decision)
        self.score = self.record["score"]
        self.engine = engine or TorchEngine(run, self.steps, self.grid, self.record)

    @torch.no_grad()
    def batch(self, paths, skip_bad: bool = False) -> list:
        """One dict per path: path, score, anomalous, x, y (the map's maximum in original pixels), amap (h x w),
        p (the full-conformal p-value, or None), or, for an undecodable image with skip_bad, path and error."""
        samples = [Sample(p, 0) for p in paths]
        images, kept = decode(samples, self.run.cfg.image_size, skip_bad, self.run.bit_depth)
        rows = {p: {"path": p, "error": "cannot decode"} for p in paths}
        if kept:
            values, flags, maps, p = self.engine(images, kept)
            for s, v, f, amap, pv in zip(kept, values, flags, maps, [None] * len(kept) if p is None else p):
                w, h = upright_size(s.path)
                i, j = divmod(int(amap.argmax()), amap.shape[1])  # the cell's centre, in original pixels
                rows[s.path] = {"path": s.path, "score": float(v), "anomalous": bool(f), "amap": amap,
                                "p": None if pv is None else float(pv),
                                "x": int((j + 0.5) * w / amap.shape[1]), "y": int((i + 0.5) * h / amap.shape[0])}
        return [rows[p] for p in paths]

    def heat(self, amap) -> np.ndarray:
        """The norm map as overlay strength in [0, 1]: 0 at the normal images' typical ||x_T[:, i, j]|| (from
        the calibration's NLL range) or below, 1 at HOT times it, log-scaled in between."""
        h, w = amap.shape
        n = self.record["normalizer"]
        nll = (n["nll_min"] + n["nll_max"]) / 2 - 0.5 * _channels(self.run) * h * w * math.log(2 * math.pi)
        typical = math.sqrt(max(2 * nll / (h * w), 1e-12))  # NLL = 1/2 sum A^2 + const
        return np.clip(np.log(np.maximum(np.asarray(amap, dtype=np.float64), 1e-12) / typical) / math.log(HOT), 0, 1)

    def picture(self, path, side: int = MAP_SIDE):
        """The image as a person sees it (upright, deep data scaled like the features), RGB, long side <= side."""
        from PIL import Image
        a = scaled_array(open_image(path), self.run.bit_depth, path)
        if a.dtype != np.uint8:
            a = np.repeat((a * 255).round().astype(np.uint8)[..., None], 3, axis=2)
        img = Image.fromarray(a).convert("RGB")
        img.thumbnail((side, side), Image.BILINEAR)
        return img

    def overlay(self, row, side: int = MAP_SIDE):
        """(overlay, plain picture) for a scored row, both PIL images of the same size."""
        img = self.picture(row["path"], side)
        w, h = upright_size(row["path"])
        marker = (row["x"] * img.width / w, row["y"] * img.height / h)
        return overlay(img, self.heat(row["amap"]), marker, row["anomalous"]), img


# ---------------------------------------------------------------- the stream

def predict(run, inputs, out, steps=None, grid=None, score=None, fpr=None, batch_size: int = 32,
            skip_bad: bool = False, maps: bool = True, weights: str = None, progress: bool = True,
            engine: str = "auto", onnx=None, decision: str = "auto") -> dict:
    """Score every image in `inputs` into `out` (see the module docstring); returns the summary in predict.json,
    plus `hint` (a line for the user, or None).

    engine: auto (default), torch or onnx; onnx: an exported graph to score with (engine onnx).
    decision: auto (the calibration's: full conformal for few normals, else the threshold), threshold or
    full-conformal (adlib/runs/full_conformal.py).
    Everything is checked before `out` is created; a rerun continues an interrupted one."""
    out = Path(out)
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise AdlibError(f"--batch-size {batch_size} must be a positive whole number")
    if engine not in ENGINES:
        raise AdlibError(f"--engine {engine}: use one of {', '.join(ENGINES)}")
    if onnx is not None and engine == "torch":
        raise AdlibError(f"--onnx {onnx} scores with onnxruntime, --engine torch with torch: give one of them")
    images = find_images(inputs, skip=out)
    pred = Predictor(run, steps, grid, score, fpr, decision=decision)
    weights = weights or run.weights
    rec = pred.record
    fp = fingerprint(run, weights)
    asked = {"steps": steps, "grid": grid, "score": score, "fpr": fpr, "weights": weights}
    pred.engine, reason, hint = choose_engine(pred, weights, fp, engine, onnx, asked, _saved(out))
    state = {"run": str(run.path.resolve()), "fingerprint": fp, "weights": weights,
             "steps": pred.steps, "grid": pred.grid, "score": pred.score, "fpr": rec["fpr"],
             "threshold": rec["threshold"], "decision": rec["decision"], "maps": bool(maps), "calibration": rec,
             "inputs": [os.path.abspath(os.path.expanduser(str(i))) for i in inputs],
             "engine": pred.engine.name, "engine_reason": reason,
             "onnx": str(Path(pred.engine.path).resolve()) if pred.engine.name == "onnx" else None,
             "choice": describe(run.cfg, rec.get("normalizer"))}
    check_out(out, state)
    done = _done(out / CSV)
    todo = [(p, n) for p, n in images if p not in done]
    bad = _unreadable(p for p, _ in todo)
    if bad and not skip_bad:
        raise AdlibError(f"cannot decode image {bad[0][0]} ({bad[0][1]}): replace or remove it, or pass --skip-bad to "
                         f"skip undecodable images" + (f" ({len(bad)} such files)" if len(bad) > 1 else ""))
    t0, now = time.perf_counter(), {"scored": 0, "skipped": 0}
    with tqdm(total=len(images), initial=len(images) - len(todo), desc="predict", unit="img", leave=False,
              disable=not progress) as bar:
        for b in range(0, len(todo), batch_size):
            part = todo[b:b + batch_size]
            try:
                scored = pred.batch([p for p, _ in part], skip_bad)
            except AdlibError as e:
                kept = f"; the {len(done)} images scored so far are kept in {out / CSV}: rerun to continue" if done else ""
                raise AdlibError(f"{e}{kept}") from None
            if not (out / STATE).is_file():  # DIR is made once the first batch is known to be good
                write_json(state, out / STATE)
            rows = [_write_maps(pred, out, r, n, maps) for r, (_, n) in zip(scored, part)]
            _append_rows(out / CSV, rows)
            done.update(r[0] for r in rows)
            skipped = sum(r[4] == "skipped" for r in rows)
            now["skipped"] += skipped
            now["scored"] += len(rows) - skipped
            bar.update(len(part))
    seconds = time.perf_counter() - t0
    summary = {**_summary(out / CSV), "scored_now": now["scored"], "skipped_now": now["skipped"],
               "seconds": round(seconds, 2),  # images/s: of the images scored in this call, skipped ones aside
               "images_per_second": round(now["scored"] / seconds, 2) if now["scored"] and seconds > 0 else None}
    out.mkdir(parents=True, exist_ok=True)
    write_json({**state, **summary}, out / STATE)
    write_report(out)
    return {**state, **summary, "hint": hint}


def _saved(out: Path) -> dict:
    """DIR/predict.json, or {} (none yet, or damaged: check_out says so)."""
    try:
        return json.loads((out / STATE).read_text())
    except (OSError, ValueError):
        return {}


def _channels(run) -> int:
    """The backbone's feature channels C, from the standardisation statistics (the onnx engine builds no backbone)."""
    return int(run.stats["chol"].shape[-1]) if "chol" in run.stats else int(run.stats["mean"].shape[1])


def _unreadable(paths) -> list:
    """[(path, reason)] of the files PIL cannot identify from their header (the cheap check, before any work)."""
    from PIL import Image
    bad = []
    for p in paths:
        try:
            with Image.open(p):
                pass
        except Image.DecompressionBombError:
            pass  # decoding names the limit and how to raise it
        except Exception as e:
            bad.append((p, e.__class__.__name__))
    return bad


def _write_maps(pred, out: Path, r: dict, name: str, maps: bool) -> list:
    """The image's CSV row, after its overlay, thumbnail and map alone (when maps) are written atomically."""
    if "error" in r:
        return [r["path"], name, "", "", "skipped", "", "", "", ""]
    mapped = ""
    if maps:
        mapped = map_name(name)
        img, plain = pred.overlay(r)
        plain.thumbnail((THUMB_SIDE, THUMB_SIDE))
        heat = heat_picture(pred.heat(r["amap"]), plain.size)
        for pic, rel, fmt in ((img, mapped, "PNG"), (plain, f"{THUMBS}/{name}.jpg", "JPEG"),
                              (heat, f"{HEAT}/{name}.png", "PNG")):
            with atomic_path(out / rel) as tmp:
                pic.save(tmp, fmt)
    threshold = "" if r["p"] is not None else repr(pred.record["threshold"])  # full conformal: p decides, no threshold
    return [r["path"], name, repr(r["score"]), threshold,
            "anomalous" if r["anomalous"] else "normal", r["x"], r["y"], mapped, "" if r["p"] is None else repr(r["p"])]


def _done(path: Path) -> set:
    """Paths already in DIR/predictions.csv."""
    if not path.is_file():
        return set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        if tuple(next(reader, ())) != COLUMNS:
            raise AdlibError(f"{path} is not a predictions file of this adlib version: give a new --out")
        return {row[0] for row in reader if row}


def _append_rows(path: Path, rows: list):
    """DIR/predictions.csv plus `rows`, swapped in whole (copy, append, fsync, rename)."""
    with atomic_path(path) as tmp:
        if path.is_file():
            shutil.copyfile(path, tmp)
        with open(tmp, "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            if not path.is_file():
                w.writerow(COLUMNS)
            w.writerows(rows)


def _summary(path: Path) -> dict:
    rows = read_predictions(path.parent) if path.is_file() else []
    decisions = [r["decision"] for r in rows]
    return {"images": len(rows), "anomalous": decisions.count("anomalous"), "normal": decisions.count("normal"),
            "skipped": decisions.count("skipped"),
            "skipped_files": [r["path"] for r in rows if r["decision"] == "skipped"]}

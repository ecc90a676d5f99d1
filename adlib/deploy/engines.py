"""Engines of `adlib predict`: the scoring step of a decoded batch, and how --engine / --onnx choose one.

torch  backbone -> standardise -> S-step inversion -> raw scores -> the calibration's decision (TorchEngine):
       above the threshold, or full conformal (adlib/runs/full_conformal.py: few normals, the default there).
onnx   the graph `adlib export` wrote, under onnxruntime (OnnxEngine), checked against the run and the
       settings asked before anything is written (check_graph). It decides by the threshold only, so a
       full-conformal record is scored by torch (auto) or refused (--engine onnx, --onnx): --decision threshold.
"""
import json
from pathlib import Path

import numpy as np
import torch

from adlib.errors import AdlibError
from adlib.features.standardize import standardize
from adlib.method import calibration
from adlib.runs import full_conformal

LEGACY = {"engine": "torch", "decision": "threshold"}  # what a predict.json written before the setting existed means


class TorchEngine:
    """The kit's own scoring step: decoded batch -> backbone -> standardise -> inversion -> calibrated decision."""
    name = "torch"

    def __init__(self, run, steps, grid, record):
        self.run, self.steps, self.grid, self.record = run, steps, grid, record
        self._normals = None  # the run's normal features, for full-conformal decisions (loaded once)

    @torch.no_grad()
    def __call__(self, images, kept) -> tuple:
        """(scores float64 (B,), anomalous bool (B,), norm maps B x h x w, p-values (B,) or None) of a decoded
        batch: flagged above the threshold, or, for a full-conformal record, at p <= its promised rate."""
        with self.run.backbone_autocast():  # the backbone's precision rule (fp32); Run.scores autocasts the eps-network
            z = self.run.extractor(images.to(self.run.device)).float().cpu()
        bad = ~torch.isfinite(z).flatten(1).all(1)
        if bad.any():
            raise AdlibError(f"NaN/inf features for {kept[int(bad.nonzero()[0])].path}: the image file is "
                             f"probably corrupt; remove it")
        raw = self.run.scores(standardize(z, self.run.stats), self.steps, self.grid)
        values, flags = calibration.decide(self.record, raw)
        if not full_conformal.is_conformal(self.record):
            return values, flags, raw["map"], None
        if self._normals is None:
            self._normals = full_conformal.normal_features(self.run)
        p = full_conformal.p_values(self.run.cfg, self.record, self._normals, z)
        return values, full_conformal.flags(self.record, p), raw["map"], p


class OnnxEngine:
    """The exported graph under onnxruntime (adlib.deploy.export.OnnxScorer), checked against the run and settings
    (check_graph): the same decoded batch in, the same scores, maps and decisions out as TorchEngine."""
    name = "onnx"

    def __init__(self, scorer, record):
        self.scorer, self.record, self.path = scorer, record, scorer.path

    def __call__(self, images, kept) -> tuple:
        out = self.scorer(images)
        values, amap = out["score"], out["map"]
        bad = ~(np.isfinite(values) & np.isfinite(amap).reshape(len(amap), -1).all(1))
        if bad.any():
            raise AdlibError(f"NaN/inf scores for {kept[int(bad.nonzero()[0][0])].path}: the image file is "
                             f"probably corrupt; remove it")
        return values, values > self.record["threshold"], amap, None



def choose_engine(pred, weights: str, fp: str, engine: str, onnx, asked: dict, saved: dict) -> tuple:
    """(engine object, why it was chosen, a hint for the user or None) for predict's --engine and --onnx.

    asked: the options as given (None: the run's default), for the `adlib export` command in messages;
    saved: DIR/predict.json of the predictions being continued ({} if none)."""
    from adlib.deploy.export import default_path
    run = pred.run
    if full_conformal.is_conformal(pred.record):
        if onnx is not None or engine == "onnx":
            raise AdlibError(f"{'--onnx' if onnx is not None else '--engine onnx'}: {run.path} decides by full conformal "
                             f"(each image ranked among its {pred.record['n_val']} normal images), which an exported "
                             f"graph cannot do: pass --decision threshold to use the graph's cross-fitted threshold "
                             f"(it flags fewer), or --engine torch")
        return TorchEngine(run, pred.steps, pred.grid, pred.record), "--engine torch" if engine == "torch" else \
            f"auto: full-conformal decisions among {pred.record['n_val']} normal images are made by torch", None
    if onnx is not None:
        return OnnxEngine(check_graph(_scorer(onnx), pred, weights, fp, asked), pred.record), "--onnx", None
    path = default_path(run.path, weights, pred.record)
    if engine == "onnx":
        if not path.is_file():
            raise AdlibError(f"--engine onnx: {path} does not exist: make it with `{export_command(run, asked)}` "
                             f"or give a graph with --onnx FILE")
        return OnnxEngine(check_graph(_scorer(path), pred, weights, fp, asked), pred.record), "--engine onnx", None
    torch_engine = TorchEngine(run, pred.steps, pred.grid, pred.record)
    if engine == "torch":
        return torch_engine, "--engine torch", None
    if saved and saved.get("engine", LEGACY["engine"]) == "torch":
        return torch_engine, "auto: continues predictions made with torch", None
    if not _importable("onnxruntime"):
        return torch_engine, "auto: onnxruntime is not installed", None
    if str(run.device) != "cpu":
        return torch_engine, f"auto: the run scores on {run.device} (onnxruntime runs on the CPU)", None
    if saved.get("engine") == "onnx" and saved.get("onnx") and Path(saved["onnx"]).resolve() != path.resolve():
        path = Path(saved["onnx"])  # continue with the graph DIR was started with
    if not path.is_file():
        return torch_engine, f"auto: no exported graph for these settings at {path}", \
            f"`{export_command(run, asked)}` once makes predict ~3x faster (onnxruntime; then --engine auto uses it)"
    try:
        scorer = check_graph(_scorer(path), pred, weights, fp, asked)
    except AdlibError as e:
        from adlib.errors import warn
        warn(f"not using the exported graph: {e}; scoring with torch")
        return torch_engine, f"auto: {path} does not match", None
    return OnnxEngine(scorer, pred.record), "auto: the run's exported graph for these settings", None


def _scorer(path):
    """An OnnxScorer on `path` with torch's thread count (so --threads sets both engines)."""
    from adlib.deploy.export import OnnxScorer
    return OnnxScorer(path, threads=torch.get_num_threads())


def _importable(module: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def export_command(run, asked: dict) -> str:
    """The `adlib export` command that writes the graph for these settings where --engine auto looks for it."""
    opts = "".join(f" --{k} {v}" for k, v in asked.items() if v is not None and not (k == "weights" and v == "ema"))
    return f"adlib export {run.path}{opts}"


def check_graph(scorer, pred, weights: str, fp: str, asked: dict):
    """`scorer` (an OnnxScorer) when its graph's metadata matches the run and the settings, else one line saying
    which does not and how to fix it."""
    from adlib.deploy.export import default_path
    from adlib.runs.run import decode_depth
    meta, path, run, rec = scorer.meta, scorer.path, pred.run, pred.record
    where = "" if Path(path).resolve() == default_path(run.path, weights, rec).resolve() else f" --out {path}"
    again = f"re-export it (`{export_command(run, asked)}{where} --overwrite`) or score with --engine torch"

    def setting(key, want):
        got = meta.get(key)
        if got is None or not (float(got) == float(want) if key == "fpr" else got == str(want)):
            raise AdlibError(f"{path} scores with --{key} {got}, this prediction with --{key} {want}"
                             + ("" if asked.get(key) is not None else " (the run's default)")
                             + f": pass --{key} {got}, or export a graph for these settings (`"
                             + f"{export_command(run, asked)}`), or score with --engine torch")

    setting("weights", weights)  # before the fingerprint, which is of the weights too
    if meta.get("run_fingerprint", fp) != fp:
        raise AdlibError(f"{path} was exported from another run, or from {run.path} before its weights, calibration "
                         f"or settings changed: {again}")
    depth = decode_depth(run.cfg.bit_depth)
    for key, want in [("image_size", run.cfg.image_size), ("bit_depth", "none" if depth is None else depth),
                      ("backbone", run.cfg.backbone), ("standardize", run.cfg.standardize), ("model", run.cfg.model)]:
        if meta.get(key) != str(want):
            raise AdlibError(f"{path} was exported from another run ({key} {meta.get(key)}, {run.path} has {want}): "
                             f"{again}")
    for key, want in [("steps", pred.steps), ("grid", pred.grid), ("score", pred.score), ("fpr", rec["fpr"])]:
        setting(key, want)
    if not (_close(float(meta["threshold"]), rec["threshold"])
            and _close(json.loads(meta.get("normalizer", "null")), rec["normalizer"])):
        raise AdlibError(f"{path} holds threshold {float(meta['threshold']):.6g} but the run's calibration for these "
                         f"settings has {rec['threshold']:.6g} (it changed since the export): {again}")
    return scorer


def _close(a, b) -> bool:
    """Numbers, lists and dicts of them equal up to float rounding (a calibration fitted again, other threads)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if a is None or b is None:
        return a is b
    try:
        return np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=1e-5, atol=1e-8)
    except (TypeError, ValueError):
        return a == b

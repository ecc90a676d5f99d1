"""A trained run as one ONNX graph, from decoded images to the calibrated image score and anomaly maps.

    images -> backbone -> standardise -> S DDIM inversion steps (unrolled) -> NLL, Diff, norm map A
           -> the calibration's image score (nll | diff | combined | local-max | local-top) and maps

Input  `images`     float32 B x 3 x H x W, RGB in [0, 1], H = W = the run's image_size: exactly what the kit's
                    decoder (adlib.features.cache.decode) returns; `preprocess(paths, ...)` (or `OnnxScorer.preprocess`)
                    turns image files into it, so torch and onnxruntime see identical input. B is dynamic.
Output `score`      float64 (B,): the image score of the calibration record's kind, on the scale of its threshold
       `map`        float32 B x h x w: the norm map A[i, j] = ||x_T[:, i, j]|| (h = H / 16)
       `pixel_map`  float32 B x H x W: A upsampled bilinearly (scoring.pixel_map)
Metadata (metadata_props, strings; `OnnxScorer.meta`): threshold, fpr, fpr_guaranteed, steps, grid, points,
score, normalizer (JSON), image_size, bit_depth, backbone, standardize, model, weights, input, adlib_version,
run (the run folder's name) and run_fingerprint (adlib.runs.run.fingerprint: sha256 of the run's config, statistics,
calibration and weights; `adlib predict --onnx` refuses a graph from another run or settings with it).
An image is anomalous when score > threshold. `adlib export RUN` without --out writes default_path(...):
RUN/export/<weights>-<steps>-<grid>-<score>-<fpr>.onnx, where `adlib predict --engine auto` (the default) finds it.

What differs from the torch path (`TorchScorer`, the kit's own functions): `whiten` standardisation solves
L y = z - mu with torch.linalg.solve_triangular, which has no ONNX operator; the graph multiplies by L^-1
instead, computed once in float64 from the run's L and stored as a constant (P x C x C). The min-max and
per-position statistics of the calibration are constants of the graph. onnx, onnxruntime and onnxscript (torch's
dynamo exporter needs it) are optional (`pip install "adlib[onnx]"`); nothing here imports them until an export
or an OnnxScorer needs them (OnnxScorer needs onnxruntime only).
"""
import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from adlib import __version__
from adlib.deploy import OPSET
from adlib.errors import AdlibError
from adlib.features.standardize import standardize
from adlib.files import atomic_path
from adlib.method import calibration, scoring
from adlib.method.inversion import invert, make_grid
from adlib.features.onnx_graph import EXPORTERS, to_onnx

MIN_OPSET = 18  # the lowest accepted: torch's dynamo exporter writes opset 18 and newer

MAP_TOL = dict(rtol=1e-4, atol=1e-4)  # onnxruntime vs torch on the norm and pixel maps (float32 rounding)
SCORE_TOL = dict(rtol=1e-3, atol=1e-3)  # scores: the min-max and per-position std scale the maps' rounding up


def tolerance_text() -> str:
    """The tolerances in words, as the README and `adlib export` state them (np.allclose's rule)."""
    e = lambda x: f"{x:.0e}".replace("e-0", "e-")
    return (f"maps within {e(MAP_TOL['atol'])} + {e(MAP_TOL['rtol'])} × |value|, scores within "
            f"{e(SCORE_TOL['atol'])} + {e(SCORE_TOL['rtol'])} × |value|")
INPUT = "images"
OUTPUTS = ("score", "map", "pixel_map")
CONVENTION = "float32 B x 3 x H x W RGB in [0, 1] (adlib.features.cache.decode), H = W = image_size"
INSTALL = 'pip install "adlib[onnx]" (or: pip install onnx onnxruntime onnxscript)'


def _require(module: str):
    """Import onnx, onnxruntime or onnxscript, or say in one line how to install it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AdlibError(f"{module} is not installed: {INSTALL}") from None


def require(exporter: str = "dynamo"):
    """Check that an export can run (onnx, onnxruntime for its check, onnxscript for the dynamo exporter); onnx."""
    onnx = _require("onnx")
    _require("onnxruntime")
    if exporter == "dynamo":
        _require("onnxscript")
    return onnx


# ---------------------------------------------------------------- the graph, as a torch module

class Standardize(nn.Module):
    """adlib.features.standardize.standardize with the run's statistics as buffers; `whiten` as a product with L^-1."""

    def __init__(self, stats: dict):
        super().__init__()
        self.whiten = "chol" in stats
        self.register_buffer("mean", stats["mean"].float().clone())
        if self.whiten:  # solve_triangular has no ONNX operator: L^-1, once, in float64
            inv = torch.linalg.inv(stats["chol"].double())
            self.register_buffer("inv_chol", inv.tril().float().contiguous())  # P x C x C
        else:
            self.register_buffer("std", stats["std"].float().clone())

    def forward(self, z):
        if not self.whiten:
            return standardize(z, {"mean": self.mean, "std": self.std})
        n, c, h, w = z.shape
        x = z.flatten(2).permute(2, 1, 0) - self.mean.transpose(1, 2)  # P x C x N, as standardize does
        return torch.matmul(self.inv_chol, x).permute(2, 1, 0).reshape(n, c, h, w)


def standardizer(stats: dict) -> nn.Module:
    """The standardisation step of the graph (a function, so a test can take it out and see the test fail)."""
    return Standardize(stats)


class ImageScore(nn.Module):
    """scoring.image_score of a calibration record, for the graph: NLL, Diff and norm map -> one number per image.

    combined = (NLL - nll_min) / (nll_max - nll_min) + (Diff - diff_min) / (diff_max - diff_min)  (Normalizer.combined)
    local-*  = max, or mean of the TOP_K largest, of (A - map_mean) / map_std                    (Normalizer.local)
    in float64, as the kit computes them."""

    def __init__(self, record: dict, grid: int):
        super().__init__()
        self.kind = record["score"]
        if self.kind not in scoring.SCORES:
            raise AdlibError(f"unknown score {self.kind!r}: use one of {', '.join(scoring.SCORES)}")
        norm = scoring.Normalizer(**record["normalizer"])
        eps = 1e-12  # as Normalizer.combined
        self.nll_min, self.nll_scale = norm.nll_min, max(norm.nll_max - norm.nll_min, eps)
        self.diff_min, self.diff_scale = norm.diff_min, max(norm.diff_max - norm.diff_min, eps)
        if self.kind in scoring.LOCAL:
            norm.local_map(torch.zeros(1, grid, grid))  # no per-position statistics -> the kit's AdlibError
            self.register_buffer("map_mean", torch.tensor(norm.map_mean, dtype=torch.float64).reshape(grid, grid))
            self.register_buffer("map_std", torch.tensor(norm.map_std, dtype=torch.float64).reshape(grid, grid))
            self.k = 1 if self.kind == "local-max" else min(scoring.TOP_K, grid * grid)

    def forward(self, nll, diff, amap):
        if self.kind == "nll":
            return nll
        if self.kind == "diff":
            return diff
        if self.kind == "max":
            return amap.double().flatten(1).max(1).values
        if self.kind == "combined":
            return (nll - self.nll_min) / self.nll_scale + (diff - self.diff_min) / self.diff_scale
        local = ((amap.double() - self.map_mean) / self.map_std).flatten(1)
        return local.topk(self.k, dim=1).values.mean(1)


class ScoreGraph(nn.Module):
    """Decoded images -> (score, norm map, pixel map) of a run under one calibration record (what is exported).

    Reuses the kit's FeatureExtractor, eps-network, diffusion.invert and scoring.latent_scores / pixel_map; the
    export traces invert's S steps into the graph, unrolled, with their noise levels as constants. Built on the
    CPU (a run on CUDA keeps its own modules; the graph gets copies)."""

    def __init__(self, run, record: dict):
        super().__init__()
        self.image_size = run.cfg.image_size
        self.extractor = _on_cpu(run.extractor)
        self.standardize = standardizer(run.stats)
        self.model = _on_cpu(run.model)
        self.points = make_grid(record["steps"], record["grid"])
        self.score = ImageScore(record, self.image_size // 16)

    def forward(self, images):
        z = self.standardize(self.extractor(images))
        x = invert(self.model, z, self.points)  # a Python loop over the S steps: traced, it unrolls
        s = scoring.latent_scores(x)
        return self.score(s["nll"], s["diff"], s["map"]), s["map"], scoring.pixel_map(s["map"], self.image_size)


def _on_cpu(module: nn.Module) -> nn.Module:
    """The module itself when it is on the CPU, else a CPU copy (the run keeps its device)."""
    on_cpu = all(t.device.type == "cpu" for t in list(module.parameters()) + list(module.buffers()))
    return (module if on_cpu else copy.deepcopy(module).cpu()).eval()


# ---------------------------------------------------------------- input

def preprocess(paths, image_size: int, bit_depth=None) -> torch.Tensor:
    """Image files -> the graph's input, float32 N x 3 x S x S in [0, 1], with the kit's decoder (adlib.features.cache.decode).

    bit_depth: the run's (`run.bit_depth`; None for 8-bit data). Undecodable files raise AdlibError."""
    from adlib.data.datasets import Sample
    from adlib.features.cache import decode
    images, _ = decode([Sample(str(p), 0) for p in paths], image_size, bit_depth=bit_depth)
    return images


def _as_images(images, image_size: int) -> np.ndarray:
    """A batch in the input convention as contiguous float32 numpy, or one line saying what is wrong."""
    a = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[1:] != (3, image_size, image_size):
        raise AdlibError(f"images of shape {tuple(a.shape)}: the graph takes {CONVENTION} with image_size "
                         f"{image_size}, i.e. B x 3 x {image_size} x {image_size}; use adlib.deploy.export.preprocess")
    return np.ascontiguousarray(a, dtype=np.float32)


# ---------------------------------------------------------------- the two scorers

class TorchScorer:
    """The reference: the kit's own path (Run.extractor, standardize, diffusion.invert, scoring.raw_scores,
    calibration.decide) on the same input as the graph, giving the same outputs as OnnxScorer."""

    def __init__(self, run, steps=None, grid=None, score=None, fpr=None, record=None):
        self.run = run
        self.record = record or run.calibration(steps, grid, score, fpr)
        self.points = make_grid(self.record["steps"], self.record["grid"])
        self.threshold = float(self.record["threshold"])
        self.image_size = run.cfg.image_size

    @torch.no_grad()
    def __call__(self, images) -> dict:
        run = self.run
        x = torch.from_numpy(_as_images(images, self.image_size)).to(run.device)
        z = standardize(run.extractor(x), run.stats)
        raw = scoring.raw_scores(invert(run.model, z, self.points).cpu())
        values, anomalous = calibration.decide(self.record, raw)
        return {"score": np.asarray(values, dtype=np.float64), "map": raw["map"].numpy(),
                "pixel_map": scoring.pixel_map(raw["map"], self.image_size).numpy(), "anomalous": anomalous}

    def preprocess(self, paths) -> torch.Tensor:
        return preprocess(paths, self.image_size, self.run.bit_depth)


class OnnxScorer:
    """An exported graph under onnxruntime (CPU): the same input and outputs as TorchScorer.

    scorer = OnnxScorer("model.onnx"); out = scorer(scorer.preprocess(paths))
    out: score (B,) float64, map B x h x w, pixel_map B x H x W, anomalous (B,) bool (score > threshold)."""

    def __init__(self, path, threads: int = None):
        ort = _require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise AdlibError(f"{path} not found: make it with `adlib export RUN --out {path}`")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own classes for a corrupt or foreign file
            raise AdlibError(f"{path} is not a loadable ONNX graph ({type(e).__name__}): re-export it with "
                             f"`adlib export RUN --out {path} --overwrite`") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "threshold" not in meta or "image_size" not in meta:
            raise AdlibError(f"{path} was not written by `adlib export` (no threshold / image_size metadata)")
        self.meta = meta
        self.path = path
        self.threshold = float(meta["threshold"])
        self.image_size = int(meta["image_size"])
        self.bit_depth = None if meta.get("bit_depth", "none") == "none" else int(meta["bit_depth"])

    def __call__(self, images) -> dict:
        score, amap, pix = self.session.run(list(OUTPUTS), {INPUT: _as_images(images, self.image_size)})
        return {"score": score.astype(np.float64), "map": amap, "pixel_map": pix, "anomalous": score > self.threshold}

    def preprocess(self, paths) -> torch.Tensor:
        return preprocess(paths, self.image_size, self.bit_depth)


# ---------------------------------------------------------------- export

def default_path(run_path, weights: str, record: dict) -> Path:
    """RUN/export/<weights>-<steps>-<grid>-<score>-<fpr>.onnx: where `adlib export RUN` writes the graph of a
    calibration record and `adlib predict --engine auto` looks for it (weights: ema, model, snapshots_iter_N)."""
    name = "-".join([weights.replace("/", "_"), str(record["steps"]), record["grid"], record["score"],
                     repr(float(record["fpr"]))])
    return Path(run_path) / "export" / f"{name}.onnx"


def metadata(run, record: dict, weights: str) -> dict:
    """The graph's metadata_props: everything needed to decide with it and to feed it (strings)."""
    from adlib.runs.run import decode_depth, fingerprint
    depth = decode_depth(run.cfg.bit_depth)
    return {k: str(v) for k, v in {
        "threshold": repr(float(record["threshold"])), "fpr": record["fpr"],
        "fpr_guaranteed": record.get("fpr_guaranteed"), "steps": record["steps"], "grid": record["grid"],
        "points": json.dumps(make_grid(record["steps"], record["grid"])), "score": record["score"],
        "normalizer": json.dumps(record["normalizer"]), "image_size": run.cfg.image_size,
        "bit_depth": "none" if depth is None else depth, "backbone": run.cfg.backbone,
        "standardize": run.cfg.standardize, "model": run.cfg.model, "weights": weights,
        "input": CONVENTION, "outputs": ", ".join(OUTPUTS), "adlib_version": __version__,
        "whiten": "L^-1 precomputed in float64 as a constant" if run.cfg.standardize == "whiten" else "-",
        "run": run.path.resolve().name, "run_fingerprint": fingerprint(run, weights),
    }.items()}


def export_onnx(run, path, steps=None, grid=None, score=None, fpr=None, opset: int = OPSET,
                exporter: str = "dynamo", weights: str = "ema", check: bool = True, record: dict = None) -> dict:
    """Write the run's ScoreGraph for (steps, grid, score, fpr) to `path` (atomically, one file, weights inside).

    run: a Run (the graph is built on the CPU). The calibration is `run.calibration(steps, grid, score, fpr)`:
    the saved one when it matches, else fitted now on the run's validation normals, as `adlib evaluate` does.
    exporter: "dynamo" (torch.export, torch's default; every eps-network family) or "torchscript" (the
    deprecated tracer: ~10x faster to export, but it fails on EpsConv and EpsDiT). weights: the name recorded
    in the metadata (the run was opened with it). check: run the written file under onnxruntime on two
    random images and compare with the torch module: maps beyond MAP_TOL are an error (a bad export never goes
    unnoticed), scores beyond SCORE_TOL a warning (on noise images a min-max can magnify rounding).
    record: the calibration record to export, when already at hand (else run.calibration(steps, grid, score, fpr)).
    Returns {"path", "metadata", "check": max abs differences, "seconds"}."""
    import time
    if exporter not in EXPORTERS:
        raise AdlibError(f"unknown exporter {exporter!r}: use one of {', '.join(EXPORTERS)}")
    onnx = require(exporter)
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise AdlibError(f"--opset {opset}: this onnx writes opsets {MIN_OPSET}..{newest} (default {OPSET})")
    t0 = time.perf_counter()
    record = record or run.calibration(steps, grid, score, fpr)
    graph = ScoreGraph(run, record).eval()
    size_gib = sum(t.numel() * t.element_size() for t in [*graph.parameters(), *graph.buffers()]) / 2**30
    if size_gib > 1.9:  # protobuf's limit for one file is 2 GiB
        raise AdlibError(f"this run's graph holds {size_gib:.1f} GiB of weights: one .onnx file holds at most 2 GiB "
                         f"and `adlib export` does not write ONNX external data files")
    meta = metadata(run, record, weights)
    size = run.cfg.image_size
    example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    proto = _export(graph, example, opset, exporter)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (f"adlib {meta['model']} run, S={meta['steps']} on the {meta['grid']} grid, score {meta['score']}, "
                        f"threshold {meta['threshold']}; input {CONVENTION}")
    path = Path(path)
    with atomic_path(path, ".onnx") as tmp:
        onnx.save(proto, str(tmp))
        diffs = _check(graph, tmp, example) if check else None
    return {"path": str(path), "metadata": meta, "check": diffs, "seconds": round(time.perf_counter() - t0, 1)}


def max_differences(ref: dict, out: dict) -> dict:
    """Largest absolute and relative differences between two scorers' outputs on the same images."""
    diffs = {}
    for key in ("score", "map", "pixel_map"):
        a, b = np.asarray(ref[key], dtype=np.float64), np.asarray(out[key], dtype=np.float64)
        d = np.abs(a - b)
        diffs[f"{key}_abs"] = float(d.max())
        diffs[f"{key}_rel"] = float((d / np.maximum(np.abs(a), 1e-12)).max())
    return diffs


def agree(ref: dict, out: dict) -> bool:
    """Whether two scorers agree: maps within MAP_TOL, scores within SCORE_TOL (np.allclose semantics)."""
    return (np.allclose(out["map"], ref["map"], **MAP_TOL) and np.allclose(out["pixel_map"], ref["pixel_map"], **MAP_TOL)
            and np.allclose(out["score"], ref["score"], **SCORE_TOL))


def _check(graph, path, example) -> dict:
    with torch.no_grad():
        score, amap, pix = graph(example)
    ref = {"score": score.numpy(), "map": amap.numpy(), "pixel_map": pix.numpy()}
    out = OnnxScorer(path)(example)
    diffs = max_differences(ref, out)
    if not all(np.allclose(out[k], ref[k], **MAP_TOL) for k in ("map", "pixel_map")):
        raise AdlibError(f"the exported graph does not reproduce the torch module's maps (max differences {diffs}): "
                         f"please report this with the run's config.json")
    if not np.allclose(out["score"], ref["score"], **SCORE_TOL):  # noise images: a score can magnify rounding
        from adlib.errors import warn
        warn(f"on two random test images the exported score differs from torch's by up to {diffs['score_abs']:.2e} "
             f"(relative {diffs['score_rel']:.2e}); compare on real images with adlib.deploy.export.TorchScorer")
    return diffs


def _export(graph, example, opset, exporter):
    """The ModelProto of `graph` with a dynamic batch axis; exporter failures as one line."""
    import onnx
    try:
        return onnx.load_from_string(to_onnx(graph, example, [INPUT], OUTPUTS, exporter, opset))
    except AdlibError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        hint = " (try the default exporter, dynamo)" if exporter == "torchscript" else ""
        raise AdlibError(f"the {exporter} ONNX exporter failed on this run's graph{hint}: {type(e).__name__}: {first}") from None

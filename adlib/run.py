"""A run directory: train one into being, or load one to score images.

RUN/config.json  the RunConfig          RUN/split.json   which file went where
RUN/stats.safetensors  standardisation  RUN/model, RUN/ema  eps-networks (save_pretrained)
RUN/loss.csv     iteration,loss,lr      RUN/checkpoint.pt  the resumable training state
RUN/calibration.json  min-max and threshold fitted on normal validation images
"""
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from . import scoring
from .cache import atomic_save, extract
from .config import RunConfig
from .data import load_spec
from .diffusion import invert, make_grid
from .errors import AdlibError
from .features import FeatureExtractor
from .files import atomic_write_text, write_json
from .models import load_model
from .standardize import fit_stats, standardize
from .train import atomic_save_pretrained, fit, lr_lambda, pick_device


class Run:
    """A trained run: features -> standardise -> DDIM inversion -> scores."""

    def __init__(self, path, weights: str = "ema", device: str = "cpu"):
        """device: where the backbone and the eps-network run (`auto` picks CUDA when present)."""
        self.path, self.device = Path(path), pick_device(device)
        self.cfg = RunConfig.load(self.path / "config.json")
        if weights not in ("ema", "model") and not (self.path / weights / "config.json").is_file():
            snaps = ", ".join(p.relative_to(self.path).as_posix() for p in sorted(self.path.glob("snapshots/iter_*")))
            raise AdlibError(f"--weights {weights}: no such weights in {self.path}; use ema, model"
                             + (f" or one of {snaps}" if snaps else ""))
        if not (self.path / weights / "config.json").is_file():
            raise AdlibError(f"{self.path / weights} is missing: the run did not finish; "
                             f"continue it with `adlib train --data {self.cfg.data} --out {self.path} --resume`")
        self.model = load_model(self.path / weights).eval().to(self.device)
        self.stats = load_file(self.path / "stats.safetensors")
        self._extractor = None

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            self._extractor = FeatureExtractor(self.cfg.backbone, self.cfg.image_size).to(self.device)
        return self._extractor

    def features(self, samples, desc="features", skip_bad=False):
        """Standardised features of the samples (cached) and the samples kept."""
        z, kept = extract(self.extractor, samples, desc=desc, skip_bad=skip_bad, device=self.device)
        return standardize(z, self.stats), kept

    def invert(self, z, steps=None, grid=None, batch_size=64, trajectory=False):
        points = make_grid(steps or self.cfg.steps, grid or self.cfg.grid)
        outs = [_to_cpu(invert(self.model, z[i:i + batch_size].to(self.device), points, trajectory))
                for i in range(0, len(z), batch_size)]
        if not trajectory:
            return torch.cat(outs)
        return outs[0][0] if len(outs) == 1 else torch.cat([o[0] for o in outs]), \
            [torch.cat([o[1][k] for o in outs]) for k in range(len(points))]

    def scores(self, z, steps=None, grid=None) -> dict:
        """nll, diff (numpy) and the norm map (B x h x w) of the inverted latents."""
        return scoring.raw_scores(self.invert(z, steps, grid))


def _to_cpu(out):
    """Inversion results come back to the CPU, where scores and metrics are computed."""
    return out.cpu() if torch.is_tensor(out) else (out[0].cpu(), [x.cpu() for x in out[1]])


def train_run(cfg: RunConfig, out, resume: bool = False, progress: bool = True, skip_bad: bool = False) -> Run:
    """Features -> standardisation -> training -> RUN/; under `accelerate launch` only the main process writes."""
    from accelerate import PartialState
    out = Path(out)
    if (out / "config.json").is_file():
        if not resume:
            raise AdlibError(f"{out} already holds a run: pass --resume to continue it or choose another --out")
        RunConfig.load(out / "config.json").check_matches(cfg, out)
    state = PartialState(cpu=pick_device(cfg.device) == "cpu")  # fails early on --device cuda without CUDA
    t0 = time.perf_counter()
    data = load_spec(cfg.data, cfg.split_seed)
    extractor = FeatureExtractor(cfg.backbone, cfg.image_size)
    with state.main_process_first():  # the main process fills the feature cache, the others read it
        z_train, train = extract(extractor, data.train, desc="train features", skip_bad=skip_bad)
        z_val, val = extract(extractor, data.val, desc="val features", skip_bad=skip_bad)
    cfg = replace(cfg, iters=cfg.iters_for(len(train)))
    digest = _same_split_everywhere(state, data.split_record())
    stats = fit_stats(z_train, cfg.standardize)
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be good
        atomic_save({k: v.contiguous() for k, v in stats.items()}, out / "stats.safetensors")
        cfg.save(out / "config.json")
        record = data.split_record()
        record["skipped"] = len(data.train) + len(data.val) - len(train) - len(val)
        write_json(record, out / "split.json")
    state.wait_for_everyone()
    t1 = time.perf_counter()
    raw, ema, losses, _ = fit(cfg, standardize(z_train, stats), out, resume=resume, progress=progress)
    if state.is_main_process:
        write_json({"features_seconds": round(t1 - t0, 1), "train_seconds": round(time.perf_counter() - t1, 1),
                    "iters": cfg.iters, "resumed": resume, "processes": state.num_processes,
                    "effective_batch": cfg.batch_size, "split_sha256": digest}, out / "timing.json")
        atomic_save_pretrained(raw, out / "model")
        atomic_save_pretrained(ema, out / "ema")
        lr = [cfg.lr * lr_lambda(cfg)(i) for i in range(len(losses))]
        atomic_write_text(out / "loss.csv", "iter,loss,lr\n" + "".join(f"{i + 1},{l:.6f},{r:.3e}\n" for i, (l, r) in enumerate(zip(losses, lr))))
    state.wait_for_everyone()
    run = Run(out)
    run.num_processes = state.num_processes
    if state.is_main_process:
        calibrate(run, standardize(z_val, stats))
    return run


def _same_split_everywhere(state, record) -> str:
    """sha256 of the split; under several processes every one must have drawn the same split."""
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    if state.num_processes > 1:
        from accelerate.utils import gather_object
        if len(set(gather_object([digest]))) != 1:
            raise AdlibError("the processes drew different train/val/test splits: give every process the same "
                             "--data and --split-seed, and the same files")
    return digest


def calibrate(run: Run, z_val, fpr: float = 0.05) -> dict:
    """Fit the combined score's min-max and a threshold at `fpr` on normal validation features."""
    s = run.scores(z_val)
    norm = scoring.Normalizer.fit(s)
    score = scoring.image_score(s, run.cfg.score, norm)
    cal = {"steps": run.cfg.steps, "grid": run.cfg.grid, "score": run.cfg.score, "normalizer": norm.to_dict(),
           "fpr": fpr, "threshold": scoring.calibrate_threshold(score, fpr), "n_val": int(len(z_val)),
           "val_scores": [float(v) for v in np.asarray(score)]}
    write_json(cal, run.path / "calibration.json")
    return cal

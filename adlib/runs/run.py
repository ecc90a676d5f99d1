"""A run directory: train one into being, or load one to score images.

RUN/config.json  the RunConfig          RUN/split.json   which file went where
RUN/stats.safetensors  standardisation  RUN/model, RUN/ema  eps-networks (save_pretrained)
RUN/loss.csv     iteration,loss,lr      RUN/checkpoint.pt  the resumable training state
RUN/calibration.json  min-max and threshold fitted on normal validation images (cross-fitted: on every normal),
                      and the decision: the threshold, or full conformal below 50 normals (full_conformal.py)
A closed-form model (`--model gaussian`: fitted, nothing trained) is stored once, in RUN/model, with no ema/,
loss.csv, snapshots or checkpoint; its `ema` weights are that folder (runs before kept a copy in ema/), and its
config records iters 0. With fewer normals than about 2C it keeps RUN/normals.safetensors (their raw features)
instead of its P x C x C tensors and refits those when loaded (adlib/runs/refit.py): a few MB, the same scores.
"""
import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from adlib.data import load_spec
from adlib.data.datasets import with_val_share
from adlib.data.images import infer_bit_depth
from adlib.errors import AdlibError, warn
from adlib.features.backbone import FeatureExtractor
from adlib.features.cache import atomic_save, extract
from adlib.features.engine import use_engine
from adlib.features.standardize import standardize
from adlib.files import atomic_write_text, recover_dir, write_json
from adlib.method import calibration, scoring
from adlib.method.inversion import invert, make_grid
from adlib.method.precision import autocast, backbone_autocast, backbone_precision, resolve_precision
from adlib.models import load_model
from adlib.runs import crossfit, full_conformal, refit
from adlib.runs.config import RunConfig
from adlib.runs.memory import resolve_grad_checkpointing
from adlib.runs.train import atomic_save_pretrained, fit, lr_lambda, pick_device


class Run:
    """A trained run: features -> standardise -> DDIM inversion -> scores, and its calibrated decisions."""

    def __init__(self, path, weights: str = "ema", device: str = None, precision: str = None):
        """device: where the backbone and the eps-network run; None = the run's own (`auto` picks CUDA when
        present; a run trained on CUDA opens on the CPU of a machine without one). precision: fp32 | bf16
        (autocast of backbone and eps-network); None = bf16 on CUDA, fp32 on the CPU (adlib/method/precision.py).
        The model (parameters and buffers) moves to `device`; standardisation stats stay on the CPU and
        follow the features (adlib/features/standardize.py)."""
        self.path = Path(path)
        self.cfg = RunConfig.load(self.path / "config.json")
        self.device = pick_device(device or ("cpu" if self.cfg.device == "cpu" else "auto"))
        recover_dir(self.path / weights)
        folder = weights_dir(self.path, weights)
        if weights not in ("ema", "model") and not (self.path / weights / "config.json").is_file():
            snaps = ", ".join(p.relative_to(self.path).as_posix() for p in sorted(self.path.glob("snapshots/iter_*")))
            raise AdlibError(f"--weights {weights}: no such weights in {self.path}; use ema, model"
                             + (f" or one of {snaps}" if snaps else ""))
        if not (folder / "config.json").is_file():
            raise AdlibError(f"{self.path / weights} is missing: the run did not finish; "
                             f"continue it with `adlib train --data {self.cfg.data} --out {self.path} --resume`")
        self.weights = weights  # which weights were asked: ema, model or snapshots/iter_N (folder: weights_dir)
        if refit.stored(self.path):  # a compact closed-form run: refitted on its normal features
            self.stats, model = refit.load(self.path, self.cfg, folder)
        else:
            self.stats, model = load_file(self.path / "stats.safetensors"), load_model(folder)
        self.model = model.eval().to(self.device)
        self.precision = resolve_precision(precision, self.device)
        self._extractor = None

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            self._extractor = use_engine(FeatureExtractor(self.cfg.backbone, self.cfg.image_size).to(self.device),
                                         self.device)  # onnxruntime on the CPU where installed (features/engine.py)
        return self._extractor

    @property
    def bit_depth(self):
        """The bit depth images are scaled by; None (each image by its own range) for 8-bit data, where it is the
        same as 8, and for runs saved before it existed."""
        return decode_depth(self.cfg.bit_depth)

    def features(self, samples, desc="features", skip_bad=False):
        """Standardised features of the samples (cached) and the samples kept."""
        z, kept = self.raw_features(samples, desc, skip_bad)
        return standardize(z, self.stats), kept

    def raw_features(self, samples, desc="features", skip_bad=False):
        """The backbone's features of the samples (cached), before standardisation, and the samples kept."""
        return extract(self.extractor, samples, desc=desc, skip_bad=skip_bad, device=self.device,
                       bit_depth=self.bit_depth, precision=backbone_precision(self.precision))

    def set_precision(self, precision: str = None) -> "Run":
        """Score with fp32 or bf16 from now on (None: the default for the run's device)."""
        self.precision = resolve_precision(precision, self.device)
        return self

    def autocast(self):
        """The context the eps-network runs in: bf16 autocast, or none for fp32."""
        return autocast(self.device, self.precision)

    def backbone_autocast(self):
        """The context the backbone runs in: none (fp32) under either precision (adlib/method/precision.py)."""
        return backbone_autocast(self.device, self.precision)

    def invert(self, z, steps=None, grid=None, batch_size=64, trajectory=False):
        points = make_grid(steps or self.cfg.steps, grid or self.cfg.grid)
        with self.autocast():
            outs = [_to_cpu(invert(self.model, z[i:i + batch_size].to(self.device), points, trajectory))
                    for i in range(0, len(z), batch_size)]
        if not trajectory:
            return torch.cat(outs)
        return outs[0][0] if len(outs) == 1 else torch.cat([o[0] for o in outs]), \
            [torch.cat([o[1][k] for o in outs]) for k in range(len(points))]

    def scores(self, z, steps=None, grid=None) -> dict:
        """nll, diff (numpy) and the norm map (B x h x w) of the inverted latents."""
        return scoring.raw_scores(self.invert(z, steps, grid))

    def calibration(self, steps=None, grid=None, score=None, fpr=None, z_val=None) -> dict:
        """The saved calibration when it was made for this S, grid, score (and fpr); else one fitted now, the
        same way, on the run's normal validation images (`z_val`: their standardised features, if at hand)."""
        steps, grid, score = steps or self.cfg.steps, grid or self.cfg.grid, score or self.cfg.score
        path = self.path / calibration.FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            if (saved.get("steps"), saved.get("grid"), saved.get("score")) == (steps, grid, score) \
                    and "fpr_guaranteed" in saved and (fpr is None or saved["fpr"] == fpr):
                return {**saved, "source": str(path)}
        if self.cfg.calibration == "cross-fit":  # every normal image, each scored by models fitted without it
            record = full_conformal.mark(self.cfg, crossfit.calibrate(self.cfg, crossfit.normal_features(self), steps,
                                                                      grid, score, 0.05 if fpr is None else fpr))
            return {**record, "source": "cross-fitted now on the run's normal images"}
        if z_val is None:
            data = with_val_share(load_spec(self.cfg.data, self.cfg.split_seed), self.cfg.val_share, self.cfg.split_seed)
            z_val, _ = self.features(data.val, "val features")
        record = calibration.fit(self.scores(z_val, steps, grid), score, 0.05 if fpr is None else fpr,
                                 seed=self.cfg.split_seed, pool=self.cfg.map_pool)
        return {"steps": steps, "grid": grid, **record, "source": "fitted now on the validation normals"}


def _to_cpu(out):
    """Inversion results come back to the CPU, where scores and metrics are computed."""
    return out.cpu() if torch.is_tensor(out) else (out[0].cpu(), [x.cpu() for x in out[1]])


def train_run(cfg: RunConfig, out, resume: bool = False, progress: bool = True, skip_bad: bool = False) -> Run:
    """Features -> standardisation -> training -> RUN/; under `accelerate launch` only the main process writes.

    Every option is checked before the run folder is created, so bad input never leaves a half-made run."""
    from accelerate import PartialState
    out = Path(out)
    check_out(out)
    try:
        fitted = closed_form(cfg)  # nothing trained: one copy of the model, no iterations, loss or EMA
    except TypeError:
        fitted = False  # model settings that do not fit the model: check_options says so below
    if fitted:
        cfg = replace(cfg, iters=0, epochs=0.0)
    if (out / "config.json").is_file():
        if not resume:
            raise AdlibError(f"{out} already holds a run: pass --resume to continue it or choose another --out")
        saved = RunConfig.load(out / "config.json")
        # a closed-form run's iters decide nothing (runs before recorded the asked ones): compared as saved
        as_saved = lambda c: replace(c, iters=saved.iters, epochs=saved.epochs) if fitted else c  # noqa: E731
        saved.check_resume(as_saved(cfg), out)
    state = PartialState(cpu=pick_device(cfg.device) == "cpu")  # fails early on --device cuda without CUDA
    check_options(cfg, state.num_processes)
    t0 = time.perf_counter()
    data = with_val_share(load_spec(cfg.data, cfg.split_seed), cfg.val_share, cfg.split_seed)
    cfg = replace(cfg, calibration=crossfit.resolve(cfg))  # cross-fit (closed-form models) or split, saved resolved
    check_normals(cfg, data.train, data.val, warn_few=False)
    if cfg.bit_depth < 0:  # resolved once from the training images, saved, and used for every later image
        cfg = replace(cfg, bit_depth=_bit_depth(data.train))
    extractor = use_engine(FeatureExtractor(cfg.backbone, cfg.image_size).to(state.device), state.device)
    with state.main_process_first():  # the main process fills the feature cache, the others read it
        depth = decode_depth(cfg.bit_depth)
        z_train, train = extract(extractor, data.train, desc="train features", skip_bad=skip_bad,
                                 device=state.device, bit_depth=depth)
        z_val, val = extract(extractor, data.val, desc="val features", skip_bad=skip_bad,
                             device=state.device, bit_depth=depth)
    check_normals(cfg, train, val)  # what is left after skipping bad images
    cfg = replace(cfg, iters=cfg.iters_for(len(train)))
    if resume and (out / "config.json").is_file():  # now that epochs and bit depth are resolved
        saved.check_resume(as_saved(cfg), out)
    record = data.split_record()  # the files actually kept: what the processes compare and the run used
    kept = {s.path for s in train + val}
    record.update(train=[s.path for s in train], val=[s.path for s in val],
                  skipped_files=[s.path for s in data.train + data.val if s.path not in kept])
    record["skipped"] = len(record["skipped_files"])
    record["fitted_on"] = "train+val" if cfg.calibration == "cross-fit" else "train"
    digest = _same_split_everywhere(state, record)  # of split.json as written
    z_fit = torch.cat([z_train, z_val]) if cfg.calibration == "cross-fit" else z_train  # cross-fit: every normal
    cfg, stats = crossfit.with_choice(cfg, z_fit)  # what `--standardize auto` chose goes into config.json
    cfg = replace(cfg, grad_checkpointing=resolve_grad_checkpointing(  # `auto`: from memory, saved resolved
        cfg.grad_checkpointing, cfg.model, z_fit.shape[1], z_fit.shape[-1], cfg.batch_size // state.num_processes,
        state.device, cfg.model_kwargs, len(z_fit)))
    compact = refit.worth_it(cfg, z_fit, stats)  # keep the normal features, not the P x C x C fit
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be good
        if compact:
            refit.save_stats(out, z_fit, stats)
        else:
            (out / refit.FILE).unlink(missing_ok=True)  # a resumed run's earlier compact form
            atomic_save({k: v.contiguous() for k, v in stats.items()}, out / "stats.safetensors")
        cfg.save(out / "config.json")
        write_json(record, out / "split.json")
    state.wait_for_everyone()
    t1 = time.perf_counter()
    raw, ema, losses, _ = fit(cfg, standardize(z_fit, stats), out, resume=resume, progress=progress)
    if state.is_main_process:
        write_json({"features_seconds": round(t1 - t0, 1), "train_seconds": round(time.perf_counter() - t1, 1),
                    "iters": 0 if fitted else cfg.iters, "closed_form": fitted, "resumed": resume,
                    "processes": state.num_processes, "effective_batch": cfg.batch_size, "split_sha256": digest},
                   out / "timing.json")
        refit.save_model(raw, out / "model") if compact else atomic_save_pretrained(raw, out / "model")
        if fitted and (out / "ema").is_dir():  # an earlier version's copy would shadow the refitted model
            shutil.rmtree(out / "ema")
        if not fitted:
            atomic_save_pretrained(ema, out / "ema")
            lr = [cfg.lr * lr_lambda(cfg)(i) for i in range(len(losses))]
            atomic_write_text(out / "loss.csv", "iter,loss,lr\n" + "".join(f"{i + 1},{l:.6f},{r:.3e}\n" for i, (l, r) in enumerate(zip(losses, lr))))
    state.wait_for_everyone()
    run = Run(out, device=state.device.type)
    run.num_processes = state.num_processes
    if state.is_main_process:
        calibrate(run, standardize(z_val, stats), z_normals=z_fit)
    return run


def check_normals(cfg: RunConfig, train, val, warn_few: bool = True):
    """Enough normals to calibrate: 2 validation images for a split, 3 in all (and --folds) for cross-fitting."""
    if cfg.calibration == "cross-fit":
        calibration.fold_ids(len(train) + len(val), cfg.folds)
    else:
        calibration.check_validation_size(len(val), f"--data {cfg.data}", warn_few)


def check_options(cfg: RunConfig, num_processes: int = 1):
    """Options that would otherwise fail only inside training, after files were written."""
    if cfg.batch_size % num_processes:
        raise AdlibError(f"--batch-size {cfg.batch_size} is the effective batch of {num_processes} processes: "
                         f"use a multiple of {num_processes}")
    if cfg.bit_depth not in (-1, 0, *range(8, 17)):
        raise AdlibError(f"--bit-depth {cfg.bit_depth}: use 8..16 for integer images, 0 for float images in [0, 1]")
    try:
        crossfit.shape_model(cfg)
    except TypeError as e:
        raise AdlibError(f"model settings {cfg.model_kwargs} do not fit --model {cfg.model}: {e}") from None


def closed_form(cfg: RunConfig) -> bool:
    """Whether the run's model is fitted in closed form with nothing to train (`--model gaussian`)."""
    return crossfit.nothing_to_train(cfg)


def weights_dir(path, weights: str = "ema") -> Path:
    """The folder holding a run's `weights`: RUN/<weights>, except that a closed-form run stores its model once,
    in RUN/model, which is then also its `ema` (runs written before kept a copy in RUN/ema, used as it is)."""
    path = Path(path)
    if weights == "ema" and not (path / "ema" / "config.json").is_file() \
            and (path / "model" / "config.json").is_file() and (path / "config.json").is_file():
        try:
            if closed_form(RunConfig.load(path / "config.json")):
                return path / "model"
        except (TypeError, ValueError, KeyError, AdlibError):
            pass  # an unreadable config: RUN/ema, whose absence is then reported
    return path / weights


def finished(path) -> bool:
    """Whether RUN holds a finished run's default weights (trained or fitted)."""
    return (weights_dir(path) / "config.json").is_file()


def check_out(out: Path):
    """`train --out`: a new or empty folder, or an adlib run (to resume); never a folder of other files."""
    if out.exists() and not out.is_dir():
        raise AdlibError(f"--out {out} is a file: give a new folder for the run")
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        RunConfig.load(out / "config.json")
        is_run = (out / "stats.safetensors").is_file()  # written first, with config.json
    except (OSError, ValueError, TypeError, AdlibError):
        is_run = False
    if not is_run:
        raise AdlibError(f"--out {out} is not empty and is not an adlib run (no config.json and stats.safetensors "
                         f"written by `adlib train`): give a new folder, e.g. --out {out / 'run'}")


def fingerprint(run, weights: str) -> str:
    """sha256 of what decides the run's scores: its config, standardisation, calibration and weights files."""
    h = hashlib.sha256()
    files = [run.path / "config.json", run.path / "stats.safetensors", run.path / refit.FILE, run.path / calibration.FILE]
    for p in files + sorted(weights_dir(run.path, weights).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(run.path).as_posix().encode())
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def decode_depth(bit_depth: int):
    """The config's bit depth as the decoder takes it: None (each image by its own range) for 8-bit data, where it
    is the same as 8 and shares one cache entry per image, and for runs saved before the field existed."""
    return None if bit_depth in (-1, 8) else bit_depth


def _bit_depth(samples) -> int:
    """Bits of the training images (8 for ordinary 8-bit files), inferred once per run."""
    found = infer_bit_depth([s.path for s in samples])
    return 8 if found is None else found


def _same_split_everywhere(state, record) -> str:
    """sha256 of the split; under several processes every one must have drawn the same split."""
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    if state.num_processes > 1:
        from accelerate.utils import gather_object
        if len(set(gather_object([digest]))) != 1:
            raise AdlibError("the processes drew different train/val/test splits: give every process the same "
                             "--data and --split-seed, and the same files")
    return digest


def calibrate(run: Run, z_val, fpr: float = 0.05, z_normals=None) -> dict:
    """Fit the score's normaliser and a threshold at `fpr` (adlib/method/calibration.py): cross-fitted on the raw
    features of every normal (`z_normals`, adlib/runs/crossfit.py), or split over the standardised validation
    features `z_val`; warns, once, when the images are few (what can be promised, what it costs)."""
    if run.cfg.calibration == "cross-fit":
        cal = full_conformal.mark(run.cfg, crossfit.calibrate(run.cfg, z_normals, run.cfg.steps, run.cfg.grid,
                                                              run.cfg.score, fpr))
    else:
        cal = {"steps": run.cfg.steps, "grid": run.cfg.grid,
               **calibration.fit(run.scores(z_val), run.cfg.score, fpr, seed=run.cfg.split_seed, pool=run.cfg.map_pool)}
    write_json(cal, run.path / calibration.FILE)
    if cal.get("score_choice"):  # `--score auto`: config.json keeps the score chosen, and why
        run.cfg = replace(run.cfg, score=cal["score"], score_choice=cal["score_choice"])
        run.cfg.save(run.path / "config.json")
    if cal.get("warning"):
        warn(f"--data {run.cfg.data}: {cal['warning']}")
    return cal

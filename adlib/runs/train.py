"""Training loop: DDPM eps-prediction on (standardised) features of normal images.

AdamW, linear warm-up then cosine decay, grad-norm clipping, EMA weights (used for scoring; diffusers'
EMAModel, whose decay at step n warms up as min(ema_decay, n / (n + 9)), so 0.999 is reached after ~9,000
steps). Runs under `accelerate launch` for several GPUs/processes (DDP): cfg.batch_size is the effective
batch, split evenly across processes; only the main process writes. Plain Python runs on one device.
Checkpoints are atomic; `resume=True` continues bit-identically on CPU.
"""
import copy
import math
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from adlib.errors import AdlibError
from adlib.files import atomic_path, atomic_replace_dir
from adlib.method.inversion import eval_timesteps
from adlib.models import build_model
from adlib.runs.memory import resolve_grad_checkpointing
from adlib.schedule import training_loss

CHECKPOINT = "checkpoint.pt"


def lr_lambda(cfg):
    """Multiplier on cfg.lr at iteration i: min_lr -> lr linearly, then cosine back to min_lr."""
    warm, floor = max(1, int(cfg.warmup * cfg.iters)), cfg.min_lr / cfg.lr

    def f(i):
        if i < warm:
            return floor + (1 - floor) * i / warm
        progress = (i - warm) / max(1, cfg.iters - warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return f


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise AdlibError("--device cuda was asked but torch sees no CUDA GPU: use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise AdlibError(f"unknown --device {device!r}: choose auto, cpu or cuda")
    return device


def atomic_torch_save(obj, path: Path):
    """torch.save through a temporary file (fsync, rename); read back with weights_only=True."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_save_pretrained(model, path: Path):
    """save_pretrained into a new folder, then swap it in (the old one is renamed aside first, never lost)."""
    atomic_replace_dir(model.save_pretrained, path)


def load_checkpoint(path: Path) -> dict:
    """The resumable state, loaded with weights_only=True: tensors and plain data only, so a crafted
    checkpoint in a shared run folder cannot execute code; anything else is refused in one line."""
    import pickle
    try:
        return torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise AdlibError(f"{path} is not a checkpoint adlib wrote (it holds more than tensors and plain data, or is "
                         f"damaged: {reason}); it was not loaded: delete it to restart training from iteration 0, "
                         f"or choose a new --out") from None


def save_ema_snapshot(model, ema, path: Path):
    params = list(model.parameters())
    ema.store(params)
    ema.copy_to(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_pretrained(model, path)
    ema.restore(params)


def fit(cfg, z: torch.Tensor, out: Path, resume: bool = False, progress: bool = True):
    """Train an eps-network on features z (N x C x h x w, already standardised); returns (raw, ema, losses)."""
    from accelerate import Accelerator

    device = pick_device(cfg.device)
    acc = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if device == "cuda" else "no")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, z.shape[1], z.shape[-1], **cfg.model_kwargs)
    if hasattr(model, "fit_base"):  # a closed-form Gaussian part (adlib/models/gaussian.py): fitted, not trained
        model.fit_base(z)
    if not any(p.requires_grad for p in model.parameters()):  # `--model gaussian`: nothing to train
        return model.eval(), copy.deepcopy(model).eval(), [], acc
    if resolve_grad_checkpointing(cfg.grad_checkpointing, cfg.model, z.shape[1], z.shape[-1],  # `auto`: memory
                                  cfg.batch_size // acc.num_processes, device, cfg.model_kwargs, len(z)):
        model.enable_gradient_checkpointing()
    if cfg.batch_size % acc.num_processes:
        raise AdlibError(f"--batch-size {cfg.batch_size} is the effective batch of {acc.num_processes} processes: "
                         f"use a multiple of {acc.num_processes}")
    local_batch = cfg.batch_size // acc.num_processes  # so a recipe means the same on 1 GPU or 8
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + acc.process_index)  # batches and noise
    start, losses = 0, []
    focus_t = eval_timesteps(grid=cfg.grid)
    ckpt = out / CHECKPOINT
    if resume and ckpt.is_file():
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"]), ema.load_state_dict(state["ema"])
        gen.set_state(state["gen"][acc.process_index] if isinstance(state["gen"], list) else state["gen"])
        start, losses = state["iter"], state["losses"]
    model, opt = acc.prepare(model, opt)
    ema.to(acc.device)
    z = z.to(acc.device)
    bar = tqdm(range(start, cfg.iters), initial=start, total=cfg.iters, desc="train",
               disable=not (progress and acc.is_main_process))
    for i in bar:
        idx = torch.randint(0, z.shape[0], (local_batch,), generator=gen)
        with acc.autocast():
            loss = training_loss(model, z[idx.to(z.device)], gen, focus_t, cfg.t_focus)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step(), sched.step()
        ema.step(acc.unwrap_model(model).parameters())
        losses.append(acc.gather(loss.detach()[None]).mean().item())
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", refresh=False)
        if (i + 1) % cfg.checkpoint_every == 0 or i + 1 == cfg.iters:
            gens = acc.gather(torch.as_tensor(gen.get_state())[None]) if acc.num_processes > 1 else gen.get_state()
            state = {"model": acc.unwrap_model(model).state_dict(), "opt": opt.state_dict(),
                     "sched": sched.state_dict(), "ema": ema.state_dict(), "iter": i + 1, "losses": losses,
                     "gen": list(gens) if acc.num_processes > 1 else gens}
            if acc.is_main_process:
                atomic_torch_save(state, ckpt)
                if cfg.snapshots:  # EMA weights at this iteration, for label-free checkpoint choice
                    save_ema_snapshot(acc.unwrap_model(model), ema, out / "snapshots" / f"iter_{i + 1:06d}")
    raw = acc.unwrap_model(model).to("cpu").float()
    ema_model = build_model(cfg.model, z.shape[1], z.shape[-1], **cfg.model_kwargs)
    ema_model.load_state_dict(raw.state_dict())  # buffers too (a fitted Gaussian base); EMA sets the parameters
    ema.to("cpu")
    ema.copy_to(ema_model.parameters())
    return raw.eval(), ema_model.eval(), losses, acc

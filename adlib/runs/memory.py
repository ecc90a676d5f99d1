"""Does training fit in the device's memory without gradient checkpointing? (`--grad-checkpointing auto`)

Gradient checkpointing trades a fourth forward pass (a third more training FLOPs, adlib/evaluation/scale.py)
for activation memory; it is worth it only when the activations would not fit. `auto` (the `paper` recipe)
resolves at training time, once, and config.json records what was used (true / false):

    need = TRAIN_BYTES_PER_PARAM x parameters        weights, gradients, AdamW moments, EMA (fp32 master)
         + activations per image x local batch        saved for backward, counted on the meta device
         + the training features on the device
    on CUDA: off when need <= HEADROOM x torch.cuda.mem_get_info()'s free bytes, else on; on the CPU: off
    (host memory is not the limit there, and the CPU recipe trains small models).

The activations are counted, not modelled: one forward pass of the preset on the `meta` device (shapes,
no memory) at batch 1 and at batch 2 under torch.autograd.graph.saved_tensors_hooks; the difference is what
one more image keeps alive for backward. They are counted in float32, an upper bound of bf16 autocast's
(which saves the matmul inputs in bf16), so the estimate errs toward checkpointing. `--grad-checkpointing` /
`--no-grad-checkpointing` force it either way.
"""
import torch

# Bytes per parameter while training with AdamW in fp32 master weights (bf16 autocast keeps them fp32):
# weights 4 + gradients 4 + Adam's two moments 8 + the EMA copy 4.
TRAIN_BYTES_PER_PARAM = 20
HEADROOM = 0.8  # the allocator's fragmentation, the CUDA context, cuDNN/cuBLAS workspaces
AUTO = "auto"


def saved_bytes(model, batch: int, channels: int, grid: int) -> int:
    """Bytes of every tensor autograd saves in one forward pass of `model` (built on meta) at `batch`."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    x = torch.zeros(batch, channels, grid, grid, device="meta", requires_grad=True)
    t = torch.zeros(batch, dtype=torch.long, device="meta")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, t)
    return total


def training_memory(model_name: str, channels: int, grid: int, local_batch: int, model_kwargs=None,
                    n_features: int = 0) -> dict:
    """Bytes to train preset `model_name` without checkpointing: params_bytes, activation_bytes (per_image x
    local_batch), features_bytes, total; and whether the model can checkpoint at all (`supports`)."""
    from adlib.models import build_model
    with torch.device("meta"):
        model = build_model(model_name, channels, grid, **(model_kwargs or {})).train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    per_image = max(0, saved_bytes(model, 2, channels, grid) - saved_bytes(model, 1, channels, grid))
    out = {"params_bytes": TRAIN_BYTES_PER_PARAM * trainable, "activation_bytes": per_image * local_batch,
           "activation_bytes_per_image": per_image, "features_bytes": 4 * n_features * channels * grid * grid,
           "supports": bool(getattr(model, "_supports_gradient_checkpointing", False)) and trainable > 0}
    out["total"] = out["params_bytes"] + out["activation_bytes"] + out["features_bytes"]
    return out


def free_bytes(device) -> int:
    """Free memory of a CUDA device (torch.cuda.mem_get_info); None elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.mem_get_info(device)[0]


def resolve_grad_checkpointing(setting, model_name: str, channels: int, grid: int, local_batch: int, device,
                               model_kwargs=None, n_features: int = 0, free=None) -> bool:
    """True / False as given; `auto`: on only on CUDA when training without it would not fit (module doc).
    free: the device's free bytes (None: asked of the device); tests pass a number."""
    if setting != AUTO:
        return bool(setting)
    if torch.device(device).type != "cuda":
        return False
    need = training_memory(model_name, channels, grid, local_batch, model_kwargs, n_features)
    if not need["supports"]:
        return False
    free = free_bytes(device) if free is None else free
    return need["total"] > HEADROOM * free

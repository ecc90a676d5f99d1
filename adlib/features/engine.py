"""The backbone's CPU engine: the same FeatureExtractor exported to ONNX and run by onnxruntime, ~9x faster on 2 cores.

Why: on the CPU, onnxruntime runs EfficientNet-Lite0 (fused conv+BN+swish, its own kernels) about ten times faster
than torch eager, channels-last, torch.compile or bf16 autocast (docs/bench/cpu-speed.md), and its features equal
torch fp32's within 1.5e-4 of features up to ~50 (float rounding order), so scores agree within 1e-4.

Choice: `ADLIB_FEATURE_ENGINE` = auto (default: onnx on the CPU when onnxruntime and onnx are installed, else torch)
| torch | onnx (onnxruntime or an error); `use_engine(extractor, device, engine)` overrides it. On CUDA (or any
non-CPU device) the torch path stays: onnxruntime runs here on the CPU only.

How: `use_engine` attaches an OnnxBackbone to a FeatureExtractor; FeatureExtractor.forward hands it a batch only
when the call is plain (`plain_call`): a float32 CPU tensor, no autocast (bf16 runs torch), not inside an
exporter, torch.compile, or a dispatch mode (FLOP counting, fake tensors). Everything else runs torch, so export,
compile, FLOP counts and bf16 see the torch module as before.

The graph: exported once per (backbone, image size, weights identity, torch version) into
<feature cache>/engines/<key>.onnx, written atomically, reused by every later process; the batch axis is dynamic.
Weights identity = sha256 of the extractor's state_dict, so a random-weight extractor gets its own graph.
Cached features are shared with torch fp32 (adlib/features/cache.py keys them alike): the engines differ by
float32 rounding only (max |dz| 1.2e-4-1.5e-4 measured on ELPV, ~3e-6 of the largest feature).
"""
import copy
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from adlib.errors import AdlibError, warn
from adlib.features.onnx_graph import to_onnx

ENV = "ADLIB_FEATURE_ENGINE"
ENGINES = ("auto", "torch", "onnx")
ENGINE_VERSION = 1  # bump when the exported graph changes meaning
OPSET = 18
INSTALL = 'pip install "adlib[onnx]" (or: pip install onnx onnxruntime)'
_SESSIONS = {}  # graph path -> onnxruntime session, shared by every extractor of this process


def onnx_available() -> bool:
    """onnxruntime (to run) and onnx (torch's exporter writes through it) are importable."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def resolve_engine(engine=None, device="cpu") -> str:
    """torch or onnx: `engine` as asked (None: $ADLIB_FEATURE_ENGINE, default auto) for a backbone on `device`."""
    name = engine or os.environ.get(ENV) or "auto"
    if name not in ENGINES:
        raise AdlibError(f"unknown feature engine {name!r} ({ENV}): choose auto, torch or onnx")
    cpu = torch.device(device).type == "cpu"
    if name == "onnx" and not cpu:
        raise AdlibError(f"the onnx feature engine runs on the CPU only, not on {device}: set {ENV}=auto or torch")
    if name == "onnx" and not onnx_available():
        raise AdlibError(f"{ENV}=onnx needs onnxruntime and onnx: {INSTALL}, or set {ENV}=torch")
    if name == "auto":
        return "onnx" if cpu and onnx_available() else "torch"
    return name


def use_engine(extractor, device="cpu", engine=None):
    """The extractor, with an OnnxBackbone attached when the engine resolves to onnx (removed for torch)."""
    name = resolve_engine(engine, device)
    extractor.engine = OnnxBackbone(extractor, strict=(engine or os.environ.get(ENV)) == "onnx") \
        if name == "onnx" else None
    return extractor


def plain_call(images) -> bool:
    """Whether onnxruntime may answer this call exactly as torch fp32 would (see the module docstring)."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode
    return (type(images) is torch.Tensor and images.device.type == "cpu" and images.dtype == torch.float32
            and images.dim() == 4 and not torch.is_autocast_enabled("cpu") and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling()
            and not torch.compiler.is_exporting() and _get_current_dispatch_mode() is None)


def engines_dir() -> Path:
    """Where exported backbone graphs live: <feature cache>/engines (see adlib/features/cache.py)."""
    from adlib.features.cache import cache_dir
    return cache_dir() / "engines"


def weights_identity(extractor) -> str:
    """sha256 of the extractor's state_dict (names and bytes): what the exported graph's constants are."""
    h = hashlib.sha256()
    for name, value in extractor.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def graph_path(extractor) -> Path:
    """<engines dir>/<backbone>-<size>-<sha256 of weights, torch version, engine version>.onnx."""
    key = hashlib.sha256(f"{weights_identity(extractor)}|{torch.__version__}|v{ENGINE_VERSION}|{OPSET}".encode())
    return engines_dir() / f"{extractor.backbone}-{extractor.image_size}-{key.hexdigest()[:20]}.onnx"


def export_backbone(extractor, path: Path) -> Path:
    """Write the extractor's graph to `path` atomically (torchscript exporter: ~1 s; dynamo if it is gone)."""
    from adlib.features.cache import _write_atomic
    module = copy.deepcopy(extractor).cpu().eval()
    module.engine = None
    example = torch.rand(2, 3, extractor.image_size, extractor.image_size)
    try:
        data = to_onnx(module, example, ["images"], ["features"], "torchscript", OPSET)
    except Exception:  # the torchscript exporter may leave torch one day: the dynamo one
        data = to_onnx(module, example, ["images"], ["features"], "dynamo", OPSET)
    _write_atomic(data, path)
    return path


def session(path: Path, threads: int = None):
    """An onnxruntime CPU session of the graph (all graph optimisations, intra-op threads = torch's), shared."""
    threads = threads or torch.get_num_threads()
    key = (str(path), threads)
    if key not in _SESSIONS:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        # no busy-waiting after a run: spinning onnxruntime threads took the 2 cores from the torch head that follows
        # each backbone batch (head 2.2x slower than alone; `adlib evaluate` end to end 0.68x -> 0.85x the backbone)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        _SESSIONS[key] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


class OnnxBackbone:
    """A FeatureExtractor's onnxruntime twin: built on first use (graph exported once, then reused from disk).

    strict: a failed export or load is an error (ADLIB_FEATURE_ENGINE=onnx); otherwise a warning, then torch."""

    def __init__(self, extractor, strict: bool = False):
        self.backbone, self.image_size, self.strict = extractor.backbone, extractor.image_size, strict
        self._extractor, self._session, self.failed = extractor, None, False

    def __deepcopy__(self, memo):
        return self  # read-only and shared: a copied extractor (adlib export) keeps the same twin

    def __copy__(self):
        return self

    def ready(self) -> bool:
        """Build the session if needed; False (torch runs) when it cannot be built and strict is off."""
        if self._session is None and not self.failed:
            try:
                path = graph_path(self._extractor)
                if not path.is_file():
                    export_backbone(self._extractor, path)
                self._session = session(path)
            except Exception as e:
                if self.strict:
                    raise AdlibError(f"the onnx feature engine could not be built ({type(e).__name__}: "
                                     f"{str(e).splitlines()[0][:200] if str(e) else ''}): set {ENV}=torch") from None
                self.failed = True
                warn(f"the onnx feature engine could not be built ({type(e).__name__}); features run on torch")
        return self._session is not None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(images.numpy(), dtype=np.float32)
        return torch.from_numpy(self._session.run(None, {"images": x})[0])

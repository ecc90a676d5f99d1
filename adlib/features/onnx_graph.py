"""torch -> ONNX bytes, quietly, with a dynamic batch axis: the one exporter call behind both the feature engine's
backbone graph (adlib/features/engine.py) and `adlib export`'s scoring graph (adlib/deploy/export.py)."""
import io
import logging
import warnings

import torch

EXPORTERS = ("dynamo", "torchscript")


def to_onnx(module, example: torch.Tensor, inputs, outputs, exporter: str, opset: int) -> bytes:
    """The serialised ONNX graph of module(example), the batch axis (0) dynamic on every input and output.
    exporter: "torchscript" (torch.onnx.export(dynamo=False): ~1 s) or "dynamo" (torch.export-based, optimised).
    torch's own warnings and log lines (e.g. "torchvision is not installed") are silenced; its errors are not."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter {exporter!r}: one of {EXPORTERS}")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                batch = torch.export.Dim("batch", min=1)
                program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset,
                                            input_names=list(inputs), output_names=list(outputs),
                                            dynamic_shapes=({0: batch},), external_data=False, optimize=True,
                                            verbose=False)
                return program.model_proto.SerializeToString()
            buffer = io.BytesIO()
            torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset, input_names=list(inputs),
                              output_names=list(outputs), dynamic_axes={n: {0: "batch"} for n in (*inputs, *outputs)})
            return buffer.getvalue()
    finally:
        quiet.setLevel(level)

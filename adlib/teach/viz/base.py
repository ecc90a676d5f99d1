"""Colours, score labels and the small converters every figure module shares."""
import numpy as np
import torch

from adlib.evaluation.metrics import image_metrics

NORMAL, ANOMALOUS, DEFECT = "#1f77b4", "#d62728", "#ff7f0e"
SCORE_LABELS = {"nll": "NLL only", "diff": "Diff only", "combined": "NLL + Diff"}


def _auroc(labels, scores) -> float:
    return image_metrics(labels, scores)["image_auroc"]


def _image_hwc(image) -> np.ndarray:
    a = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.clip(a * 255 if a.max() <= 1.0 else a, 0, 255).astype(np.uint8)

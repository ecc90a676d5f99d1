"""Atomic text and JSON writes: write a temporary file beside the target, then rename it over the target,
so an interrupted run never leaves a half-written file where a finished one is expected."""
import json
from pathlib import Path


def atomic_write_text(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def write_json(obj, path) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")

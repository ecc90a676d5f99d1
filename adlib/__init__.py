"""adlib: reconstruction-free anomaly detection with diffusion models.

Features of normal images -> eps-network trained with DDPM -> score a test image by DDIM-inverting its
features in S = 2-5 steps and reading the density of the result under the N(0, I) prior.

The folders are the architecture; every import points down a floor:
    data -> features -> models -> method -> runs -> evaluation -> deploy -> teach -> cli
with `errors.py`, `files.py` and `schedule.py` (the DDPM forward process) beneath them all.
The entry points below load lazily, so `adlib --help` and `import adlib` do not wait for torch.
"""
__version__ = "0.1.0"

_ENTRY_POINTS = {"RunConfig": "adlib.runs.config", "Run": "adlib.runs.run", "train_run": "adlib.runs.run",
                 "predict": "adlib.deploy.predict", "AdlibError": "adlib.errors"}
__all__ = ["__version__", *_ENTRY_POINTS]


def __getattr__(name):
    if name in _ENTRY_POINTS:
        import importlib
        return getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module 'adlib' has no attribute {name!r}")

"""adlib: reconstruction-free anomaly detection with diffusion models.

Features of normal images -> eps-network trained with DDPM -> score a test image by DDIM-inverting its
features in S = 2-5 steps and reading the density of the result under the N(0, I) prior.
"""
__version__ = "0.1.0"

from .config import RunConfig
from .errors import AdlibError
from .run import Run, train_run

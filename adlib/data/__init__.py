"""Data: MVTec-layout folders, the embedded ELPV set, the generated miniature, image decoding."""
from .datasets import Dataset, Sample, load_elpv, load_mvtec, load_spec
from .images import load_image, load_mask, load_masks
from .mini import make_mini_mvtec, make_mini_root

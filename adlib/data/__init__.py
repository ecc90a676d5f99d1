"""Data, floor 1: MVTec-layout folders, plain folders (folder:), the embedded ELPV set, the generated miniature, image
decoding, and where relative folder names are found (the data folder, $ADLIB_DATA)."""
from adlib.data.datasets import Dataset, Sample, load_elpv, load_folder, load_mvtec, load_spec
from adlib.data.images import load_image, load_mask, load_masks
from adlib.data.mini import make_mini_mvtec, make_mini_root
from adlib.data.paths import data_dir

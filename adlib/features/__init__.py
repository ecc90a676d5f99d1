"""Features, floor 2: the frozen ImageNet backbone (`backbone.py`: EfficientNet stages -> C x h x w), the per-image
feature cache keyed by content (`cache.py`) and feature standardisation (`standardize.py`: per channel, per
position, or per-position whitening). Imports only `adlib.data` and the shared `errors` / `files`."""

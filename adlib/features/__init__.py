"""Features, floor 2: the frozen ImageNet backbone (`backbone.py`: EfficientNet stages -> C x h x w), its
CPU engine (`engine.py`: the backbone exported to ONNX, run by onnxruntime; `onnx_graph.py`: the one
torch -> ONNX call, also behind `adlib export`), the per-image feature cache
keyed by content (`cache.py`), feature standardisation (`standardize.py`: per channel, per
position, per-position whitening, or `auto`: the Gaussian chosen on held-out normals) and the covariance
statistics and that choice (`covariance.py`). Imports only `adlib.data` and the shared `errors` / `files`."""

"""Deploy, floor 7: a finished run on new images. `report.py` writes the offline HTML report (its page
style, script and histogram in `report_page.py`), `export.py` the
ONNX graph and its onnxruntime scorer, `engines.py` the scoring step predict uses (torch or that graph) and how
it is chosen, `predict.py` the streaming, resumable `predict(run, inputs, out)`."""

OPSET = 18  # ONNX opset `adlib export` writes; here so the CLI need not import torch to show it

#!/usr/bin/env bash
# Create .venv (Python >= 3.10) and install adlib with everything its notebooks and tests use.
# torch is pinned to the 2.13.0 CPU wheel: an open range would pull a CUDA build and ~2.7 GB of
# nvidia wheels. On a GPU machine install the CUDA torch you need first, then `pip install -e .`.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet() { "$@" 2>&1 | { grep -v "is ignored" || true; }; return "${PIPESTATUS[0]}"; }
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
quiet .venv/bin/python -m pip install -q --upgrade pip
quiet .venv/bin/python -m pip install -q "torch==2.13.0"
quiet .venv/bin/python -m pip install -q -e ".[test,notebooks,onnx]"
bash scripts/widget_js.sh  # widget + MathJax JS for offline HTML exports, pinned, into .venv/share
.venv/bin/python -c "import adlib, torch; print(f'adlib {adlib.__version__} ready (torch {torch.__version__})')"

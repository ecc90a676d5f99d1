#!/usr/bin/env bash
# What tests/test_browser.py needs, installed idempotently: Debian's `chromium` (apt-get) and the Python
# package playwright (pip, into .venv). Playwright drives /usr/bin/chromium directly: never run
# `playwright install` (it downloads its own browser, which cannot be reached from these machines).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import playwright" 2>/dev/null || "$PY" -m pip install -q playwright
echo "browser deps ready: $(chromium --version 2>/dev/null | head -1), playwright $("$PY" -c 'from importlib.metadata import version; print(version("playwright"))')"

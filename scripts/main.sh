#!/usr/bin/env bash
# The main job: set up .venv, then run the notebook sequence headless on the embedded ELPV data
# (profile cpu: a meaningful model on a laptop CPU). Executed notebooks and HTML go to runs/notebooks-cpu.
# Extra arguments go to `adlib notebooks run`, e.g. `bash scripts/main.sh --data elpv:poly`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/adlib notebooks run --profile cpu --out runs/notebooks-cpu "$@"

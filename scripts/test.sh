#!/usr/bin/env bash
# The test command of the README and CI: set up .venv, then the unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"

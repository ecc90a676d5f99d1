#!/usr/bin/env bash
# Every GPU figure the README still lacks, in one prepared run (about 8 minutes on one H200):
#   1. scoring throughput of the paper's 1.2 B DiT with EfficientNet-B4 (random backbone weights time the
#      same), batch 1 and 64, bf16, with and without torch.compile;
#   2. the same for the default per-position MLP with Lite0;
#   3. a short bf16 GPU training of the default model on ELPV mono, then its evaluation on the GPU.
# Output: $OUT (default runs/gpu-check) holds one JSON per step and gpu-check.log. Never part of CI.
# Usage on a CUDA machine, after installing a CUDA torch and `pip install -e .`:  bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu-check}"
mkdir -p "$OUT"
ADLIB="${ADLIB:-python -m adlib}"
step() { echo "== $*" | tee -a "$OUT/gpu-check.log"; ( time "$@" ) 2>&1 | tee -a "$OUT/gpu-check.log"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu-check.log"
step $ADLIB throughput --model dit-paper --backbone b4 --device cuda --batch-sizes 1,64 --bf16 --warmup 3 --batches 10 --json "$OUT/dit-paper-bf16.json"
step $ADLIB throughput --model dit-paper --backbone b4 --device cuda --batch-sizes 1,64 --bf16 --compile --warmup 3 --batches 10 --no-flops --json "$OUT/dit-paper-bf16-compile.json"
step $ADLIB throughput --model mlp --device cuda --batch-sizes 1,64 --bf16 --warmup 3 --batches 20 --json "$OUT/mlp-bf16.json"
step $ADLIB train --data elpv:mono --out "$OUT/elpv-mono" --device cuda
step $ADLIB evaluate "$OUT/elpv-mono" --device cuda --json "$OUT/elpv-mono-eval.json"
cat "$OUT/elpv-mono/timing.json" | tee -a "$OUT/gpu-check.log"

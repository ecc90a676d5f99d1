#!/usr/bin/env bash
# GPU check (issue 21: every command on a GPU, in bf16), one device call inside 9 minutes, steps ordered by value:
#   1. the default (closed-form `gaussian`) on ELPV poly: train, evaluate, predict, export, all on CUDA
#      (evaluate crashed there before issue 21: a CUDA EpsGaussian was sent CPU features);
#   2. the same for `gaussian+dit` (a short training);
#   3. bf16 vs fp32 parity of the default on elpv:poly:dev (benchmarks/bf16_parity.py);
#   4. scoring throughput of the paper DiT + B4 (random backbone weights time the same), batch 1 / 64, bf16,
#      without and with torch.compile;
#   5. the default end to end against the backbone alone (throughput of the trained run, bf16 and fp32);
#   6. the `full` notebook profile with a short parameter set (ITERS etc. cut), on CUDA.
# Every step runs under `timeout` and appends to $OUT/log.txt; JSON results land in $OUT (<= 8 files).
# On the device (/work/shared/gpu/README.md): `bash .gpu/run.sh bash benchmarks/gpu_check.sh`, carry .gpu.
# Dry run on the CPU with tiny settings (mini data, lite0 at 128 px, small DiT):
#   DEVICE=cpu TINY=1 OUT=/tmp/gpu-dry bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE="${DEVICE:-cuda}"
TINY="${TINY:-0}"
OUT="${OUT:-runs/gpu-check}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
ADLIB="${ADLIB:-python -m adlib}"
PY="${PY:-python}"
W="$OUT/work"  # runs and predictions: not sent back (only $OUT's top-level JSON and the log matter)
mkdir -p "$W"
step() {  # step SECONDS NAME command...
  local limit=$1 name=$2; shift 2
  local t0=$SECONDS
  echo "== [$(date +%T)] $name: $* (timeout ${limit}s)" >> "$LOG"
  timeout "$limit" "$@" >> "$LOG" 2>&1
  local rc=$?
  echo "-- $name rc=$rc in $((SECONDS - t0)) s" | tee -a "$LOG"
}
if [ "$TINY" = 1 ]; then
  $ADLIB make-mini-mvtec "$W/mini" --overwrite > /dev/null
  DATA="mvtec:$W/mini"; DEV_DATA="$DATA"; SIZE=(--image-size 128); BIG=(--model dit --backbone lite0 --image-size 128)
  BATCHES=1,4; TIMING=(--warmup 1 --batches 1); DIT_ITERS=20; NB_DATA=mini; NB_SCALE=0.01
else
  DATA=elpv:poly; DEV_DATA=elpv:poly:dev; SIZE=(); BIG=(--model dit-paper --backbone b4)
  BATCHES=1,64; TIMING=(--warmup 3 --batches 10); DIT_ITERS=1500; NB_DATA=elpv:poly; NB_SCALE=0.05
fi
{ echo "gpu_check $(date -Is) DEVICE=$DEVICE TINY=$TINY DATA=$DATA"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } >> "$LOG" 2>&1
# Images for predict: the first 64 test images of the data.
$PY -c "from adlib.data import load_spec; print('\n'.join(s.path for s in load_spec('$DATA').test[:64]))" > "$W/images.txt" 2>> "$LOG"
mapfile -t IMAGES < "$W/images.txt"

for model in gaussian gaussian+dit; do
  tag=${model/+/-}
  run="$W/run-$tag"
  extra=(); [ "$model" = gaussian+dit ] && extra=(--iters "$DIT_ITERS" --batch-size 64)
  step 150 "train $model" $ADLIB train --data "$DATA" --out "$run" --model "$model" --device "$DEVICE" "${SIZE[@]}" "${extra[@]}"
  step 90 "evaluate $model" $ADLIB evaluate "$run" --device "$DEVICE" --json "$OUT/evaluate-$tag.json"
  step 60 "predict $model" $ADLIB predict "$run" "${IMAGES[@]}" --out "$W/predict-$tag" --device "$DEVICE" --engine torch --no-maps --batch-size 32
  cp "$W/predict-$tag/predict.json" "$OUT/predict-$tag.json" 2>/dev/null
  step 150 "export $model" $ADLIB export "$run" --overwrite
done
step 90 "bf16 parity" $PY benchmarks/bf16_parity.py "$W/run-gaussian=$DEV_DATA" --device "$DEVICE" --json "$OUT/bf16-parity.jsonl"
step 120 "throughput paper DiT bf16" $ADLIB throughput "${BIG[@]}" --device "$DEVICE" --batch-sizes "$BATCHES" --precision bf16 "${TIMING[@]}" --json "$OUT/throughput-dit-paper.json"
step 150 "throughput paper DiT bf16 compile" $ADLIB throughput "${BIG[@]}" --device "$DEVICE" --batch-sizes "$BATCHES" --precision bf16 --compile --no-flops "${TIMING[@]}" --json "$OUT/throughput-dit-paper-compile.json"
for p in bf16 fp32; do  # rows hold images/s end to end and backbone_images_per_second: the ratio is the point
  step 60 "throughput default $p" $ADLIB throughput --run "$W/run-gaussian" --device "$DEVICE" --batch-sizes "$BATCHES" --precision "$p" "${TIMING[@]}" --no-flops --json "$W/throughput-default-$p.json"
done
$PY - "$W" "$OUT/throughput-default.json" <<'EOF' >> "$LOG" 2>&1
import json, sys
from pathlib import Path
w = Path(sys.argv[1])
rows = {p: json.loads((w / f"throughput-default-{p}.json").read_text()) for p in ("bf16", "fp32") if (w / f"throughput-default-{p}.json").is_file()}
Path(sys.argv[2]).write_text(json.dumps(rows, indent=1))
EOF
# The full profile, short: a copy of notebooks/profiles/full.yaml with every ITERS/N_TIMING cut by NB_SCALE.
$PY - "$NB_SCALE" "$DEVICE" <<'EOF' >> "$LOG" 2>&1
import sys, yaml
scale, device = float(sys.argv[1]), sys.argv[2]
prof = yaml.safe_load(open("notebooks/profiles/full.yaml"))
for part in prof.values():
    for k, v in list(part.items()):
        if k in ("ITERS", "N_TIMING", "N_EXPLORE", "MAX_POINTS") and isinstance(v, int):
            part[k] = max(8, int(v * scale))
        if k == "DEVICE":
            part[k] = device
        if k == "STEPS" and isinstance(v, list):
            part[k] = [s for s in v if s <= 10]
prof.setdefault("02_train_on_gpu", {}).update(MODEL="dit", MODEL_KWARGS=None) if scale < 0.02 else None
yaml.safe_dump(prof, open("notebooks/profiles/full-short.yaml", "w"))
print("full-short profile:", prof)
EOF
step 240 "notebooks full (short)" $ADLIB notebooks run --profile full-short --data "$NB_DATA" --out "$W/notebooks"
rm -f notebooks/profiles/full-short.yaml
cp "$W"/notebooks/*.json "$OUT/" 2>/dev/null | head -1
echo "== done $(date +%T); results in $OUT" | tee -a "$LOG"

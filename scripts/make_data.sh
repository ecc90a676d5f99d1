#!/usr/bin/env bash
# Generated data to try adlib with, in the data folder (default: the repository's data/; or the folder given):
#   mini/                 the generated miniature category in the MVTec AD layout, with masks  (--data mvtec:mini)
#   mini-folder/good/     its 52 normal images, flat              } a user's layout, no masks
#   mini-folder/bad/      its 18 anomalous images, one subfolder   }  (--data folder:mini-folder/good:mini-folder/bad)
#                         per defect
#   examples/             5 images (2 normal, 1 per defect) to try `adlib predict` or a notebook on a folder
# Everything comes from `adlib make-mini-mvtec DIR/mini --seed 0` (texture weave, 128 px: the notebooks' DATA=mini),
# so the same files come back byte for byte. Existing mini/ is kept; mini-folder/ and examples/ are remade from it.
#   bash scripts/make_data.sh [DIR]          (PYTHON=... to use another interpreter than .venv/bin/python)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$repo/data}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=python3
if [ ! -f "$out/mini/README.txt" ]; then
    "$python" -m adlib make-mini-mvtec "$out/mini" --seed 0
fi
rm -rf "$out/mini-folder" "$out/examples"
mkdir -p "$out/mini-folder/good" "$out/examples"
for split in train test; do
    for f in "$out/mini/$split/good/"*.png; do cp "$f" "$out/mini-folder/good/${split}_$(basename "$f")"; done
done
for d in "$out/mini/test/"*/; do
    defect="$(basename "$d")"
    [ "$defect" = good ] && continue
    mkdir -p "$out/mini-folder/bad/$defect"
    cp "$d"*.png "$out/mini-folder/bad/$defect/"
    cp "$d/000.png" "$out/examples/${defect}_000.png"
done
cp "$out/mini/test/good/000.png" "$out/examples/normal_000.png"
cp "$out/mini/test/good/001.png" "$out/examples/normal_001.png"
echo "wrote $out/mini, $out/mini-folder and $out/examples"

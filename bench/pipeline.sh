#!/usr/bin/env bash
# Whole-process timings of `labels build`, `interrogate --mode fast` and `predict` on ViT-B-32 with
# RANDOM weights (same FLOPs and bytes as the real model), 200 images (the 7 Kaggle PNGs under 200
# names). Prints wall time and peak memory of each command and predict's time by stage.
#   bash bench/pipeline.sh            (after `npm run build`)
set -euo pipefail
cd "$(dirname "$0")/.."
export IMG2PROMPT_HOME="${IMG2PROMPT_HOME:-$PWD/.cache/bench-home}"
export IMG2PROMPT_PROGRESS=0
cli() { node dist/src/cli/bin.cjs "$@"; }
timed() { /usr/bin/time -f "  → %e s wall, %M KiB peak RSS" node dist/src/cli/bin.cjs "$@"; }
MODEL=random-vit-b-32
N="${BENCH_IMAGES:-200}"
[ -d "$IMG2PROMPT_HOME/models/$MODEL" ] || cli models random --arch ViT-B-32 --seed 0 --name "$MODEL"
cli models pull minilm >/dev/null
IMAGES="$IMG2PROMPT_HOME/images-$N"
if [ ! -d "$IMAGES" ]; then
  mkdir -p "$IMAGES"
  src=(../shared/assets/eval/kaggle-sample/images/*.png)
  for i in $(seq 0 $((N - 1))); do cp "${src[$((i % ${#src[@]}))]}" "$IMAGES/img$(printf %04d "$i").png"; done
fi
OUT="$PWD/bench/out"
mkdir -p "$OUT"
echo "machine: $(node --import tsx -e "import('./bench/machine.ts').then((m) => console.log(m.describeMachine()))")"
echo "## labels build (one-time per model; cached afterwards)"
timed labels build --model "$MODEL"
echo "## interrogate --mode fast, $N images (banks cached)"
timed interrogate "$IMAGES" --model "$MODEL" --mode fast -o "$OUT/interrogate-fast.csv"
echo "## predict, $N images, members knn,map,interrogator (first run: builds the prompt bank and the map)"
rm -f "$OUT/predict.csv"
timed predict "$IMAGES" --model "$MODEL" -o "$OUT/predict.csv" --prompts-out "$OUT/predict-prompts.csv"
echo "## predict again (prompt bank, map and label banks cached)"
timed predict "$IMAGES" --model "$MODEL" -o "$OUT/predict.csv" --prompts-out "$OUT/predict-prompts.csv"

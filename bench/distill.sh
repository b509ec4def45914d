#!/usr/bin/env bash
# Distillation benchmark (bench/RESULTS.md, "Distillation"), all figures from one run:
#   1. SmolLM2-135M-Instruct pruned 30 → 21 layers with CoMe and healed (prune --heal, the
#      quickstart's student), unless bench/out/distill/healed exists;
#   2. sgemm GFLOP/s at the model's projection shapes, and one layer's training step
#      (forward with tape + backward with weight gradients) GFLOP/s (surgeon-bench);
#   3. ppl tokens/s of the healed student (wikitext-2 test, first 40 windows of 512);
#   4. distill --mode sp and --mode mp on TOKENS tokens of the shipped training text
#      (wikitext-2 validation + the C4 sample; never the test split), under /usr/bin/time -v,
#      with --save-every and --snapshots, so that
#   5. every snapshot's wikitext-2 test perplexity (40 windows) gives a curve of perplexity
#      against training tokens: bench/distill-curve.csv and bench/distill-curve.png
#      (bench/distill_summary.py also prints the rates, GFLOP/s and RSS).
#
#   bash bench/distill.sh [TOKENS]     (default 204800)
#   SP_OPTS / MP_OPTS: more distill options per mode (e.g. SP_OPTS="--loss mse");
#   SP_EVERY / MP_EVERY: steps between snapshots (default 25 and 50).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
TOKENS=${1:-204800}
read -r -a SP_EXTRA <<< "${SP_OPTS:-}"
read -r -a MP_EXTRA <<< "${MP_OPTS:-}"
CLI=${CKPT_SURGEON:-$PWD/.build/release/ckpt-surgeon}
MODEL=${CKPT_MODEL_GGUF:-$PWD/models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=bench/out/distill
mkdir -p "$OUT"
swift build -c release --product ckpt-surgeon >/dev/null 2>&1
swift build -c release --product SurgeonBench >/dev/null 2>&1
BENCH=$PWD/.build/release/SurgeonBench

if [ ! -f "$OUT/healed/surgery.json" ]; then
    "$CLI" prune "$MODEL" --method come --target-layers 21 --heal -o "$OUT/healed" --force
fi

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "== compute"
"$BENCH" sgemm "$OUT/healed" 512 | tee "$OUT/sgemm.txt"
"$BENCH" train "$OUT/healed" | tee "$OUT/train.txt"
echo "== ppl of the healed student"
"$CLI" ppl "$OUT/healed" --windows 40 --json > "$OUT/ppl-healed.json"
cat "$OUT/ppl-healed.json"

for mode in sp mp; do
    if [ $mode = sp ]; then extra=("${SP_EXTRA[@]}"); every=${SP_EVERY:-25}; else extra=("${MP_EXTRA[@]}"); every=${MP_EVERY:-50}; fi
    echo "== distill --mode $mode --tokens $TOKENS ${extra[*]:-}"
    rm -rf "$OUT/$mode" "$OUT/$mode".step-* "$OUT/$mode.checkpoints"
    /usr/bin/time -v -o "$OUT/$mode.time" "$CLI" distill "$MODEL" "$OUT/healed" -o "$OUT/$mode" --mode "$mode" \
        --tokens "$TOKENS" --save-every "$every" --snapshots "${extra[@]}" 2> "$OUT/$mode.log"
    grep -E "^distill: training" "$OUT/$mode.log"
    grep -E "Maximum resident|Elapsed" "$OUT/$mode.time"
    for snap in "$OUT/$mode" "$OUT/$mode".step-*; do
        "$CLI" ppl "$snap" --windows 40 --json > "$snap.ppl.json"
    done
done

"${PYTHON:-$PWD/.venv/bin/python}" bench/distill_summary.py "$OUT"

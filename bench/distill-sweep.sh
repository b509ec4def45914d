#!/usr/bin/env bash
# Chooses distill's default loss and rates on held-out text only (bench/RESULTS.md,
# "distill-sweep"). The student is SmolLM2 pruned 30 → 21 layers with CoMe and healed
# (the quickstart's out/smollm2-come21-healed). Each candidate trains on 20,480 tokens of
# the first half of wikitext-2 validation (by lines) and the shipped C4 slice, and is scored
# by perplexity (ctx 512, 16 windows) on the second half of wikitext-2 validation, which no
# candidate trains on. Never the wikitext-2 test split.
#
#   bash bench/distill-sweep.sh [STUDENT]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
CLI=${CKPT_SURGEON:-$PWD/.build/release/ckpt-surgeon}
MODEL=${CKPT_MODEL_GGUF:-$PWD/models/SmolLM2-135M-Instruct.Q4_1.gguf}
STUDENT=${1:-out/smollm2-come21-healed}
OUT=bench/out/distill-sweep
mkdir -p "$OUT"
python3 - "$OUT" <<'PY'
import sys
lines = open("Sources/SurgeonSurgery/Resources/wiki.valid.raw").read().splitlines(keepends=True)
h = len(lines) // 2
open(f"{sys.argv[1]}/wiki-valid-a.txt", "w").write("".join(lines[:h]))
open(f"{sys.argv[1]}/wiki-valid-b.txt", "w").write("".join(lines[h:]))
PY
TEXT=(--text "$OUT/wiki-valid-a.txt" --text Sources/SurgeonSurgery/Resources/c4-calibration.txt)
score() { "$CLI" ppl "$1" --text "$OUT/wiki-valid-b.txt" --windows 16 --json | python3 -c "import json,sys; print(json.load(sys.stdin)['perplexity'])"; }
echo "candidate,held_out_ppl" | tee "$OUT/sweep.csv"
echo "healed (start),$(score "$STUDENT")" | tee -a "$OUT/sweep.csv"
for candidate in "sp kl 2e-4" "sp kl 2e-5" "sp kl 5e-6" "sp mse 1e-3" "sp mse 3e-4" "sp mse 1e-4" "sp mse 1e-5" \
                 "mp kl 2e-3" "mp kl 5e-4" "mp kl 5e-5" "mp mse 2e-3" "mp mse 5e-4"; do
    read -r mode loss lr <<< "$candidate"
    "$CLI" distill "$MODEL" "$STUDENT" -o "$OUT/model" --force --mode "$mode" --loss "$loss" --lr "$lr" \
        --tokens 20480 "${TEXT[@]}" 2> "$OUT/$mode-$loss-$lr.log" > /dev/null
    echo "$mode $loss lr $lr,$(score "$OUT/model")" | tee -a "$OUT/sweep.csv"
    rm -rf "$OUT/model"
done

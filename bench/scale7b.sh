#!/usr/bin/env bash
# The low-memory promise at scale: merge two layers of a synthetic LLaMA-2-7B-shaped
# checkpoint (bf16, ~13.5 GB, sharded) on this box, with --nsamples 4 --seqlen 256
# (pre-tokenized random windows: there is no tokenizer), then heal the merged layer
# against the original on the same windows, reporting wall time and peak RSS of each
# (goals: merge < 3 GB, heal < 4 GB). Needs ~45 GB of free disk; SCALE_DIR picks where
# (default bench/out).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
dir="${SCALE_DIR:-$CKPT_REPO/bench/out/scale7b}"
mkdir -p "$dir"
[ -f "$dir/model/config.json" ] || "$CKPT_VENV/bin/python" bench/make_synthetic_7b.py "$dir/model"
rm -rf "$dir/merged"
/usr/bin/time -v -o "$dir/time.txt" "$CKPT_SURGEON" merge "$dir/model" --layers 26,27 \
    --calib-tokens "$dir/model/calibration-tokens.json" -o "$dir/merged" > "$dir/stdout.txt"
size=$(du -sb "$dir/model" | cut -f1)
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.2f", $2/1024/1024}' "$dir/time.txt")
echo "Synthetic LLaMA-2-7B shape, bf16, $(awk "BEGIN{printf \"%.1f\", $size/1e9}") GB in $(ls "$dir"/model/*.safetensors | wc -l) shards:"
echo "\`merge --layers 26,27 --nsamples 4 --seqlen 256\` took $wall (wall) with peak RSS $rss GB (goal < 3 GB)."
echo "$(tail -1 "$dir/stdout.txt")"
"$CKPT_SURGEON" verify "$dir/merged" | tail -1
rm -rf "$dir/healed"
/usr/bin/time -v -o "$dir/heal-time.txt" "$CKPT_SURGEON" heal "$dir/model" "$dir/merged" \
    --calib-tokens "$dir/model/calibration-tokens.json" -o "$dir/healed" > "$dir/heal-stdout.txt" 2> "$dir/heal-stderr.txt"
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/heal-time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.2f", $2/1024/1024}' "$dir/heal-time.txt")
echo
echo "\`heal\` of that merged layer on the same windows took $wall (wall) with peak RSS $rss GB (goal < 4 GB; G alone is 11008² f64, 0.97 GB)."
grep '^heal: layer' "$dir/heal-stderr.txt" | sed 's/  \[.*//'
"$CKPT_SURGEON" verify "$dir/healed" | tail -1
[ -n "${KEEP_SCALE:-}" ] || rm -rf "$dir"

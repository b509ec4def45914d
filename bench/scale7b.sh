#!/usr/bin/env bash
# The low-memory promise at scale: a whole `prune --method come --target-layers 22 --heal`
# of synthetic LLaMA-2-7B- and LLaMA-3-8B-shaped checkpoints (32 layers, bf16, sharded;
# the 8B with GQA), calibrated on 8 pre-tokenized random windows of 512 tokens (there is
# no tokenizer). For each it reports wall time and peak RSS (goal < 4 GB), the time the
# run's FLOPs would take at the sgemm rate measured here just before (goal: wall within
# 2× of it), where the time went (--profile) and the most temporary disk held at once.
#
#   bash bench/scale7b.sh [llama2-7b] [llama3-8b]
#
# Needs about 16 GB of disk per model plus the outputs (~12 GB) and the temporary files
# (~10 GB); SCALE_DIR picks where (default bench/out/scale7b). KEEP_SCALE=1 keeps the models.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
dir="${SCALE_DIR:-$CKPT_REPO/bench/out/scale7b}"
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(llama2-7b llama3-8b)
swift build -c release --product SurgeonBench 2>&1 | grep -E "error|warning: unre" >&2 || true
bench="$CKPT_REPO/.build/release/SurgeonBench"
mkdir -p "$dir"
echo "| shape | size | prune + heal wall | peak RSS | sgemm rate | FLOPs | FLOP-limit time | limit / wall | temp disk peak |"
echo "|---|---|---|---|---|---|---|---|---|"
for shape in "${shapes[@]}"; do
    model="$dir/$shape"
    [ -f "$model/config.json" ] || "$CKPT_VENV/bin/python" bench/make_synthetic_7b.py "$model" "$shape" 8 512 >&2
    rate=$("$bench" sgemm "$model" 4096 | awk '{print $2}')
    rm -rf "$dir/$shape-pruned"
    /usr/bin/time -v -o "$dir/$shape-time.txt" "$CKPT_SURGEON" prune "$model" --method come --target-layers 22 \
        --calib-tokens "$model/calibration-tokens.json" --heal --profile -o "$dir/$shape-pruned" \
        > "$dir/$shape-stdout.txt" 2> "$dir/$shape-stderr.txt"
    "$CKPT_SURGEON" verify "$dir/$shape-pruned" > "$dir/$shape-verify.txt"
    size=$(du -sb "$model" | cut -f1)
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/$shape-time.txt")
    seconds=$(echo "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.2f", $2/1024/1024}' "$dir/$shape-time.txt")
    flops=$(awk '/^FLOPs:/ {print $2}' "$dir/$shape-stderr.txt")
    temp=$(awk '/^temporary files:/ {print $5, $6}' "$dir/$shape-stderr.txt")
    limit=$(awk -v f="$flops" -v r="$rate" 'BEGIN { printf "%.0f", f / r }')
    echo "| $shape | $(awk "BEGIN{printf \"%.1f GB\", $size/1e9}"), $(ls "$model"/*.safetensors | wc -l) shards | $wall | $rss GB | $rate GFLOP/s | $(awk -v f="$flops" 'BEGIN { printf "%.1f T", f / 1000 }') | ${limit} s | $(awk -v l="$limit" -v w="$seconds" 'BEGIN { printf "%.2f", l / w }') | $temp |"
    {
        echo
        echo "$shape: $(tail -1 "$dir/$shape-stdout.txt")"
        echo "$shape: $(tail -1 "$dir/$shape-verify.txt")"
        echo "$shape --profile:"
        echo '```'
        sed -n '/^phase /,/^temporary files/p' "$dir/$shape-stderr.txt"
        echo '```'
    } >> "$dir/details.md"
    rm -rf "$dir/$shape-pruned"
    [ -n "${KEEP_SCALE:-}" ] || rm -rf "$model"
done
[ ! -f "$dir/details.md" ] || { cat "$dir/details.md"; rm -f "$dir/details.md"; }

#!/usr/bin/env bash
# Benchmark: `convert` of the SmolLM2-135M HF folder (f32, 538 MB) to the same dtype, to
# bf16 and to GGUF F16, next to `cp` of the same file, all measured in one run on a warm
# page cache. Wall time is the best of $REPEATS; peak RSS is /usr/bin/time's maximum
# resident set. Prints a markdown table (bench/run-all.sh puts it in bench/RESULTS.md).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
REPEATS="${REPEATS:-5}"
work="$CKPT_REPO/bench/out/convert"
rm -rf "$work"; mkdir -p "$work"
hf="$work/smollm2-hf"
"$CKPT_SURGEON" convert "$CKPT_MODEL_GGUF" -o "$hf" >/dev/null
src="$hf/model.safetensors"
bytes=$(stat -c %s "$src")
cat "$src" > /dev/null  # warm the page cache

# measure NAME CMD...: best wall seconds and the peak RSS (kB) of that run.
measure() {
    local name=$1; shift
    local best="" rss=""
    for _ in $(seq "$REPEATS"); do
        rm -rf "$work/o" "$work/o.gguf" "$work/o.bin"; sync
        /usr/bin/time -v -o "$work/time.txt" "$@" >/dev/null
        local wall kb
        wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$work/time.txt")
        kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
        if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; rss=$kb; fi
    done
    echo "$name|$best|$rss"
}

results=()
results+=("$(measure "cp" cp "$src" "$work/o.bin")")
results+=("$(measure "cp + fsync" bash -c "cp '$src' '$work/o.bin' && sync '$work/o.bin'")")
results+=("$(measure "convert → safetensors, same dtype (f32)" "$CKPT_SURGEON" convert "$hf" -o "$work/o")")
results+=("$(measure "convert → safetensors bf16" "$CKPT_SURGEON" convert "$hf" -o "$work/o" --dtype bf16)")
results+=("$(measure "convert → GGUF F16" "$CKPT_SURGEON" convert "$hf" -o "$work/o.gguf" --dtype f16)")
results+=("$(measure "convert → GGUF F32 (same dtype)" "$CKPT_SURGEON" convert "$hf" -o "$work/o.gguf")")

cp_wall=$(echo "${results[0]}" | cut -d'|' -f2)
sync_wall=$(echo "${results[1]}" | cut -d'|' -f2)
largest=$("$CKPT_SURGEON" inspect "$hf" --json | python3 -c 'import json,sys; print(max(t["bytes"] for t in json.load(sys.stdin)["tensors"]))')
echo "Input: SmolLM2-135M-Instruct as an HF folder, f32, $(awk "BEGIN{printf \"%.1f\", $bytes/1e6}") MB; largest tensor $(awk "BEGIN{printf \"%.1f\", $largest/1e6}") MB (RSS goal: ≤ $(awk "BEGIN{printf \"%.0f\", $largest/1e6 + 64}") MB)."
echo
echo "| operation | wall (s) | MB/s (input bytes) | × cp | × (cp + fsync) | peak RSS (MB) |"
echo "|---|---:|---:|---:|---:|---:|"
for r in "${results[@]}"; do
    IFS='|' read -r name wall kb <<<"$r"
    awk -v n="$name" -v w="$wall" -v kb="$kb" -v b="$bytes" -v c="$cp_wall" -v f="$sync_wall" \
        'BEGIN{printf "| %s | %.2f | %.0f | %.2f | %.2f | %.1f |\n", n, w, b/1e6/w, c/w, f/w, kb/1024}'
done
rm -rf "$work"

#!/usr/bin/env bash
# eval throughput with and without prefix KV reuse, on SmolLM2-135M-Instruct (Q4_1 GGUF,
# run as f32). Prints a markdown table: items/s, request tokens/s (the tokens lm-eval would
# feed: every choice with its whole context), forwarded tokens/s (what actually ran), and
# peak RSS from /usr/bin/time -v.
#   HellaSwag: first $HS_LIMIT items (4 endings share one context).
#   MMLU 5-shot: first $MMLU_LIMIT questions of one subject (4 one-token answers share a
#   ~600-token context), from a data folder holding only that subject.
# Usage: bench/eval.sh [MODEL]   (env: CKPT_SURGEON, HS_LIMIT, MMLU_LIMIT, CKPT_SHARED)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/env.sh"
bin=${CKPT_SURGEON:-$repo/.build/release/ckpt-surgeon}
model=${1:-${CKPT_MODEL_GGUF:-$repo/models/SmolLM2-135M-Instruct.Q4_1.gguf}}
data=${CKPT_SHARED:-$repo/../shared}/data/eval
hs_limit=${HS_LIMIT:-40}
mmlu_limit=${MMLU_LIMIT:-8}
subject=high_school_geography
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/mmlu/test" "$work/mmlu/dev"
ln -s "$data/mmlu/test/${subject}_test.csv" "$work/mmlu/test/"
ln -s "$data/mmlu/dev/${subject}_dev.csv" "$work/mmlu/dev/"
ln -s "$data/hellaswag" "$work/hellaswag"

echo "model: $(basename "$model"), OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset}, $(nproc) cores"
echo
echo "| task | items | prefix reuse | seconds | items/s | request tokens/s | forwarded tokens/s | forwarded / request | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
for task in hellaswag mmlu; do
    limit=$hs_limit; [ "$task" = mmlu ] && limit=$mmlu_limit
    for reuse in on off; do
        flag=(); [ "$reuse" = off ] && flag=(--no-prefix-reuse)
        /usr/bin/time -v "$bin" eval "$model" --tasks "$task" --limit "$limit" --data "$work" --json "${flag[@]}" \
            > "$work/out.json" 2> "$work/time.txt"
        rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f MB", $2/1024}' "$work/time.txt")
        python3 - "$work/out.json" "$task" "$reuse" "$rss" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["models"][0]
t = m["tasks"][0]
s = t["seconds"]
print(f"| {sys.argv[2]} | {t['items']} | {sys.argv[3]} | {s:.1f} | {t['items'] / s:.2f} | "
      f"{t['request_tokens'] / s:.0f} | {t['forwarded_tokens'] / s:.0f} | "
      f"{t['forwarded_tokens'] / t['request_tokens']:.2f} | {sys.argv[4]} |")
PY
    done
done

#!/usr/bin/env bash
# Benchmark: CoMe surgery on SmolLM2-135M (HF folder at f32), in one run:
#  - `merge --layers 26,27` next to one calibration forward pass (`scores`, same 32 × 512
#    tokens) and `cp` of the checkpoint, with peak RSS (goal ≤ half the f32 model size);
#  - `prune --method come --target-layers 21`: wall time, peak RSS and the layer forwards
#    executed when resuming at the merge point vs recomputing from the start each round
#    (the latter also run, to check both give the same model);
#  - `heal` of that 21-layer model (its default calibration, 32 × 512 tokens) next to the
#    calibration pass, with peak RSS (goal: no more than the prune's).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
work="$CKPT_REPO/bench/out/surgery"
rm -rf "$work"; mkdir -p "$work"
hf="$work/smollm2-hf"
"$CKPT_SURGEON" convert "$CKPT_MODEL_GGUF" -o "$hf" >/dev/null
S="$CKPT_SURGEON"

# run NAME CMD...: prints "NAME|wall seconds|peak RSS MB|stdout's last line"
run() {
    local name=$1; shift
    sync
    /usr/bin/time -v -o "$work/time.txt" "$@" > "$work/stdout.txt" 2>/dev/null
    python3 - "$name" "$work/time.txt" "$work/stdout.txt" <<'PY'
import re, sys
t = open(sys.argv[2]).read()
wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1).split(":")
secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
last = (open(sys.argv[3]).read().strip().splitlines() or [""])[-1]
print(f"{sys.argv[1]}|{secs:.2f}|{rss:.0f}|{last}")
PY
}

cp_line=$(run "cp of model.safetensors" cp "$hf/model.safetensors" "$work/copy.bin")
scores_line=$(run "calibration forward pass (scores, 32 × 512 tokens)" "$S" scores "$hf" --json)
merge_line=$(run "merge --layers 26,27" "$S" merge "$hf" --layers 26,27 -o "$work/merged")
prune_line=$(run "prune --method come --target-layers 21" "$S" prune "$hf" --target-layers 21 -o "$work/p21")
noresume_line=$(run "prune … --no-resume" "$S" prune "$hf" --target-layers 21 -o "$work/p21-noresume" --no-resume)
heal_line=$(run "heal of the 21-layer model (32 × 512 tokens)" "$S" heal "$hf" "$work/p21" -o "$work/p21-healed")
same=$(python3 -c "
import json
a = json.load(open('$work/p21/surgery.json')); b = json.load(open('$work/p21-noresume/surgery.json'))
print('identical' if a['output']['tensors'] == b['output']['tensors'] else 'DIFFERENT')")
model_mb=$(du -m "$hf/model.safetensors" | cut -f1)
echo "f32 model: ${model_mb} MB (RSS goal for merge: ≤ $((model_mb / 2)) MB)."
echo
echo "| operation | wall (s) | peak RSS (MB) | output |"
echo "|---|---:|---:|---|"
for l in "$cp_line" "$scores_line" "$merge_line" "$prune_line" "$noresume_line" "$heal_line"; do
    IFS='|' read -r name wall rss last <<<"$l"
    case "$name" in calibration*) last="(JSON statistics)";; cp*) last="";; esac
    echo "| $name | $wall | $rss | ${last//|/\\|} |"
done
echo
m=$(echo "$merge_line" | cut -d'|' -f2); s=$(echo "$scores_line" | cut -d'|' -f2); c=$(echo "$cp_line" | cut -d'|' -f2)
echo "merge / calibration pass: $(awk "BEGIN{printf \"%.2f\", $m/$s}")×; merge / cp: $(awk "BEGIN{printf \"%.1f\", $m/$c}")×."
h=$(echo "$heal_line" | cut -d'|' -f2); hr=$(echo "$heal_line" | cut -d'|' -f3); pr=$(echo "$prune_line" | cut -d'|' -f3)
echo "heal / calibration pass: $(awk "BEGIN{printf \"%.2f\", $h/$s}")× (it runs teacher and student, each layer of a refitted one twice); heal peak RSS / prune's: $(awk "BEGIN{printf \"%.2f\", $hr/$pr}")×."
fw=$(echo "$prune_line" | sed -n 's/.*(\([0-9]*\) layer forwards; \([0-9]*\) without resuming).*/\1 \2/p')
set -- $fw
echo "Layer forwards, 30 → 21: $1 resuming at the merge point vs $2 recomputing from the start ($(awk "BEGIN{printf \"%.0f\", 100*$1/$2}")%, goal ≤ 60%); the two runs' outputs are $same."
rm -rf "$work"

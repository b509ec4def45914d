#!/usr/bin/env bash
# Benchmark: heal on SmolLM2-135M (HF folder at f32), in one run:
#  - one calibration forward pass (`scores`) over the very windows heal uses by default
#    (64 × 512 tokens, wikitext-2 validation + the shipped C4 slice);
#  - `prune --method come --target-layers 21` (default calibration), which makes the student;
#  - `heal` of that student (defaults), with wall time next to the calibration pass and
#    peak RSS next to the prune's (goal: no more than the prune's);
#  - perplexity on the first 40 windows of wikitext-2 test before and after healing.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
work="$CKPT_REPO/bench/out/heal"
rm -rf "$work"; mkdir -p "$work"
hf="$work/smollm2-hf"
S="$CKPT_SURGEON"
"$S" convert "$CKPT_MODEL_GGUF" -o "$hf" >/dev/null
corpora=(--calib Sources/SurgeonSurgery/Resources/wiki.valid.raw --calib Sources/SurgeonSurgery/Resources/c4-calibration.txt)

# run NAME CMD...: prints "NAME|wall seconds|peak RSS MB"
run() {
    local name=$1; shift
    sync
    /usr/bin/time -v -o "$work/time.txt" "$@" > "$work/stdout.txt" 2>/dev/null
    python3 - "$name" "$work/time.txt" <<'PY'
import re, sys
t = open(sys.argv[2]).read()
wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1).split(":")
secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
print(f"{sys.argv[1]}|{secs:.2f}|{rss:.0f}")
PY
}

scores=$(run "calibration forward pass (scores, heal's 64 × 512 tokens)" "$S" scores "$hf" "${corpora[@]}" --nsamples 64 --json)
prune=$(run "prune --method come --target-layers 21 (32 × 512 tokens)" "$S" prune "$hf" --target-layers 21 -o "$work/p21")
heal=$(run "heal of that 21-layer model (defaults)" "$S" heal "$hf" "$work/p21" -o "$work/p21-healed")
perplexity() { "$S" ppl "$1" --windows 40 --json 2>/dev/null | python3 -c 'import json, sys; print("%.2f" % json.load(sys.stdin)["perplexity"])'; }
before=$(perplexity "$work/p21")
after=$(perplexity "$work/p21-healed")
echo "| operation | wall (s) | peak RSS (MB) |"
echo "|---|---:|---:|"
for l in "$scores" "$prune" "$heal"; do
    IFS='|' read -r name wall rss <<<"$l"
    echo "| $name | $wall | $rss |"
done
echo
s=$(echo "$scores" | cut -d'|' -f2); h=$(echo "$heal" | cut -d'|' -f2)
hr=$(echo "$heal" | cut -d'|' -f3); pr=$(echo "$prune" | cut -d'|' -f3)
echo "heal / calibration pass: $(awk "BEGIN{printf \"%.2f\", $h/$s}")× (it runs the teacher to layer 26 and the student to layer 17, each refitted layer twice, and solves 7 systems); heal peak RSS / prune's: $(awk "BEGIN{printf \"%.2f\", $hr/$pr}")×."
echo "wikitext-2 test perplexity (first 40 windows): $before after pruning, $after after healing."
rm -rf "$work"

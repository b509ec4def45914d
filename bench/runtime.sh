#!/usr/bin/env bash
# Benchmark: the runtime on SmolLM2-135M, all in one run on this machine.
#  - plain sgemm GFLOP/s at the model's projection shapes vs our decoder-layer forward;
#  - `ppl` tokens/s and peak RSS (ctx 512, $PPL_WINDOWS windows) from the Q4_1 GGUF and
#    from the f32 HF folder;
#  - tokenizer throughput on wiki.test.raw next to the `tokenizers` package.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
PPL_WINDOWS="${PPL_WINDOWS:-32}"
work="$CKPT_REPO/bench/out/runtime"
mkdir -p "$work"
swift build -c release --product SurgeonBench >/dev/null 2>&1
bench="$CKPT_REPO/.build/release/SurgeonBench"
hf="$work/smollm2-hf"
[ -d "$hf" ] || "$CKPT_SURGEON" convert "$CKPT_MODEL_GGUF" -o "$hf" >/dev/null
wiki="$CKPT_REPO/../shared/data/wikitext-2-raw/wiki.test.raw"

sgemm=$("$bench" sgemm "$hf" 2048)
layer=$("$bench" layer "$hf" 4)
sg=$(echo "$sgemm" | awk '{print $2}'); ly=$(echo "$layer" | awk '{print $3}')
echo "### Forward throughput"
echo
echo "| measure | GFLOP/s | detail |"
echo "|---|---:|---|"
echo "| plain sgemm (OpenBLAS), SmolLM2 projection shapes, M = 2048 | $sg | ${sgemm#*(} |" | sed 's/)|/|/; s/) |/ |/'
echo "| our decoder-layer forward, ctx 512 | $ly | ${layer#*(} |" | sed 's/) |/ |/'
echo "| ratio | $(awk "BEGIN{printf \"%.2f\", $ly/$sg}") | goal ≥ 0.60 |"
echo

echo "### ppl (ctx 512, $PPL_WINDOWS windows of wiki.test.raw)"
echo
echo "| input | perplexity | tokens/s | wall (s) | peak RSS (MB) |"
echo "|---|---:|---:|---:|---:|"
for model in "$CKPT_MODEL_GGUF" "$hf"; do
    /usr/bin/time -v -o "$work/time.txt" "$CKPT_SURGEON" ppl "$model" --text "$wiki" --windows "$PPL_WINDOWS" --json > "$work/ppl.json"
    python3 - "$model" "$work/ppl.json" "$work/time.txt" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[2])); t = open(sys.argv[3]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1).split(":")
secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
name = "Q4_1 GGUF" if sys.argv[1].endswith(".gguf") else "HF folder, f32"
print(f"| {name} | {r['perplexity']:.3f} | {r['windows'] * r['context'] / r['seconds']:.0f} | {secs:.1f} | {rss:.0f} |")
PY
done
echo
echo "f32 model size: $(du -m "$hf/model.safetensors" | cut -f1) MB (RSS goal: ≤ half of it plus activations)."
echo

echo "### Tokenizer (SmolLM2, wiki.test.raw, 1.29 MB)"
echo
"$CKPT_VENV/bin/python" - "$CKPT_SURGEON" "$hf" "$wiki" <<'PY'
import subprocess, sys, time
from tokenizers import Tokenizer
cli, hf, wiki = sys.argv[1:4]
text = open(wiki, encoding="utf-8").read()
def best(f, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter(); out = f(); times.append(time.perf_counter() - t)
    return min(times), out
load_ref, tok = best(lambda: Tokenizer.from_file(f"{hf}/tokenizer.json"))
enc_ref, ids = best(lambda: tok.encode(text, add_special_tokens=False).ids)
ours, count = best(lambda: int(subprocess.run([cli, "tokenize", hf, "--text", wiki, "--count"], capture_output=True, text=True, check=True).stdout))
empty, _ = best(lambda: subprocess.run([cli, "tokenize", hf, "--prompt", "", "--count"], capture_output=True, check=True))
assert count == len(ids)
mb = len(text.encode()) / 1e6
print("| tokenizer | seconds | MB/s | note |")
print("|---|---:|---:|---|")
print(f"| `tokenizers` {__import__('tokenizers').__version__}, encode only | {enc_ref:.2f} | {mb/enc_ref:.2f} | single call, {len(ids)} tokens |")
print(f"| ckpt-surgeon, whole process | {ours:.2f} | {mb/ours:.2f} | includes start-up and vocabulary load ({empty:.2f} s) |")
print(f"| ckpt-surgeon, encode only | {ours-empty:.2f} | {mb/(ours-empty):.2f} | whole process minus an empty run |")
print(f"\nRatio (encode only): {enc_ref/(ours-empty):.2f}× the `tokenizers` package (goal ≥ 0.5×).")
PY

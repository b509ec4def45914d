#!/usr/bin/env bash
# Benchmark: ckpt-surgeon next to llama.cpp on SmolLM2-135M, in one run on this machine.
#  - `export` to F32 GGUF: MB/s next to `cp` of the same file;
#  - perplexity (ctx 512, $PPL_CHUNKS chunks of wiki.test.raw, llama.cpp's protocol) on that
#    F32 GGUF: our `ppl` vs `llama-perplexity`, same threads, tokens/s and peak RSS.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
PPL_CHUNKS="${PPL_CHUNKS:-40}"
bash scripts/build-llama-cpp.sh
bin="$CKPT_REPO/.cache/llama-cpp/bin"
work="$CKPT_REPO/bench/out/llama-cpp"
mkdir -p "$work"
hf="$work/smollm2-hf"
[ -d "$hf" ] || "$CKPT_SURGEON" convert "$CKPT_MODEL_GGUF" -o "$hf" >/dev/null
wiki="$CKPT_REPO/../shared/data/wikitext-2-raw/wiki.test.raw"
gguf="$work/smollm2.f32.gguf"
threads="$OPENBLAS_NUM_THREADS"

# wall seconds and peak RSS (MB) of the last /usr/bin/time -v run
measure() { python3 - "$work/time.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1).split(":")
print(f"{sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall))):.2f} {rss:.0f}")
PY
}

sync
/usr/bin/time -v -o "$work/time.txt" "$CKPT_SURGEON" export "$hf" -o "$gguf" --dtype f32 --force >/dev/null
read -r export_s export_rss < <(measure)
mb=$(du -m "$gguf" | cut -f1)
sync
/usr/bin/time -v -o "$work/time.txt" sh -c "cp '$gguf' '$work/copy.gguf' && sync '$work/copy.gguf'"
read -r cp_s _ < <(measure)
rm -f "$work/copy.gguf"
echo "### export to GGUF F32 ($mb MB)"
echo
echo "| step | wall (s) | MB/s | peak RSS (MB) |"
echo "|---|---:|---:|---:|"
echo "| ckpt-surgeon export (fsync, rename) | $export_s | $(awk "BEGIN{printf \"%.0f\", $mb/$export_s}") | $export_rss |"
echo "| cp + sync of the same file | $cp_s | $(awk "BEGIN{printf \"%.0f\", $mb/$cp_s}") | |"
echo "| ratio (export / cp MB/s) | | $(awk "BEGIN{printf \"%.2f\", $cp_s/$export_s}") | |"
echo

/usr/bin/time -v -o "$work/time.txt" "$CKPT_SURGEON" ppl "$gguf" --text "$wiki" --ctx 512 --windows "$PPL_CHUNKS" \
    --protocol llama.cpp --json --profile > "$work/ours.json" 2> "$work/ours.err"
read -r ours_s ours_rss < <(measure)
/usr/bin/time -v -o "$work/time.txt" "$bin/llama-perplexity" -m "$gguf" -f "$wiki" -c 512 -b 2048 \
    --chunks "$PPL_CHUNKS" -t "$threads" > "$work/llama.txt" 2>&1
read -r llama_s llama_rss < <(measure)
python3 - "$work/ours.json" "$work/llama.txt" "$ours_s" "$ours_rss" "$llama_s" "$llama_rss" "$PPL_CHUNKS" "$threads" <<'PY'
import json, re, sys
ours = json.load(open(sys.argv[1])); log = open(sys.argv[2]).read()
ours_s, ours_rss, llama_s, llama_rss, chunks, threads = sys.argv[3:9]
ppl = float(re.search(r"Final estimate: PPL = ([0-9.]+)", log).group(1))
# llama.cpp times its first pass of n_batch = 2048 tokens (4 chunks): "seconds per pass"
m = re.search(r"([0-9.]+) seconds per pass", log)
llama_tps = 2048 / float(m.group(1))
tokens = int(chunks) * 512
ours_tps = tokens / ours["seconds"]
print(f"### perplexity, F32 GGUF, ctx 512, {chunks} chunks ({tokens} tokens), {threads} threads")
print()
print("| tool | PPL | tokens/s (forward) | tokens/s (wall, incl. load) | wall (s) | peak RSS (MB) |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| ckpt-surgeon ppl --protocol llama.cpp | {ours['perplexity']:.4f} | {ours_tps:.0f} | {tokens / float(ours_s):.0f} | {ours_s} | {ours_rss} |")
print(f"| llama-perplexity (llama.cpp, CPU build) | {ppl:.4f} | {llama_tps:.0f} | {tokens / float(llama_s):.0f} | {llama_s} | {llama_rss} |")
print(f"| ratio (ours / llama.cpp) | {ours['perplexity'] / ppl:.5f} | {ours_tps / llama_tps:.2f} | {float(llama_s) / float(ours_s):.2f} | | |")
PY
echo
echo "Where our \`ppl\` spent its time in that run (\`--profile\`; the FLOPs are the layer forwards', not the head's):"
echo
echo '```'
sed -n '/^phase /,/^FLOPs/p' "$work/ours.err"
echo '```'

#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with libFuzzer (ASan on), SECONDS per target
# (default 600), and prints a markdown table: executions, coverage, corpus, crashes.
#
#   bash bench/fuzz.sh [SECONDS] [TARGET...]      e.g. bash bench/fuzz.sh 20 gguf config
#
# Targets (fuzz/Package.swift): safetensors (file and shard index), gguf (header,
# metadata, tensor infos, then config, integrity, report and tokenizer keys), tokenizer
# (tokenizer.json), config (config.json beside a sound model), manifest (surgery.json).
# Corpora are seeded from fixtures/ and kept in .build-fuzz/corpus; a crash, leak or
# timeout (one input over 20 s) leaves its input in .build-fuzz/artifacts and makes the
# script exit 1. Seeds are fixed (-seed=1), so a short run is repeatable in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(safetensors gguf tokenizer config manifest)
SCRATCH=$PWD/.build-fuzz
CLI=$PWD/.build/release/ckpt-surgeon

echo "fuzz: building the targets (-sanitize=fuzzer,address)" >&2
# The toolchain's lld links the instrumented binaries (gold stops with an internal error).
mkdir -p "$SCRATCH"
LLD=$(dirname "$(readlink -f "$(command -v swift)")")/ld.lld
printf '{"schemaVersion": "1.0", "linker": {"path": "%s"}}\n' "$LLD" > "$SCRATCH/toolset.json"
BUILD=(swift build -c release --package-path fuzz --scratch-path "$SCRATCH" --toolset "$SCRATCH/toolset.json"
       -Xswiftc -sanitize=fuzzer,address)
"${BUILD[@]}" 2>&1 | grep -E "error|Build" >&2
BIN=$("${BUILD[@]}" --show-bin-path)

seed() {  # seed TARGET FILE...: copies the files into the target's corpus (content-named)
    local dir=$SCRATCH/seeds/$1; shift
    mkdir -p "$dir"
    for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/$(sha1sum "$f" | cut -c1-16)"; done
}
rm -rf "$SCRATCH/seeds"
seed safetensors fixtures/malformed/st-*.safetensors fixtures/malformed/hf-missing-config/model.safetensors \
    fixtures/tiny/llama-gqa-sharded/model.safetensors.index.json fixtures/malformed/hf-shard-index-invalid/*.json
seed gguf fixtures/malformed/gguf-*.gguf fixtures/tiny/gguf/quant-types.gguf fixtures/tiny/gguf/quant-types.v2.gguf \
    fixtures/tiny/gguf/llama-gqa.f32.gguf
seed tokenizer fixtures/tiny/*/tokenizer.json fixtures/malformed/hf-tokenizer-*/tokenizer.json
seed config fixtures/tiny/*/config.json fixtures/malformed/hf-*/config.json
if [ -x "$CLI" ]; then  # real manifests: a merge, a prune with CoMe steps, a healed model
    m=$SCRATCH/manifests; rm -rf "$m"; mkdir -p "$m"
    "$CLI" merge fixtures/tiny/llama-gqa --layers 1,2 --nsamples 2 --seqlen 16 -o "$m/merged" >/dev/null 2>&1
    "$CLI" prune fixtures/tiny/qwen2-deep --method come --target-layers 4 --nsamples 2 --seqlen 16 -o "$m/pruned" >/dev/null 2>&1
    "$CLI" heal fixtures/tiny/qwen2-deep "$m/pruned" --nsamples 2 --seqlen 16 -o "$m/healed" >/dev/null 2>&1
    seed manifest "$m"/*/surgery.json
fi

status=0
echo "| target | seconds | executions | exec/s | coverage (edges) | features | corpus | slowest input (s) | peak RSS (MB) | crashes/leaks/timeouts |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for t in "${TARGETS[@]}"; do
    corpus=$SCRATCH/corpus/$t artifacts=$SCRATCH/artifacts/$t log=$SCRATCH/fuzz-$t.log
    rm -rf "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    echo "fuzz: $t for ${SECONDS_EACH}s" >&2
    set +e
    ASAN_OPTIONS=detect_leaks=1 "$BIN/fuzz-$t" "$corpus" "$SCRATCH/seeds/$t" \
        -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=1048576 \
        -seed=1 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
    code=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || echo 0)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || echo 0)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
    slowest=$(grep -o 'stat::slowest_unit_time_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || echo "?")
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || echo "?")
    found=$(find "$artifacts" -type f | wc -l)
    echo "| $t | $SECONDS_EACH | $execs | $rate | $cov | $ft | $(ls "$corpus" | wc -l) | $slowest | $rss | $found |"
    if [ "$code" -ne 0 ] || [ "$found" -ne 0 ]; then
        status=1
        echo "fuzz: $t failed (exit $code); its log: $log; inputs: $artifacts" >&2
        grep -E "ERROR|SUMMARY|Fatal error|panic" "$log" | head -5 >&2
    fi
done
exit $status

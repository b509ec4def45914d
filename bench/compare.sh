#!/usr/bin/env bash
# The method comparison (bench/compare.py): every pruning method at 27, 24 and 21 layers
# on SmolLM2-135M, wikitext-2 and C4 perplexity, wall time and peak RSS; table, JSON, CSV
# and a PNG plot in bench/out/compare/. Arguments are passed to compare.py (--help).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
"$CKPT_VENV/bin/python" -c 'import matplotlib' 2>/dev/null || "$CKPT_VENV/bin/pip" install -q matplotlib
"$CKPT_VENV/bin/python" bench/compare.py "$@"

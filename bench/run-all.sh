#!/usr/bin/env bash
# Runs every benchmark and rewrites bench/RESULTS.md with the tables, the machine they
# ran on, and the command that produced them. SCALE=1 adds the 7B-scale merge (~30 GB disk).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
bash scripts/setup.sh
out=bench/RESULTS.md
{
    echo "# Benchmark results"
    echo
    echo "Produced by \`bash bench/run-all.sh\` on $(date -u +%Y-%m-%d): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores,"
    echo "$(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(df -T . | awk 'NR==2 {print $2}') file system, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(auto)}, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS."
    echo "Absolute times differ between machines; compare the ratios, which are measured in the same run."
    echo
    echo "## convert (bench/convert.sh)"
    echo
    bash bench/convert.sh
    echo
    echo "## runtime (bench/runtime.sh)"
    echo
    bash bench/runtime.sh
    echo
    echo "## surgery (bench/surgery.sh)"
    echo
    bash bench/surgery.sh
    if [ -n "${SCALE:-}" ]; then
        echo
        echo "## scale (bench/scale7b.sh)"
        echo
        bash bench/scale7b.sh
    fi
} > "$out.tmp"
mv "$out.tmp" "$out"
cat "$out"

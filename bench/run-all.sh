#!/usr/bin/env bash
# Runs the benchmarks and rewrites their sections of bench/RESULTS.md, each with the
# machine it ran on and the command that produced it.
#   bash bench/run-all.sh                  convert, runtime, surgery, heal, llama-cpp, eval
#   bash bench/run-all.sh llama-cpp        only that section (the others are kept)
#   SCALE=1 / COMPARE=1                    add the 7B/8B-scale prune + heal (~60 GB disk,
#                                          ~1 h) / the method comparison (~1.5 h on 2 cores)
#   BODY=FILE bash bench/run-all.sh NAME   write FILE (a finished run's output) as NAME's section
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
bash scripts/setup.sh
sections=("$@")
if [ ${#sections[@]} = 0 ]; then
    sections=(convert runtime speed surgery heal llama-cpp eval)
    [ -n "${SCALE:-}" ] && sections+=(scale7b)
    [ -n "${COMPARE:-}" ] && sections+=(compare)
fi
out=bench/RESULTS.md
# Virtual machines often name the CPU only "AMD EPYC": its family, model and widest vector
# instructions tell the generations apart (Zen 1 and Zen 3 AVX2, Zen 4 AVX-512 differ 2×).
cpu_field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2 | xargs; }
vectors=$(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || { grep -qw avx2 /proc/cpuinfo && echo AVX2 || echo "no AVX2"; })
machine="$(cpu_field 'model name') (family $(cpu_field 'cpu family'), model $(cpu_field model), $vectors), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(auto)}, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
for name in "${sections[@]}"; do
    echo "run-all: $name" >&2
    if [ -n "${BODY:-}" ]; then body="$(cat "$BODY")"; else body="$(bash "bench/$name.sh")"; fi
    python3 - "$out" "$name" "$machine" "$body" <<'PY'
import datetime, re, sys
path, name, machine, body = sys.argv[1:5]
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
header = ("# Benchmark results\n\nEach section is rewritten by `bash bench/run-all.sh [SECTION]`. Absolute times differ "
          "between machines; compare the ratios, which are measured in the same run.\n")
if not text.startswith("# Benchmark results"):
    text = header
section = (f"## {name} (bench/{name}.sh)\n\nRun on {datetime.date.today()} by `bash bench/run-all.sh {name}`: "
           f"{machine}.\n\n{body.strip()}\n")
pattern = re.compile(rf"^## {re.escape(name)} \(bench/.*?(?=^## |\Z)", re.S | re.M)
text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
open(path + ".tmp", "w").write(text.rstrip() + "\n")
PY
    mv "$out.tmp" "$out"
done
cat "$out"

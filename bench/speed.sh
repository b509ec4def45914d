#!/usr/bin/env bash
# Calibration speed on SmolLM2 at the official CoMe code's sizes: `prune --method come
# --target-layers 21` at 3 × 512 and at 10 × 2048 tokens, each with its wall time, peak
# RSS, the time its layer-forward FLOPs would take at the sgemm rate measured here at the
# same M, and where the time went (--profile). Then the same results with prefetch off,
# with 1 thread and pinned to one core (byte-identical outputs expected), and whether
# this machine can offer a bf16 (sbgemm) calibration path.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$CKPT_REPO"
swift build -c release --product SurgeonBench 2>&1 | grep -E "error" >&2 || true
bench="$CKPT_REPO/.build/release/SurgeonBench"
dir="$CKPT_REPO/bench/out/speed"
rm -rf "$dir" && mkdir -p "$dir"
model="$CKPT_MODEL_GGUF"

seconds() { awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }'; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }

# name nsamples seqlen [extra options…]: runs the prune, leaves NAME.{gguf,time,err}.
prune() {
    local name=$1 n=$2 len=$3; shift 3
    /usr/bin/time -v -o "$dir/$name.time" "$CKPT_SURGEON" prune "$model" --method come --target-layers 21 \
        --nsamples "$n" --seqlen "$len" --profile -o "$dir/$name.gguf" "$@" > "$dir/$name.out" 2> "$dir/$name.err"
}

echo "| calibration | wall (s) | peak RSS (MB) | sgemm rate at that M | layer-forward FLOPs | FLOP-limit time (s) | limit / wall | official code (another run) |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
declare -A walls rsses ratios
for spec in "3 512 54 s, 2.11 GB" "10 2048 ~15 min, 6.07 GB"; do
    read -r n len official <<< "$spec"
    m=$(( n * len < 4096 ? n * len : 4096 ))
    rate=$("$bench" sgemm "$model" "$m" | awk '{print $2}')
    prune "c$n" "$n" "$len"
    flops=$(awk '/^FLOPs:/ {print $2}' "$dir/c$n.err")
    wall=$(seconds "$dir/c$n.time")
    limit=$(awk -v f="$flops" -v r="$rate" 'BEGIN { printf "%.1f", f / r }')
    walls[$n]=$wall; rsses[$n]=$(rss "$dir/c$n.time"); ratios[$n]=$(awk -v l="$limit" -v w="$wall" 'BEGIN { printf "%.2f", l / w }')
    echo "| $n × $len | $wall | ${rsses[$n]} | $rate GFLOP/s (M=$m) | $(awk -v f="$flops" 'BEGIN { printf "%.2f T", f / 1000 }') | $limit | ${ratios[$n]} | $official |"
done
# The official code's figures (from the issue: another run on a 2-core box) against ours.
echo
awk -v w3="${walls[3]}" -v r3="${rsses[3]}" -v w10="${walls[10]}" -v r10="${rsses[10]}" -v q3="${ratios[3]}" -v q10="${ratios[10]}" 'BEGIN {
    printf "Against the official CoMe code (its figures from another run on a 2-core box, not this one): 3 × 512 takes %s s and %s MB here against 54 s and 2.11 GB (%.2f× the time, %.2f× the memory); 10 × 2048 takes %s s and %s MB against about 15 min and 6.07 GB (%.2f×, %.2f×). Goal ≥ 0.8 of the FLOP limit: %s (%s and %s).\n",
        w3, r3, w3 / 54, r3 / 2110, w10, r10, w10 / 900, r10 / 6070, (q3 >= 0.8 && q10 >= 0.8) ? "met" : "not met", q3, q10 }'
share() { awk -v p="$2" '$0 ~ "^ *" p " " { print $(NF) }' "$dir/c$1.err"; }
echo
echo "Shares of the wall time at 10 × 2048 (from the profile below): projections $(share 10 'projections \\(sgemm\\)'), attention $(share 10 attention), statistics $(share 10 statistics), spill I/O $(share 10 'spill I/O'), everything else $(share 10 'everything else')."
for n in 3 10; do
    echo
    echo "Where the time went at $( [ $n = 3 ] && echo "3 × 512" || echo "10 × 2048") (\`--profile\`; $(grep -o '([0-9]* layer forwards' "$dir/c$n.out" | tr -d '(')):"
    echo
    echo '```'
    sed -n '/^phase /,/^temporary files/p' "$dir/c$n.err"
    echo '```'
done

echo
echo "Prefetch and threads at 3 × 512 (the output must not change):"
echo
echo "| run | wall (s) | peak RSS (MB) | output vs the default run |"
echo "|---|---:|---:|---|"
reference=$(md5sum < "$dir/c3.gguf")
echo "| default (2 threads, prefetch) | $(seconds "$dir/c3.time") | $(rss "$dir/c3.time") | (reference) |"
for variant in "no-prefetch --no-prefetch" "threads-1 --threads 1" "threads-1-no-prefetch --threads 1 --no-prefetch"; do
    read -r name extra <<< "$variant"
    # shellcheck disable=SC2086
    prune "$name" 3 512 $extra
    same=$( [ "$(md5sum < "$dir/$name.gguf")" = "$reference" ] && echo "byte-identical" || echo "DIFFERENT" )
    echo "| \`$extra\` | $(seconds "$dir/$name.time") | $(rss "$dir/$name.time") | $same |"
done
/usr/bin/time -v -o "$dir/taskset.time" taskset -c 0 env -u OPENBLAS_NUM_THREADS "$CKPT_SURGEON" prune "$model" \
    --method come --target-layers 21 --nsamples 3 --seqlen 512 --profile -o "$dir/taskset.gguf" > /dev/null 2> "$dir/taskset.err"
same=$( [ "$(md5sum < "$dir/taskset.gguf")" = "$reference" ] && echo "byte-identical" || echo "DIFFERENT" )
echo "| \`taskset -c 0\`, no --threads (detects 1 core: $(grep -o '[0-9]* threads$' "$dir/taskset.err")) | $(seconds "$dir/taskset.time") | $(rss "$dir/taskset.time") | $same |"

echo
blas=$(ldconfig -p | awk '/libopenblas.so.0 / {print $NF; exit}')
if ! grep -qw avx512_bf16 /proc/cpuinfo; then
    echo "bf16 calibration path: skipped: this CPU has no AVX512_BF16."
elif ! nm -D "$(readlink -f "$blas")" 2>/dev/null | grep -qw cblas_sbgemm; then
    echo "bf16 calibration path: skipped: the CPU has AVX512_BF16, but this OpenBLAS ($(readlink -f "$blas")) was built without bfloat16 and exports no cblas_sbgemm."
else
    echo "bf16 calibration path: this machine could run it (AVX512_BF16 and cblas_sbgemm); it is not implemented yet."
fi

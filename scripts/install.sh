#!/usr/bin/env bash
# Installs ckpt-surgeon into PREFIX (default /usr/local), runnable from any directory:
#   PREFIX/lib/ckpt-surgeon/     the release binary and its resource bundles (the shipped
#                                calibration corpora, the wikitext-2 test split, eval data)
#   PREFIX/bin/ckpt-surgeon      a wrapper that sets OPENBLAS_CORETYPE on AVX-512 CPUs
#                                (scripts/env.sh explains why) and runs the binary
#   PREFIX/share/man/man1/ckpt-surgeon.1
# Builds the release binary first if needed (scripts/setup.sh installs the build's packages).
# Usage: scripts/install.sh [PREFIX]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${1:-/usr/local}"
cd "$repo"
swift build -c release --product ckpt-surgeon 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2
bin_dir="$(swift build -c release --show-bin-path)"
lib="$prefix/lib/ckpt-surgeon"
install -d "$lib" "$prefix/bin" "$prefix/share/man/man1"
install -m 755 "$bin_dir/ckpt-surgeon" "$lib/ckpt-surgeon"
for bundle in "$bin_dir"/ckpt-surgeon_*.resources; do
    rm -rf "$lib/$(basename "$bundle")"
    cp -R "$bundle" "$lib/"
done
cat > "$prefix/bin/ckpt-surgeon.tmp-$$" <<WRAPPER
#!/bin/sh
# Installed by ckpt-surgeon's scripts/install.sh. Debian's OpenBLAS misdetects AVX-512
# Xeons as an old core (about 5x slower sgemm), so the right one is named there.
if [ -z "\${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    OPENBLAS_CORETYPE=SkylakeX; export OPENBLAS_CORETYPE
fi
exec "$lib/ckpt-surgeon" "\$@"
WRAPPER
chmod 755 "$prefix/bin/ckpt-surgeon.tmp-$$"
mv "$prefix/bin/ckpt-surgeon.tmp-$$" "$prefix/bin/ckpt-surgeon"
install -m 644 man/ckpt-surgeon.1 "$prefix/share/man/man1/ckpt-surgeon.1"
echo "install: $prefix/bin/ckpt-surgeon ($("$prefix/bin/ckpt-surgeon" --version)), man page in $prefix/share/man/man1" >&2

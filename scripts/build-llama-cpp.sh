#!/usr/bin/env bash
# Builds llama.cpp's CPU tools (llama-perplexity, llama-tokenize, llama-simple) and our
# small logits dumper (scripts/llama-cpp/dump_logits.cpp) from the llama.cpp source that
# ships inside the PyPI sdist llama-cpp-python. llama.cpp is the independent peer the
# interop tests and benchmarks compare against; ckpt-surgeon itself never links it.
#
# The result is cached in .cache/llama-cpp/bin (gitignored) and reused when the pinned
# version, our CMake files and the CPU flags are unchanged. A fresh build takes a few
# minutes on 2 cores.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$CKPT_REPO"
VERSION=0.3.36
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
cache="$CKPT_REPO/.cache/llama-cpp"
bin="$cache/bin"
tools=(llama-perplexity llama-tokenize llama-simple llama-dump-logits)

# GGML_NATIVE compiles for this CPU, so the stamp includes its flags: a cache carried to
# another kind of machine is rebuilt instead of dying on an illegal instruction.
stamp="$VERSION $(cat scripts/llama-cpp/CMakeLists.txt scripts/llama-cpp/dump_logits.cpp | sha256sum | cut -c1-16) $(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-16)"
if [ -f "$bin/STAMP" ] && [ "$(cat "$bin/STAMP")" = "$stamp" ]; then
    ok=1; for t in "${tools[@]}"; do [ -x "$bin/$t" ] || ok=0; done
    [ "$ok" = 1 ] && exit 0
fi

mkdir -p "$cache"
sdist="$cache/llama_cpp_python-$VERSION.tar.gz"
if ! { [ -f "$sdist" ] && echo "$SDIST_SHA256  $sdist" | sha256sum -c --status; }; then
    echo "build-llama-cpp: downloading llama-cpp-python==$VERSION (sdist) from PyPI" >&2
    python3 -m pip download -q --no-deps --no-binary llama-cpp-python -d "$cache" "llama-cpp-python==$VERSION"
    echo "$SDIST_SHA256  $sdist" | sha256sum -c --status || { echo "build-llama-cpp: sdist checksum mismatch" >&2; exit 1; }
fi
src="$cache/src-$VERSION"
if [ ! -f "$src/CMakeLists.txt" ]; then
    rm -rf "$src.part" && mkdir -p "$src.part"
    tar -xzf "$sdist" -C "$src.part" --strip-components=3 "llama_cpp_python-$VERSION/vendor/llama.cpp"
    rm -rf "$src" && mv "$src.part" "$src"
fi

echo "build-llama-cpp: building ${tools[*]} (cmake, CPU only)" >&2
build="$cache/build"
cmake -S scripts/llama-cpp -B "$build" -DLLAMA_CPP_SOURCE="$src" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DGGML_CCACHE=OFF >"$cache/cmake.log" 2>&1 \
    || { tail -20 "$cache/cmake.log" >&2; echo "build-llama-cpp: cmake configure failed (log: $cache/cmake.log)" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" --target "${tools[@]}" >"$cache/build.log" 2>&1 \
    || { tail -20 "$cache/build.log" >&2; echo "build-llama-cpp: build failed (log: $cache/build.log)" >&2; exit 1; }
mkdir -p "$bin"
for t in "${tools[@]}"; do
    found="$(find "$build" -type f -name "$t" -perm -u+x | head -1)"
    [ -n "$found" ] || { echo "build-llama-cpp: $t was not produced" >&2; exit 1; }
    cp "$found" "$bin/$t.part" && mv "$bin/$t.part" "$bin/$t"
done
echo "$stamp" >"$bin/STAMP"
echo "build-llama-cpp: $bin" >&2

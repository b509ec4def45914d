"""The exp-heavy kernels of CVectorMath: one build per instruction set, the same bits.

vector_math.c is compiled into the tool once per instruction set (AVX-512, AVX2,
baseline x86-64) and the loader picks one. Here a small harness is built three times with
one instruction set each and run on the same inputs: every build this CPU can run must
give byte-identical outputs, and those outputs must match numpy's f64 arithmetic (exp to
3e-7 relative, the softmax, RMSNorm and SiLU·up to f32 rounding).
"""
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

SOURCE = REPO / "Sources" / "CVectorMath"
LENGTHS = [1, 7, 15, 16, 17, 33, 576, 1031, 2048]

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "vector_math.h"

/* Reads n and n floats from stdin, writes each kernel's outputs on each prefix length. */
int main(int argc, char **argv) {
    long n;
    if (fread(&n, sizeof n, 1, stdin) != 1) return 1;
    float *x = malloc(n * sizeof *x), *w = malloc(n * sizeof *w), *y = malloc(n * sizeof *y);
    if (fread(x, sizeof *x, n, stdin) != (size_t)n || fread(w, sizeof *w, n, stdin) != (size_t)n) return 1;
    for (int a = 1; a < argc; a++) {
        long len = atol(argv[a]);
        vm_exp(x, y, len);
        fwrite(y, sizeof *y, len, stdout);
        float m = vm_maximum(x, len);
        double s = vm_sum_exp(x, len, m);
        fwrite(&m, sizeof m, 1, stdout);
        fwrite(&s, sizeof s, 1, stdout);
        for (long i = 0; i < len + 5; i++) y[i] = x[i];
        vm_softmax_prefix(y, len, len + 5);
        fwrite(y, sizeof *y, len + 5, stdout);
        vm_rms_norm(x, w, y, len, 1e-5f, 1.0f);
        fwrite(y, sizeof *y, len, stdout);
        for (long i = 0; i < len; i++) y[i] = x[i];
        vm_silu_mul(y, w, len);
        fwrite(y, sizeof *y, len, stdout);
    }
    return 0;
}
"""

BUILDS = {"avx512f": '__attribute__((target("avx512f")))', "avx2": '__attribute__((target("avx2")))', "baseline": ""}


def cpu_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    work = tmp_path_factory.mktemp("vector_math")
    (work / "harness.c").write_text(HARNESS)
    flags, built = cpu_flags(), {}
    for name, attribute in BUILDS.items():
        if name != "baseline" and name not in flags:
            continue
        out = work / name
        subprocess.run(["clang", "-O2", "-march=x86-64", f"-DCLONES={attribute}", f"-I{SOURCE / 'include'}",
                        str(work / "harness.c"), str(SOURCE / "vector_math.c"), "-lm", "-o", str(out)], check=True)
        built[name] = out
    return built


def inputs():
    rng = np.random.default_rng(7)
    n = max(LENGTHS) + 5
    x = (rng.standard_normal(n) * 12).astype(np.float32)
    x[:4] = [-100.0, -87.0, 0.0, 87.5]
    w = (rng.standard_normal(n) * 0.2 + 1).astype(np.float32)
    return x, w


def run(binary, x, w):
    payload = np.int64(len(x)).tobytes() + x.tobytes() + w.tobytes()
    return subprocess.run([str(binary), *map(str, LENGTHS)], input=payload, capture_output=True, check=True).stdout


def test_every_instruction_set_gives_the_same_bits(builds):
    assert "baseline" in builds
    x, w = inputs()
    outputs = {name: run(binary, x, w) for name, binary in builds.items()}
    for name, out in outputs.items():
        assert out == outputs["baseline"], f"{name} differs from the baseline build"


def test_kernels_match_numpy(builds):
    x, w = inputs()
    out = run(builds["baseline"], x, w)
    at = 0

    def take(dtype, count):
        nonlocal at
        values = np.frombuffer(out, dtype=dtype, count=count, offset=at)
        at += values.nbytes
        return values.astype(np.float64)

    for n in LENGTHS:
        v = x[:n].astype(np.float64)
        exact = np.exp(np.clip(v, np.float32(-87.3), np.float32(88.0)))  # the clamp bounds as f32
        assert np.all(np.abs(take(np.float32, n) - exact) <= 3e-7 * exact), n
        m, s = take(np.float32, 1)[0], take(np.float64, 1)[0]
        assert m == v.max()
        assert abs(s - np.exp(v - m).sum()) <= 1e-6 * s, n
        soft = take(np.float32, n + 5)
        reference = np.exp(v - v.max()) / np.exp(v - v.max()).sum()
        assert np.allclose(soft[:n], reference, rtol=1e-5, atol=1e-7) and np.all(soft[n:] == 0), n
        rms = v / np.sqrt(np.mean(v * v) + 1e-5) * (w[:n].astype(np.float64) + 1)
        assert np.allclose(take(np.float32, n), rms, rtol=1e-5, atol=1e-6), n
        silu = v / (1 + np.exp(-v)) * w[:n]
        assert np.allclose(take(np.float32, n), silu, rtol=1e-5, atol=1e-6), n
    assert at == len(out)

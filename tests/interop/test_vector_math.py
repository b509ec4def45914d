"""The kernels of CVectorMath: one build per instruction set, the same bits.

vector_math.c (exp and the loops built on it) is compiled into the tool once per
instruction set (AVX-512, AVX2, baseline x86-64) and the loader picks one;
attention_kernels.c (the scores and the weighted values of causal attention) has one
register tile per instruction set and picks one at run time. Here a small harness is
built three times with one instruction set each and run on the same inputs: every build
this CPU can run must give byte-identical outputs, and those outputs must match numpy's
f64 arithmetic (exp to 3e-7 relative, the rest to f32 rounding).
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
#include "attention_kernels.h"

/* Attention cases after the vector ones: per case rows, before, depth, width, ldq and ldk,
   then q[rows × ldq], k and v[(before + rows) × ldk] and weights p[rows × (before + rows)]
   (0 past each row's prefix); out: the scores (0 past the prefix) and p·v, [rows × (before + rows)] and
   [rows × width]. */
static int attention_cases(void) {
    long h[6];
    while (fread(h, sizeof *h, 6, stdin) == 6) {
        long rows = h[0], before = h[1], depth = h[2], width = h[3], ldq = h[4], ldk = h[5];
        long keys = before + rows, panels = (keys + 15) / 16 * 16;
        float *q = malloc(rows * ldq * 4), *k = malloc(keys * ldk * 4), *v = malloc(keys * ldk * 4);
        float *p = malloc(rows * keys * 4), *kt = malloc(depth * panels * 4);
        float *scores = calloc(rows * keys, 4), *out = calloc(rows * width, 4);
        if (fread(q, 4, rows * ldq, stdin) != (size_t)(rows * ldq) || fread(k, 4, keys * ldk, stdin) != (size_t)(keys * ldk)
            || fread(v, 4, keys * ldk, stdin) != (size_t)(keys * ldk) || fread(p, 4, rows * keys, stdin) != (size_t)(rows * keys))
            return 1;
        vm_pack_key_panels(k, ldk, kt, keys, depth);
        vm_attention_scores(q, ldq, kt, scores, keys, rows, before, depth, 0.125f);
        vm_attention_values(p, keys, v, ldk, out, width, rows, before, width);
        for (long i = 0; i < rows; i++)  /* past the prefix the tiles may differ; the softmax zeroes it */
            for (long j = before + i + 1; j < keys; j++) scores[i * keys + j] = 0;
        fwrite(scores, 4, rows * keys, stdout);
        fwrite(out, 4, rows * width, stdout);
        free(q); free(k); free(v); free(p); free(kt); free(scores); free(out);
    }
    return 0;
}

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
    return attention_cases();
}
"""

# name: (the CPU flags it needs, vector_math.c's CLONES, attention_kernels.c's ATTENTION_ISA)
BUILDS = {"avx512f": ({"avx512f"}, '__attribute__((target("avx512f")))', 2),
          "avx2": ({"avx2", "fma"}, '__attribute__((target("avx2")))', 1),
          "baseline": (set(), "", 0)}
# (rows, before, depth, width, ldq, ldk): one query and long prefixes, blocks that fill no
# register tile, head_dim 64, 96 and 80, one with a tail past the last 16 columns (72), and
# rows whose keys end on, or run across, the P·V kernel's 256-key chunks.
ATTENTION_CASES = [(1, 0, 64, 64, 64, 64), (1, 300, 64, 64, 576, 192), (5, 0, 64, 64, 64, 64),
                   (37, 45, 64, 64, 576, 192), (128, 300, 64, 64, 576, 192), (13, 7, 96, 96, 96, 96),
                   (9, 3, 80, 80, 160, 80), (7, 2, 72, 72, 72, 72), (20, 250, 72, 72, 72, 72),
                   (6, 506, 64, 64, 576, 192)]


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
    for name, (needs, attribute, isa) in BUILDS.items():
        if not needs <= flags:
            continue
        out = work / name
        subprocess.run(["clang", "-O2", "-march=x86-64", f"-DCLONES={attribute}", f"-DATTENTION_ISA={isa}",
                        f"-I{SOURCE / 'include'}", str(work / "harness.c"), str(SOURCE / "vector_math.c"),
                        str(SOURCE / "attention_kernels.c"), "-lm", "-o", str(out)], check=True)
        built[name] = out
    return built


def inputs():
    rng = np.random.default_rng(7)
    n = max(LENGTHS) + 5
    x = (rng.standard_normal(n) * 12).astype(np.float32)
    x[:4] = [-100.0, -87.0, 0.0, 87.5]
    w = (rng.standard_normal(n) * 0.2 + 1).astype(np.float32)
    return x, w


def attention_inputs():
    rng = np.random.default_rng(11)
    for rows, before, depth, width, ldq, ldk in ATTENTION_CASES:
        keys = before + rows
        q, k, v = (rng.standard_normal(shape).astype(np.float32) for shape in [(rows, ldq), (keys, ldk), (keys, ldk)])
        p = rng.random((rows, keys)).astype(np.float32)
        p[np.arange(keys)[None, :] > before + np.arange(rows)[:, None]] = 0
        yield (rows, before, depth, width, ldq, ldk), q, k, v, p


def run(binary, x, w):
    payload = np.int64(len(x)).tobytes() + x.tobytes() + w.tobytes()
    for header, *arrays in attention_inputs():
        payload += np.array(header, dtype=np.int64).tobytes() + b"".join(a.tobytes() for a in arrays)
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
    for (rows, before, depth, width, _, _), q, k, v, p in attention_inputs():
        keys = before + rows
        scores = take(np.float32, rows * keys).reshape(rows, keys)
        q64, k64 = q[:, :depth].astype(np.float64), k[:, :depth].astype(np.float64)
        exact, bound = 0.125 * q64 @ k64.T, 0.125 * np.abs(q64) @ np.abs(k64).T
        visible = np.arange(keys)[None, :] <= before + np.arange(rows)[:, None]
        assert np.all(np.abs(scores - exact)[visible] <= 1e-6 * bound[visible]), (rows, before, depth)
        values = take(np.float32, rows * width).reshape(rows, width)
        v64 = v[:, :width].astype(np.float64)
        exact, bound = p.astype(np.float64) @ v64, p.astype(np.float64) @ np.abs(v64)
        assert np.all(np.abs(values - exact) <= 1e-6 * bound + 1e-30), (rows, before, width)
    assert at == len(out)

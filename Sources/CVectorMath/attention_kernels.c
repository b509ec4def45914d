#include <string.h>
#include "attention_kernels.h"

// Every output element is one accumulator: acc = fma(a_k, b_k, acc) for k = 0, 1, … from
// acc = 0. Tiles only decide how many accumulators are live at once, so the AVX-512, AVX2
// and baseline builds, each with its own tile, give the same bits. (The baseline build has
// no FMA instruction: it is correct there, and slow.)
#pragma clang fp contract(off)

// A test may pin one instruction set (tests/interop/test_vector_math.py builds each):
// 0 baseline, 1 AVX2 + FMA, 2 AVX-512; -1 asks the CPU.
#ifndef ATTENTION_ISA
#define ATTENTION_ISA -1
#endif

typedef float vf __attribute__((ext_vector_type(16)));
enum { W = 16 };

#define INLINE static inline __attribute__((always_inline))
#define LOAD(p) ({ vf loaded_; memcpy(&loaded_, (p), sizeof loaded_); loaded_; })
#define STORE(p, v) do { vf stored_ = (v); memcpy((p), &stored_, sizeof stored_); } while (0)
#define FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))

/// Rows [0, mr) × columns [j, j + nv·W) of the scores, storing the first `store` columns.
INLINE void scores_tile(const float *q, long ldq, const float *panels, float *out, long ldo,
                        long depth, float scale, long j, long store, const int mr, const int nv) {
    vf acc[6][2];
    for (int r = 0; r < mr; r++)
        for (int n = 0; n < nv; n++) acc[r][n] = 0;
    for (long d = 0; d < depth; d++) {
        vf b[2];
        for (int n = 0; n < nv; n++) b[n] = LOAD(panels + (j / W + n) * depth * W + d * W);
        for (int r = 0; r < mr; r++) {
            const vf a = q[r * ldq + d];
            for (int n = 0; n < nv; n++) acc[r][n] = FMA(a, b[n], acc[r][n]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int n = 0; n < nv; n++) {
            vf y = acc[r][n] * scale;
            long count = store - n * W;
            if (count >= W) STORE(out + r * ldo + j + n * W, y);
            else for (long c = 0; c < count; c++) out[r * ldo + j + n * W + c] = y[c];
        }
}

/// Query rows [0, mr) against keys [0, cols): full tiles of nv vectors, then single ones.
INLINE void scores_rows(const float *q, long ldq, const float *panels, float *out, long ldo,
                        long depth, float scale, long cols, const int mr, const int nv) {
    long j = 0;
    for (; j + nv * W <= cols; j += nv * W) scores_tile(q, ldq, panels, out, ldo, depth, scale, j, nv * W, mr, nv);
    for (; j < cols; j += W) scores_tile(q, ldq, panels, out, ldo, depth, scale, j, cols - j < W ? cols - j : W, mr, 1);
}

INLINE void scores_body(const float *q, long ldq, const float *panels, float *out, long ldo,
                        long rows, long before, long depth, float scale, const int mr, const int nv) {
    long i = 0;
    // A tile's rows share the last row's prefix; the few extra keys of the earlier rows
    // are masked later by the softmax.
    for (; i + mr <= rows; i += mr)
        scores_rows(q + i * ldq, ldq, panels, out + i * ldo, ldo, depth, scale, before + i + mr, mr, nv);
    for (; i < rows; i++)
        scores_rows(q + i * ldq, ldq, panels, out + i * ldo, ldo, depth, scale, before + i + 1, 1, nv);
}

/// Rows [0, mr) × columns [c, c + nv·W) of P·V over keys [from, to), continuing the sums
/// already in `out` unless `from` is 0.
INLINE void values_tile(const float *p, long ldp, const float *v, long ldv, float *out, long ldo,
                        long from, long to, long c, const int mr, const int nv) {
    vf acc[6][2];
    for (int r = 0; r < mr; r++)
        for (int n = 0; n < nv; n++) acc[r][n] = from == 0 ? 0 : LOAD(out + r * ldo + c + n * W);
    for (long j = from; j < to; j++) {
        vf b[2];
        for (int n = 0; n < nv; n++) b[n] = LOAD(v + j * ldv + c + n * W);
        for (int r = 0; r < mr; r++) {
            const vf a = p[r * ldp + j];
            for (int n = 0; n < nv; n++) acc[r][n] = FMA(a, b[n], acc[r][n]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int n = 0; n < nv; n++) STORE(out + r * ldo + c + n * W, acc[r][n]);
}

INLINE void values_rows(const float *p, long ldp, const float *v, long ldv, float *out, long ldo,
                        long from, long to, long width, const int mr, const int nv) {
    long c = 0;
    for (; c + nv * W <= width; c += nv * W) values_tile(p, ldp, v, ldv, out, ldo, from, to, c, mr, nv);
    for (; c + W <= width; c += W) values_tile(p, ldp, v, ldv, out, ldo, from, to, c, mr, 1);
    for (; c < width; c++)  // a head_dim that is not a multiple of 16
        for (int r = 0; r < mr; r++) {
            float acc = from == 0 ? 0 : out[r * ldo + c];
            for (long j = from; j < to; j++) acc = __builtin_fmaf(p[r * ldp + j], v[j * ldv + c], acc);
            out[r * ldo + c] = acc;
        }
}

/// Keys go in chunks whose rows of V stay in L2 while every row tile reads them; streaming
/// all of V through each tile (512 KiB per head at 2048 keys) ran P·V at 55 GFLOP/s on
/// one Zen 3 core, the chunks at 75. A sum stops at a chunk's end in `out` and goes on
/// from there: the same chain of fmas, the same bits.
enum { VALUES_KEY_CHUNK = 256 };

INLINE void values_body(const float *p, long ldp, const float *v, long ldv, float *out, long ldo,
                        long rows, long before, long width, const int mr, const int nv) {
    for (long from = 0; from < before + rows; from += VALUES_KEY_CHUNK) {
        const long end = from + VALUES_KEY_CHUNK;
        long i = 0;
        for (; i + mr <= rows; i += mr) {
            const long keys = before + i + mr, to = keys < end ? keys : end;
            if (to > from) values_rows(p + i * ldp, ldp, v, ldv, out + i * ldo, ldo, from, to, width, mr, nv);
        }
        for (; i < rows; i++) {
            const long keys = before + i + 1, to = keys < end ? keys : end;
            if (to > from) values_rows(p + i * ldp, ldp, v, ldv, out + i * ldo, ldo, from, to, width, 1, nv);
        }
    }
}

// One entry point per instruction set, each with the tile its registers hold: AVX-512 has
// 32 of 16 floats (6 × 2 accumulators), AVX2 16 of 8 (6 × 1 of two registers each),
// SSE 16 of 4.
#define SCORES_ARGS const float *q, long ldq, const float *panels, float *out, long ldo, \
                    long rows, long before, long depth, float scale
#define VALUES_ARGS const float *p, long ldp, const float *v, long ldv, float *out, long ldo, \
                    long rows, long before, long width

__attribute__((target("avx512f"))) static void scores_avx512(SCORES_ARGS) {
    scores_body(q, ldq, panels, out, ldo, rows, before, depth, scale, 6, 2);
}
__attribute__((target("avx2,fma"))) static void scores_avx2(SCORES_ARGS) {
    scores_body(q, ldq, panels, out, ldo, rows, before, depth, scale, 6, 1);
}
static void scores_baseline(SCORES_ARGS) { scores_body(q, ldq, panels, out, ldo, rows, before, depth, scale, 2, 1); }

__attribute__((target("avx512f"))) static void values_avx512(VALUES_ARGS) {
    values_body(p, ldp, v, ldv, out, ldo, rows, before, width, 6, 2);
}
__attribute__((target("avx2,fma"))) static void values_avx2(VALUES_ARGS) {
    values_body(p, ldp, v, ldv, out, ldo, rows, before, width, 6, 1);
}
static void values_baseline(VALUES_ARGS) { values_body(p, ldp, v, ldv, out, ldo, rows, before, width, 2, 1); }

static int instruction_set(void) {
    if (ATTENTION_ISA >= 0) return ATTENTION_ISA;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

void vm_attention_scores(SCORES_ARGS) {
    switch (instruction_set()) {
    case 2: scores_avx512(q, ldq, panels, out, ldo, rows, before, depth, scale); break;
    case 1: scores_avx2(q, ldq, panels, out, ldo, rows, before, depth, scale); break;
    default: scores_baseline(q, ldq, panels, out, ldo, rows, before, depth, scale);
    }
}

void vm_attention_values(VALUES_ARGS) {
    switch (instruction_set()) {
    case 2: values_avx512(p, ldp, v, ldv, out, ldo, rows, before, width); break;
    case 1: values_avx2(p, ldp, v, ldv, out, ldo, rows, before, width); break;
    default: values_baseline(p, ldp, v, ldv, out, ldo, rows, before, width);
    }
}

void vm_pack_key_panels(const float *keys, long ldk, float *panels, long count, long depth) {
    for (long b = 0; b * W < count; b++) {
        float *panel = panels + b * depth * W;
        long n = count - b * W < W ? count - b * W : W;
        if (n < W) memset(panel, 0, (size_t)(depth * W) * sizeof *panel);
        for (long c = 0; c < n; c++) {
            const float *key = keys + (b * W + c) * ldk;
            for (long d = 0; d < depth; d++) panel[d * W + c] = key[d];
        }
    }
}

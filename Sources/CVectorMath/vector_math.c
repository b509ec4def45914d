#include <string.h>
#include "vector_math.h"

// No fused multiply-adds: they would make the AVX2 and AVX-512 clones round differently
// from the baseline one. All clones work in 16 lanes, so their sums add in the same order.
#pragma clang fp contract(off)

// A test may define CLONES itself to build one instruction set alone
// (tests/interop/test_vector_math.py compares them).
#ifndef CLONES
#if defined(__x86_64__) && defined(__ELF__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif
#endif

typedef float vf __attribute__((ext_vector_type(16)));
typedef int vi __attribute__((ext_vector_type(16)));
enum { W = 16 };

#define INLINE static inline __attribute__((always_inline))

// Helpers take and give vectors through pointers or macros: a 64-byte vector passed by
// value would be an ABI the baseline clone does not have.
#define LOAD(p) ({ vf loaded_; memcpy(&loaded_, (p), sizeof loaded_); loaded_; })
#define STORE(p, v) do { vf stored_ = (v); memcpy((p), &stored_, sizeof stored_); } while (0)
/// m ? a : b per lane, for m the result of a lane comparison (all ones or zero).
#define SELECT(m, a, b) ((vf)(((vi)(a) & (m)) | ((vi)(b) & ~(m))))

/// The first n (< W) values of p in *v, the rest `fill`.
INLINE void load_partial(vf *v, const float *p, long n, float fill) {
    for (int i = 0; i < W; i++) (*v)[i] = i < n ? p[i] : fill;
}

INLINE void store_partial(float *p, const vf *v, long n) {
    for (long i = 0; i < n; i++) p[i] = (*v)[i];
}

INLINE float lane_sum(const vf *v) {
    float s = 0;
    for (int i = 0; i < W; i++) s += (*v)[i];
    return s;
}

/// *v = e^*v: Cephes' single-precision exp (the polynomial ggml uses too), relative error
/// below 3e-7.
INLINE void exp16(vf *v) {
    const vf lo = -87.3f, hi = 88.0f;
    vf x = *v;
    x = SELECT(x < lo, lo, x);
    x = SELECT(x > hi, hi, x);
    // n = round(x / ln 2) by the 1.5·2²³ trick: n sits in the low mantissa bits of `shifted`.
    const vf magic = 12582912.0f;
    vf shifted = x * 1.44269504f + magic;
    vf n = shifted - magic;
    // r = x − n·ln 2, with ln 2 split in two so that r keeps its low bits.
    vf r = x - n * 0.693359375f + n * 2.1219444e-4f;
    vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    vf er = p * (r * r) + r + 1.0f;
    // 2ⁿ: n's bits moved into the exponent field, added to the bits of 1.0.
    vi bits = ((vi)shifted << 23) + 0x3F800000;
    *v = er * (vf)bits;
}

/// *v = e^(p[i] − shift) for the first n (< W) values; the other lanes are 1.
INLINE void exp_partial(vf *v, const float *p, long n, float shift) {
    load_partial(v, p, n, shift);
    *v -= shift;
    exp16(v);
}

CLONES void vm_exp(const float *x, float *out, long n) {
    long i = 0;
    for (; i + W <= n; i += W) {
        vf v = LOAD(x + i);
        exp16(&v);
        STORE(out + i, v);
    }
    if (i < n) {
        vf v;
        exp_partial(&v, x + i, n - i, 0);
        store_partial(out + i, &v, n - i);
    }
}

CLONES float vm_maximum(const float *x, long n) {
    vf m = -__builtin_inff();
    long i = 0;
    for (; i + W <= n; i += W) {
        vf v = LOAD(x + i);
        m = SELECT(v > m, v, m);
    }
    if (i < n) {
        vf v;
        load_partial(&v, x + i, n - i, -__builtin_inff());
        m = SELECT(v > m, v, m);
    }
    float best = -__builtin_inff();
    for (int j = 0; j < W; j++) best = m[j] > best ? m[j] : best;
    return best;
}

CLONES double vm_sum_exp(const float *x, long n, float shift) {
    double total = 0;
    long i = 0;
    while (i + W <= n) {
        vf block = 0;
        long end = i + 128 * W < n - W + 1 ? i + 128 * W : n - W + 1;
        for (; i < end; i += W) {
            vf v = LOAD(x + i) - shift;
            exp16(&v);
            block += v;
        }
        total += lane_sum(&block);
    }
    if (i < n) {
        vf v;
        exp_partial(&v, x + i, n - i, shift);
        for (long j = 0; j < n - i; j++) total += v[j];
    }
    return total;
}

CLONES void vm_softmax_prefix(float *row, long length, long width) {
    float m = vm_maximum(row, length);
    vf sum = 0;
    long i = 0;
    for (; i + W <= length; i += W) {
        vf v = LOAD(row + i) - m;
        exp16(&v);
        STORE(row + i, v);
        sum += v;
    }
    float total = lane_sum(&sum);
    if (i < length) {
        vf v;
        exp_partial(&v, row + i, length - i, m);
        for (long j = 0; j < length - i; j++) total += v[j];
        store_partial(row + i, &v, length - i);
    }
    const float inv = 1.0f / total;
    for (i = 0; i + W <= length; i += W) STORE(row + i, LOAD(row + i) * inv);
    for (; i < length; i++) row[i] *= inv;
    if (width > length) memset(row + length, 0, (size_t)(width - length) * sizeof(float));
}

CLONES void vm_rms_norm(const float *x, const float *weight, float *out, long n, float eps, float offset) {
    vf squares = 0;
    long i = 0;
    for (; i + W <= n; i += W) {
        vf v = LOAD(x + i);
        squares += v * v;
    }
    float sum = lane_sum(&squares);
    for (; i < n; i++) sum += x[i] * x[i];
    const float scale = 1.0f / __builtin_sqrtf(sum / (float)n + eps);
    for (i = 0; i + W <= n; i += W) STORE(out + i, (LOAD(weight + i) + offset) * (LOAD(x + i) * scale));
    for (; i < n; i++) out[i] = (weight[i] + offset) * (x[i] * scale);
}

CLONES void vm_silu_mul(float *gate, const float *up, long n) {
    long i = 0;
    for (; i + W <= n; i += W) {
        vf g = LOAD(gate + i), e = -g;
        exp16(&e);
        STORE(gate + i, g / (1.0f + e) * LOAD(up + i));
    }
    if (i < n) {
        vf g, u;
        load_partial(&g, gate + i, n - i, 0);
        load_partial(&u, up + i, n - i, 0);
        vf e = -g;
        exp16(&e);
        vf y = g / (1.0f + e) * u;
        store_partial(gate + i, &y, n - i);
    }
}

#ifndef VECTOR_MATH_H
#define VECTOR_MATH_H

// The exp-heavy loops of the forward pass (softmax, log-sum-exp, SwiGLU), sixteen lanes
// at a time, compiled once per instruction set (AVX-512, AVX2 + FMA, baseline x86-64)
// and picked at load time. Every clone does the same IEEE operations in the same order,
// so results are bit-identical whichever one runs.

/// e^x[i] into out[i] (out may be x). Inputs are clamped to [-87.3, 88.0].
void vm_exp(const float *x, float *out, long n);
/// The largest of n values (-inf for none).
float vm_maximum(const float *x, long n);
/// Σ exp(x[i] - shift): each lane sums at most 128 terms in f32, the blocks add in f64.
double vm_sum_exp(const float *x, long n, float shift);
/// Softmax over row[0 ..< length] in place; row[length ..< width] set to 0.
void vm_softmax_prefix(float *row, long length, long width);
/// out = x / sqrt(mean(x²) + eps) * (weight + offset) over one row of n values (out may be x).
void vm_rms_norm(const float *x, const float *weight, float *out, long n, float eps, float offset);
/// gate[i] = gate[i] / (1 + e^-gate[i]) * up[i].
void vm_silu_mul(float *gate, const float *up, long n);

#endif

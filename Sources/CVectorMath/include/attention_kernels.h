#ifndef ATTENTION_KERNELS_H
#define ATTENTION_KERNELS_H

// The two products of causal attention at head_dim 64–256, where sgemm's packing costs
// as much as its arithmetic: scores = scale · Q·Kᵀ over the causal prefix, and out = P·V.
// Register tiles are sized per instruction set (AVX-512, AVX2 + FMA, baseline x86-64)
// and picked at run time; every element is the same chain of fused multiply-adds over
// the shared index in increasing order, so all three give the same bits.

/// out[i·ldo + j] = scale · Σ_d q[i·ldq + d] · key_j[d] for query rows i < rows and keys
/// j ≤ before + i (the causal prefix; a few keys past it may be written too, never beyond
/// before + rows). `panels` holds the keys as `vm_pack_key_panels` lays them out.
void vm_attention_scores(const float *q, long ldq, const float *panels, float *out, long ldo,
                         long rows, long before, long depth, float scale);

/// out[i·ldo + c] = Σ_j p[i·ldp + j] · v[j·ldv + c] for rows i < rows, columns c < width,
/// over keys j ≤ before + i (and a few past it, which p must hold as 0, as far as
/// before + rows). `out` holds running sums along the way, so it must not overlap p or v.
void vm_attention_values(const float *p, long ldp, const float *v, long ldv, float *out, long ldo,
                         long rows, long before, long width);

/// Keys 0 ..< count (rows of ldk floats, the first `depth` of each used) in panels of 16:
/// panel b, at panels + b·depth·16, holds keys 16b ..< 16b + 16 transposed, depth rows of
/// 16 floats, so the scores read each panel front to back (a plain transpose would stride
/// by a multiple of 4 KiB and thrash L1). Keys past `count` in the last panel are 0.
/// `panels` holds ⌈count / 16⌉ · depth · 16 floats.
void vm_pack_key_panels(const float *keys, long ldk, float *panels, long count, long depth);

#endif

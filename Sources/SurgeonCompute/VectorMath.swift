import CVectorMath

/// exp and the row reductions built on it, sixteen lanes at a time (CVectorMath).
///
/// SwiGLU, the attention softmax and the vocabulary's log-sum-exp call exp some 160,000
/// times per token on SmolLM2 at ctx 512 (10× that in attention at ctx 2048), and libm's
/// scalar `expf` does not vectorise. This is the Cephes single-precision exp (the
/// polynomial ggml's vector exp uses too): relative error below 3e-7, tested over
/// [-87, 88]. It is written in C because Swift cannot compile one function for several
/// instruction sets: the C file is built for AVX-512, AVX2 + FMA and baseline x86-64, the
/// loader picks one for the CPU, and all three round identically (no fused multiply-adds).
/// The softmax alone ran 4× faster than in 8-lane Swift SIMD on baseline x86-64.
public enum VectorMath {
    /// e^x for each value, clamped to [-87.3, 88.0] so the result is a normal float: about
    /// 1.2e-38 for anything below and 1.65e38 for anything above.
    public static func exp(_ x: [Float]) -> [Float] {
        var out = x
        out.withUnsafeMutableBufferPointer { vm_exp($0.baseAddress!, $0.baseAddress!, $0.count) }
        return out
    }

    /// The largest of `n` values (-inf for none).
    public static func maximum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        vm_maximum(x, n)
    }

    /// Σ exp(x[j] − shift) over `n` values. Each lane sums at most 128 terms in f32 and the
    /// blocks add up in f64, so rounding stays near f32 precision for any vocabulary size.
    public static func sumExp(_ x: UnsafePointer<Float>, count n: Int, shift: Float) -> Double {
        vm_sum_exp(x, n, shift)
    }

    /// Softmax over the first `length` entries of a row, in place; the rest of `width` set to 0.
    public static func softmaxPrefix(_ row: UnsafeMutablePointer<Float>, length: Int, width: Int) {
        vm_softmax_prefix(row, length, width)
    }

    /// gate[j] = silu(gate[j]) · up[j] = gate[j] / (1 + e^−gate[j]) · up[j].
    public static func siluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, range: Range<Int>) {
        vm_silu_mul(gate + range.lowerBound, up + range.lowerBound, range.count)
    }
}

/// Scalar conversions between f32 and the narrow float formats.
///
/// The rounding rules are the ones the reference tools use, so that a tensor we encode is
/// bit-identical to what numpy (`astype(np.float16)`) and gguf-py (`quants.BF16`) produce.
public enum FloatConversions {
    /// f16 → f32 for all 65,536 bit patterns; decoding by table is several times faster
    /// than converting one value at a time on CPUs without F16C in the baseline target.
    nonisolated(unsafe) static let f16Table: UnsafeMutablePointer<Float> = {
        let table = UnsafeMutablePointer<Float>.allocate(capacity: 65536)
        for bits in 0..<65536 {
            table[bits] = Float(Float16(bitPattern: UInt16(bits)))
        }
        return table
    }()

    @inline(__always)
    public static func f16ToF32(_ bits: UInt16) -> Float { f16Table[Int(bits)] }

    /// Round to nearest even, overflow to infinity (IEEE 754, as numpy does).
    @inline(__always)
    public static func f32ToF16(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    @inline(__always)
    public static func bf16ToF32(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// ggml's `ggml_compute_fp32_to_bf16`: NaN made quiet, otherwise round to nearest even.
    @inline(__always)
    public static func f32ToBF16(_ x: Float) -> UInt16 {
        let n = x.bitPattern
        if (n & 0x7fff_ffff) > 0x7f80_0000 {
            return UInt16(truncatingIfNeeded: ((n & 0xffff_0000) | (64 << 16)) >> 16)
        }
        let rounded = UInt64(n) + UInt64(0x7fff + ((n >> 16) & 1))
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// OCP FP8 E4M3 ("fn" variant used by PyTorch/safetensors): bias 7, no infinities,
    /// S.1111.111 is NaN.
    public static func f8e4m3ToF32(_ b: UInt8) -> Float {
        let sign: Float = (b & 0x80) != 0 ? -1 : 1
        let exponent = Int((b >> 3) & 0x0f)
        let mantissa = Float(b & 0x07)
        if exponent == 0x0f && (b & 0x07) == 0x07 { return .nan }
        if exponent == 0 { return sign * mantissa / 8 * Float(sign: .plus, exponent: -6, significand: 1) }
        return sign * (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
    }

    /// FP8 E5M2: bias 15, IEEE-style infinities and NaNs (the top byte of an f16).
    public static func f8e5m2ToF32(_ b: UInt8) -> Float { f16ToF32(UInt16(b) << 8) }
}

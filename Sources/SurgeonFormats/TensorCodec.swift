/// Decoding any supported dtype to f32, and encoding f32 to the types we write.
///
/// Block formats follow ggml's layouts (ggml-common.h). The arithmetic mirrors gguf-py's
/// `quants.py` operation by operation (same products, same order, no fused multiply-add),
/// which makes our f32 output bit-identical to `gguf.quants.dequantize`.
public enum TensorCodec {
    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// Decodes `dst.count` elements of `dtype` stored in `src`.
    public static func decode(_ dtype: DType, from src: UnsafeRawBufferPointer,
                              into dst: UnsafeMutableBufferPointer<Float>) {
        let n = dst.count
        precondition(dtype.byteCount(elements: n, rowLength: max(n, dtype.blockSize)) ?? -1 <= src.count,
                     "source buffer too small for \(n) \(dtype) elements")
        guard n > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        switch dtype {
        case .f32: d.update(from: s.assumingMemoryBound(to: Float.self), count: n)
        case .f64: for i in 0..<n { d[i] = Float(s.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
        case .f16:
            for i in 0..<n { d[i] = FloatConversions.f16ToF32(s.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
        case .bf16:
            for i in 0..<n { d[i] = FloatConversions.bf16ToF32(s.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
        case .f8e4m3: for i in 0..<n { d[i] = FloatConversions.f8e4m3ToF32(s.load(fromByteOffset: i, as: UInt8.self)) }
        case .f8e5m2: for i in 0..<n { d[i] = FloatConversions.f8e5m2ToF32(s.load(fromByteOffset: i, as: UInt8.self)) }
        case .i64: for i in 0..<n { d[i] = Float(s.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
        case .i32: for i in 0..<n { d[i] = Float(s.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
        case .i16: for i in 0..<n { d[i] = Float(s.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)) }
        case .i8: for i in 0..<n { d[i] = Float(s.load(fromByteOffset: i, as: Int8.self)) }
        case .u8, .bool: for i in 0..<n { d[i] = Float(s.load(fromByteOffset: i, as: UInt8.self)) }
        default:
            let blocks = n / dtype.blockSize
            for b in 0..<blocks {
                let block = s + b * dtype.blockBytes
                let out = d + b * dtype.blockSize
                switch dtype {
                case .q8_0: BlockDecoder.q8_0(block, out)
                case .q4_0: BlockDecoder.q4_0(block, out)
                case .q4_1: BlockDecoder.q4_1(block, out)
                case .q5_0: BlockDecoder.q5_0(block, out)
                case .q5_1: BlockDecoder.q5_1(block, out)
                case .q4_K: BlockDecoder.q4_K(block, out)
                case .q5_K: BlockDecoder.q5_K(block, out)
                case .q6_K: BlockDecoder.q6_K(block, out)
                default: preconditionFailure("not a block type: \(dtype)")
                }
            }
        }
    }

    /// The types `encode` can produce.
    public static let encodable: Set<DType> = [.f32, .f16, .bf16, .q8_0]

    /// Encodes `src` as `dtype` into `dst`, which must hold exactly the encoded size.
    public static func encode(_ src: UnsafeBufferPointer<Float>, as dtype: DType,
                              into dst: UnsafeMutableRawBufferPointer) throws {
        let n = src.count
        guard n > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        switch dtype {
        case .f32:
            d.copyMemory(from: s, byteCount: n * 4)
        case .f16:
            for i in 0..<n { d.storeBytes(of: FloatConversions.f32ToF16(s[i]), toByteOffset: i * 2, as: UInt16.self) }
        case .bf16:
            for i in 0..<n { d.storeBytes(of: FloatConversions.f32ToBF16(s[i]), toByteOffset: i * 2, as: UInt16.self) }
        case .q8_0:
            guard n % 32 == 0 else { throw Unsupported(description: "Q8_0 needs a multiple of 32 elements, got \(n)") }
            for b in 0..<(n / 32) { BlockEncoder.q8_0(s + b * 32, d + b * 34) }
        default:
            throw Unsupported(description: "cannot encode \(dtype.ggmlName); supported: F32, F16, BF16, Q8_0")
        }
    }
}

/// One block of each ggml quantization type → 32 or 256 floats.
enum BlockDecoder {
    @inline(__always)
    private static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        FloatConversions.f16ToF32(p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    private static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
        p.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// Element j of a 32-element block whose 16 bytes hold j in the low nibble and
    /// j + 16 in the high nibble.
    @inline(__always)
    private static func nibble(_ qs: UnsafeRawPointer, _ j: Int) -> UInt8 {
        j < 16 ? byte(qs, j) & 0x0f : byte(qs, j - 16) >> 4
    }

    static func q8_0(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        for j in 0..<32 { out[j] = Float(p.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
    }

    static func q4_0(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        for j in 0..<32 { out[j] = d * Float(Int(nibble(p + 2, j)) - 8) }
    }

    static func q4_1(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0), m = half(p, 2)
        for j in 0..<32 {
            let scaled = d * Float(nibble(p + 4, j))
            out[j] = scaled + m
        }
    }

    static func q5_0(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let qh = p.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
        for j in 0..<32 {
            let q = Int(nibble(p + 6, j) | UInt8((qh >> UInt32(j)) & 1) << 4) - 16
            out[j] = d * Float(q)
        }
    }

    static func q5_1(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0), m = half(p, 2)
        let qh = p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        for j in 0..<32 {
            let q = nibble(p + 8, j) | UInt8((qh >> UInt32(j)) & 1) << 4
            let scaled = d * Float(q)
            out[j] = scaled + m
        }
    }

    /// The 6-bit scales and mins of Q4_K/Q5_K, packed in 12 bytes (ggml `get_scale_min_k4`).
    @inline(__always)
    private static func scaleMin(_ s: UnsafeRawPointer, _ g: Int) -> (scale: UInt8, min: UInt8) {
        if g < 4 {
            return (byte(s, g) & 0x3f, byte(s, g + 4) & 0x3f)
        }
        let packed = byte(s, g + 4)
        return ((packed & 0x0f) | ((byte(s, g - 4) >> 2) & 0x30),
                (packed >> 4) | ((byte(s, g) >> 2) & 0x30))
    }

    /// Q4_K: 256 elements in 8 groups of 32; group g takes nibble (g % 2) of the 32 bytes
    /// at 32·(g / 2).
    static func q4_K(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0), dmin = half(p, 2)
        let qs = p + 16
        for g in 0..<8 {
            let (sc, mn) = scaleMin(p + 4, g)
            let scale = d * Float(sc), offset = dmin * Float(mn)
            let chunk = qs + 32 * (g / 2), shift = UInt8(4 * (g % 2))
            for k in 0..<32 {
                let q = Float((byte(chunk, k) >> shift) & 0x0f)
                let scaled = scale * q
                out[32 * g + k] = scaled - offset
            }
        }
    }

    /// Q5_K: as Q4_K plus a fifth bit, bit g of byte k of `qh` for element k of group g.
    static func q5_K(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(p, 0), dmin = half(p, 2)
        let qh = p + 16, qs = p + 48
        for g in 0..<8 {
            let (sc, mn) = scaleMin(p + 4, g)
            let scale = d * Float(sc), offset = dmin * Float(mn)
            let chunk = qs + 32 * (g / 2), shift = UInt8(4 * (g % 2))
            for k in 0..<32 {
                let low = (byte(chunk, k) >> shift) & 0x0f
                let high = (byte(qh, k) >> UInt8(g)) & 1
                let scaled = scale * Float(low | high << 4)
                out[32 * g + k] = scaled - offset
            }
        }
    }

    /// Q6_K: two halves of 128 elements; in half h, element e takes a nibble of
    /// ql[64h + e % 64] (low for e < 64) and two bits of qh[32h + e % 32]
    /// (shift 2·(e / 32)); 16 signed 8-bit scales, one per 16 elements.
    static func q6_K(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let ql = p, qh = p + 128, scales = p + 192
        let d = half(p, 208)
        for h in 0..<2 {
            for e in 0..<128 {
                let low = (byte(ql, 64 * h + e % 64) >> UInt8(4 * (e / 64))) & 0x0f
                let high = (byte(qh, 32 * h + e % 32) >> UInt8(2 * (e / 32))) & 0x03
                let q = Float(Int(low | high << 4) - 32)
                let index = 128 * h + e
                let scale = d * Float(scales.load(fromByteOffset: index / 16, as: Int8.self))
                out[index] = scale * q
            }
        }
    }
}

/// f32 → ggml blocks, matching ggml's reference quantizers (and gguf-py) bit for bit.
enum BlockEncoder {
    static func q8_0(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d == 0 ? 0 : 1 / d
        out.storeBytes(of: FloatConversions.f32ToF16(d), toByteOffset: 0, as: UInt16.self)
        for j in 0..<32 {
            let q = Int8((x[j] * id).rounded(.toNearestOrAwayFromZero))
            out.storeBytes(of: q, toByteOffset: 2 + j, as: Int8.self)
        }
    }
}

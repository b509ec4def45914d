import XCTest
@testable import SurgeonFormats

/// Hand-built blocks with values worked out from ggml's layout description. The
/// bit-exact comparison against gguf-py on every type lives in tests/interop.
final class BlockCodecTests: XCTestCase {
    private func decode(_ dtype: DType, _ bytes: [UInt8], count: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { TensorCodec.decode(dtype, from: src, into: $0) }
        }
        return out
    }

    private func half(_ x: Float) -> [UInt8] {
        let bits = Float16(x).bitPattern
        return [UInt8(bits & 0xff), UInt8(bits >> 8)]
    }

    func testQ8_0() {
        let qs: [Int8] = (0..<32).map { Int8($0) - 16 }
        let block = half(0.5) + qs.map { UInt8(bitPattern: $0) }
        XCTAssertEqual(decode(.q8_0, block, count: 32), qs.map { Float($0) * 0.5 })
    }

    func testQ4_0NibbleOrder() {
        // Byte j holds element j (low nibble) and element j + 16 (high nibble).
        let qs: [UInt8] = (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        let out = decode(.q4_0, half(2) + qs, count: 32)
        XCTAssertEqual(Array(out[0..<16]), (0..<16).map { Float($0 - 8) * 2 })
        XCTAssertEqual(Array(out[16..<32]), (0..<16).map { Float(15 - $0 - 8) * 2 })
    }

    func testQ4_1AddsMinimum() {
        let out = decode(.q4_1, half(0.25) + half(-1) + [UInt8](repeating: 0x31, count: 16), count: 32)
        XCTAssertEqual(out[0], 1 * 0.25 - 1)
        XCTAssertEqual(out[16], 3 * 0.25 - 1)
    }

    func testQ5_0HighBits() {
        // qh bit j is the fifth bit of element j.
        let qh: UInt32 = 0x8000_0001
        let block = half(1) + withUnsafeBytes(of: qh.littleEndian) { Array($0) } + [UInt8](repeating: 0, count: 16)
        let out = decode(.q5_0, block, count: 32)
        XCTAssertEqual(out[0], 0)       // 16 - 16
        XCTAssertEqual(out[1], -16)     // 0 - 16
        XCTAssertEqual(out[31], 0)
    }

    func testQ4_KScalesAndMins() {
        // d = 1, dmin = 1; group 0 scale 2 min 1, group 5 scale 3 (low nibble of byte 9 plus
        // high bits of byte 1) and min 4 (high nibble of byte 9).
        var scales = [UInt8](repeating: 0, count: 12)
        scales[0] = 2
        scales[4] = 1
        scales[9] = 0x43
        var qs = [UInt8](repeating: 0, count: 128)
        qs[0] = 0x07        // group 0 element 0 = 7
        qs[64] = 0x50       // group 5 = chunk 2, high nibble: element 0 = 5
        let out = decode(.q4_K, half(1) + half(1) + scales + qs, count: 256)
        XCTAssertEqual(out[0], 2 * 7 - 1)
        XCTAssertEqual(out[1], -1)
        XCTAssertEqual(out[160], 3 * 5 - 4)
    }

    func testQ6_KLayout() {
        var ql = [UInt8](repeating: 0, count: 128)
        var qh = [UInt8](repeating: 0, count: 64)
        var scales = [Int8](repeating: 1, count: 16)
        ql[0] = 0x21          // element 0 low nibble 1, element 64 low nibble 2
        qh[0] = 0b1100_0010   // element 0 high bits 2, element 96 high bits 3
        scales[6] = -2        // elements 96..111
        let block = ql + qh + scales.map { UInt8(bitPattern: $0) } + half(0.5)
        let out = decode(.q6_K, block, count: 256)
        XCTAssertEqual(out[0], 0.5 * Float((1 | 2 << 4) - 32))
        XCTAssertEqual(out[64], 0.5 * Float(2 - 32))
        XCTAssertEqual(out[96], 0.5 * -2 * Float((3 << 4) - 32))
    }

    func testQ8_0EncodeRoundsHalfAwayFromZero() throws {
        // amax 127 gives d = 1, so values are rounded to integers: 2.5 → 3, -2.5 → -3.
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127; x[1] = 2.5; x[2] = -2.5; x[3] = 0.49
        var out = [UInt8](repeating: 0, count: 34)
        try x.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBytes { try TensorCodec.encode(src, as: .q8_0, into: $0) }
        }
        XCTAssertEqual(Array(out[0..<2]), half(1))
        XCTAssertEqual(out[2...5].map { Int8(bitPattern: $0) }, [127, 3, -3, 0])
        XCTAssertEqual(decode(.q8_0, out, count: 32)[1], 3)
    }

    func testByteCountsRejectPartialBlocks() {
        XCTAssertNil(DType.q8_0.byteCount(elements: 40, rowLength: 40))
        XCTAssertEqual(DType.q8_0.byteCount(elements: 64, rowLength: 32), 68)
        XCTAssertEqual(DType.q6_K.byteCount(elements: 512, rowLength: 256), 420)
        XCTAssertNil(DType.f32.byteCount(elements: Int.max / 2, rowLength: 1), "overflow is reported, not wrapped")
    }
}

import XCTest
@testable import SurgeonFormats

final class FloatConversionTests: XCTestCase {
    func testF16DecodesSpecialValues() {
        XCTAssertEqual(FloatConversions.f16ToF32(0x3C00), 1.0)
        XCTAssertEqual(FloatConversions.f16ToF32(0xC000), -2.0)
        XCTAssertEqual(FloatConversions.f16ToF32(0x7BFF), 65504.0)
        XCTAssertEqual(FloatConversions.f16ToF32(0x0001), Float(sign: .plus, exponent: -24, significand: 1))
        XCTAssertEqual(FloatConversions.f16ToF32(0x7C00), .infinity)
        XCTAssertTrue(FloatConversions.f16ToF32(0x7E00).isNaN)
        XCTAssertEqual(FloatConversions.f16ToF32(0x8000).sign, .minus)
    }

    func testF32ToF16RoundsToNearestEven() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1.0).
        XCTAssertEqual(FloatConversions.f32ToF16(1 + 0x1p-11), 0x3C00)
        // 1 + 3·2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
        XCTAssertEqual(FloatConversions.f32ToF16(1 + 3 * 0x1p-11), 0x3C02)
        XCTAssertEqual(FloatConversions.f32ToF16(70000), 0x7C00, "overflow becomes infinity")
    }

    func testBF16RoundsToNearestEvenAndQuietsNaN() {
        XCTAssertEqual(FloatConversions.f32ToBF16(Float(bitPattern: 0x3F80_8000)), 0x3F80, "tie to even, down")
        XCTAssertEqual(FloatConversions.f32ToBF16(Float(bitPattern: 0x3F81_8000)), 0x3F82, "tie to even, up")
        XCTAssertEqual(FloatConversions.f32ToBF16(Float(bitPattern: 0x3F80_8001)), 0x3F81, "above the tie")
        XCTAssertEqual(FloatConversions.f32ToBF16(Float(bitPattern: 0x7F80_0001)), 0x7FC0, "signalling NaN made quiet")
        XCTAssertEqual(FloatConversions.bf16ToF32(0x4049), Float(bitPattern: 0x4049_0000))
    }

    func testFP8() {
        XCTAssertEqual(FloatConversions.f8e4m3ToF32(0x38), 1.0)
        XCTAssertEqual(FloatConversions.f8e4m3ToF32(0x7E), 448.0, "largest E4M3FN value")
        XCTAssertTrue(FloatConversions.f8e4m3ToF32(0x7F).isNaN)
        XCTAssertEqual(FloatConversions.f8e4m3ToF32(0x01), 0x1p-9, "smallest subnormal")
        XCTAssertEqual(FloatConversions.f8e4m3ToF32(0xC0), -2.0)
        XCTAssertEqual(FloatConversions.f8e5m2ToF32(0x3C), 1.0)
        XCTAssertEqual(FloatConversions.f8e5m2ToF32(0x7C), .infinity)
        XCTAssertEqual(FloatConversions.f8e5m2ToF32(0x7B), 57344.0)
    }
}

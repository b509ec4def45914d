import XCTest
@testable import SurgeonFormats

final class StrictJSONTests: XCTestCase {
    private func parse(_ s: String) throws -> JSONValue {
        try Array(s.utf8).withUnsafeBytes { try StrictJSONParser.parse($0) }
    }

    func testKeepsKeyOrderAndIntegerText() throws {
        let v = try parse(#"{"b": [1, 2.5, -3], "a": {"x": true, "y": null}}"#)
        XCTAssertEqual(v.object?.map(\.key), ["b", "a"])
        XCTAssertEqual(v["b"]?.array?[0].integer, .value(1))
        XCTAssertEqual(v["b"]?.array?[1].integer, .notInteger)
        XCTAssertEqual(v["b"]?.array?[2].integer, .value(-3))
        XCTAssertEqual(try parse("99999999999999999999").integer, .overflow)
    }

    func testRejectsDuplicateKeys() {
        XCTAssertThrowsError(try parse(#"{"a": 1, "a": 2}"#)) { error in
            XCTAssertTrue("\(error)".contains("duplicate key \"a\""))
        }
    }

    func testEscapesAndSurrogatePairs() throws {
        XCTAssertEqual(try parse(#""a\"b\\c\n\u00e9\ud83d\ude00""#).string, "a\"b\\c\né😀")
        XCTAssertThrowsError(try parse(#""\ud83d""#), "lone surrogate")
    }

    func testRejectsMalformedInput() {
        for bad in ["{", "[1,]", "{\"a\" 1}", "tru", "\"unterminated", "{} x", "01x", "\"\u{01}\""] {
            XCTAssertThrowsError(try parse(bad), bad)
        }
    }

    func testBoundsNesting() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        XCTAssertThrowsError(try parse(deep))
    }
}

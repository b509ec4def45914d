import Foundation
import TestSupport
import XCTest
@testable import SurgeonModel

/// Our hand-written split scanners against `tokenizers`' regex pre-tokenizers, for every
/// kind, on the llama.cpp vector inputs and a wikitext excerpt
/// (scripts/fixtures/make_pretokenizer_cases.py writes the expectations).
final class PreTokenizerTests: XCTestCase {
    struct Case: Decodable { let kind: String; let text: String; let pieces: [[Int]] }

    func testScannersMatchTokenizersRegexes() throws {
        let tiny = try TestPaths.requireTiny()
        let data = try Data(contentsOf: URL(fileURLWithPath: tiny + "/pretokenize.json"))
        let cases = try JSONDecoder().decode([Case].self, from: data)
        XCTAssertGreaterThan(cases.count, 150)
        var failures = 0
        for c in cases {
            let kind = try XCTUnwrap(PreTokenizerKind(ggufName: c.kind))
            let scalars = Array(c.text.unicodeScalars)
            var ours: [Range<Int>] = []
            PreTokenizerSplit.split(kind, scalars, 0..<scalars.count, into: &ours)
            let expected = c.pieces.map { $0[0]..<$0[1] }
            if ours != expected {
                failures += 1
                let i = (0..<min(ours.count, expected.count)).first { ours[$0] != expected[$0] } ?? min(ours.count, expected.count)
                func show(_ r: [Range<Int>]) -> String {
                    r[i..<min(i + 3, r.count)].map { String(String.UnicodeScalarView(scalars[$0])).debugDescription }.joined(separator: " ")
                }
                XCTFail("\(c.kind) \(c.text.prefix(40).debugDescription): piece \(i): ours \(show(ours)) vs \(show(expected))")
            }
        }
        XCTAssertEqual(failures, 0)
    }
}

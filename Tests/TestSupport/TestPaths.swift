import Foundation
import XCTest

/// Locations of the repository's fixtures, found from this source file.
public enum TestPaths {
    public static let repo: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    public static let malformed = repo + "/fixtures/malformed"
    public static let tiny = repo + "/fixtures/tiny"

    /// The generated tiny fixtures; a missing set is a failure, not a skip.
    public static func requireTiny(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard FileManager.default.fileExists(atPath: tiny + "/llama-mha/config.json") else {
            XCTFail("fixtures/tiny is missing: run scripts/fixtures/make_tiny_models.py (scripts/test.sh does)", file: file, line: line)
            throw XCTSkip("unreachable")
        }
        return tiny
    }

    public static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "ckpt-surgeon-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

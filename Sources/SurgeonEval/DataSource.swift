import CZstd
import Foundation

/// Where task files are read from: the zstd copies shipped as this module's resources, or a
/// folder with the original layout of /work/shared/data/eval (`--data DIR`).
///
/// A relative path such as `piqa/valid.jsonl` is looked up as itself, then with `.zst`,
/// then with `.bz2` (HellaSwag's original copy, unpacked by the system `bzip2`), so both
/// layouts go through the same loaders.
public struct DataSource: Sendable {
    public let root: String

    public init(folder: String) { root = folder }

    /// The copy shipped inside the tool (SwiftPM resource bundle next to the binary).
    public static func bundled() throws -> DataSource {
        guard let url = Bundle.module.url(forResource: "data", withExtension: nil) else {
            throw EvalError.missingFile("SurgeonEval resource bundle 'data'")
        }
        return DataSource(folder: url.path)
    }

    /// Text of `relative`, and the path it was read from (for error messages).
    public func text(_ relative: String) throws -> (text: String, path: String) {
        let base = root + "/" + relative
        let fm = FileManager.default
        if fm.fileExists(atPath: base) {
            return (try String(decoding: Data(contentsOf: URL(fileURLWithPath: base)), as: UTF8.self), base)
        }
        if fm.fileExists(atPath: base + ".zst") {
            let data = try Data(contentsOf: URL(fileURLWithPath: base + ".zst"))
            return (String(decoding: try Self.zstdDecode(data, path: base + ".zst"), as: UTF8.self), base + ".zst")
        }
        if fm.fileExists(atPath: base + ".bz2") {
            return (String(decoding: try Self.bunzip(base + ".bz2"), as: UTF8.self), base + ".bz2")
        }
        throw EvalError.missingFile(base)
    }

    /// Names in `relative` (a folder), with any `.zst`/`.bz2` suffix removed, sorted.
    public func list(_ relative: String) throws -> [String] {
        let dir = root + "/" + relative
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
            throw EvalError.missingFile(dir)
        }
        return Set(names.map { name in
            for suffix in [".zst", ".bz2"] where name.hasSuffix(suffix) { return String(name.dropLast(suffix.count)) }
            return name
        }).sorted()
    }

    static func zstdDecode(_ data: Data, path: String) throws -> Data {
        try data.withUnsafeBytes { (src: UnsafeRawBufferPointer) -> Data in
            let size = ZSTD_getFrameContentSize(src.baseAddress, src.count)
            // The pack script writes frames with their content size; other producers may not.
            guard size != ZSTD_CONTENTSIZE_ERROR, size != ZSTD_CONTENTSIZE_UNKNOWN else {
                throw EvalError.undecodable(file: path, reason: "not a zstd frame with a known size")
            }
            var out = Data(count: Int(size))
            let n = out.withUnsafeMutableBytes { dst in
                ZSTD_decompress(dst.baseAddress, dst.count, src.baseAddress, src.count)
            }
            guard ZSTD_isError(n) == 0, n == Int(size) else {
                throw EvalError.undecodable(file: path, reason: String(cString: ZSTD_getErrorName(n)))
            }
            return out
        }
    }

    static func bunzip(_ path: String) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bzip2", "-dc", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch {
            throw EvalError.undecodable(file: path, reason: "bzip2 not runnable: \(error)")
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw EvalError.undecodable(file: path, reason: "bzip2 exited with \(process.terminationStatus)")
        }
        return data
    }
}

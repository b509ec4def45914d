import Foundation
import SurgeonCompute
import SurgeonEmit
import SurgeonModel

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

func byteText(_ n: Int) -> String { ByteSize.format(n) }

func formatNumber(_ x: Double) -> String {
    x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(describing: x)
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal and the work
/// takes long enough to be worth watching.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let unit: String
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let enabled = isatty(2) == 1
    private var drawn = false

    /// `unit` "bytes" shows MB/s; anything else shows "done/total unit" and a time estimate.
    init(label: String, unit: String = "bytes") {
        self.label = label
        self.unit = unit
    }

    private var lastTenth = 0

    @Sendable func update(_ done: Int, _ total: Int) {
        guard total > 0 else { return }
        if !enabled {
            // Logs get a plain line per tenth of long, counted work (not byte copies).
            let tenth = done * 10 / total
            if unit != "bytes" && tenth > lastTenth {
                lastTenth = tenth
                FileHandle.standardError.write(Data("\(label): \(done)/\(total) \(unit)\n".utf8))
            }
            return
        }
        let now = Date()
        guard now.timeIntervalSince(start) > 0.5 || unit != "bytes", now.timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = now
        let fraction = Double(done) / Double(total)
        let width = 30
        let filled = Int(fraction * Double(width))
        let elapsed = max(now.timeIntervalSince(start), 1e-9)
        let detail: String
        if unit == "bytes" {
            detail = String(format: "%.0f MB/s", Double(done) / elapsed / 1e6)
        } else {
            let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
            detail = "\(done)/\(total) \(unit), eta \(Int(eta)) s"
        }
        let line = "\r\(label) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            + "] \(Int(fraction * 100))% " + detail
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// A problem with what the user asked for, found after argument parsing (so printed as
/// one line, without the usage text ArgumentParser adds to `ValidationError`s).
struct InputError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Fails before any work when $TMPDIR has less free space than the `bytes` of temporary
/// files `work` will park there (a run that fills the disk half-way wastes its hours).
func checkTemporaryFileSpace(_ bytes: Int, for work: String) throws {
    guard let free = freeSpace(near: TemporaryFile.directory), free < bytes else { return }
    throw InputError("\(work) parks up to \(ByteSize.format(bytes)) of temporary files in \(TemporaryFile.directory) "
                     + "($TMPDIR); only \(ByteSize.format(free)) is free there")
}

extension SurgeryWriter {
    /// `write` with a progress bar on stderr, timed as `--profile`'s "writing the output".
    func writeShowingProgress(to path: String, replace: Bool,
                              manifest: @escaping ([String: String], [String]) throws -> SurgeryManifest) throws {
        let bar = ProgressBar(label: "write")
        try Profile.measure(.write) { try write(to: path, replace: replace, progress: bar.update, manifest: manifest) }
        bar.finish()
    }
}

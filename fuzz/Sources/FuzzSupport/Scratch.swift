import CFuzzDriver
import Foundation

/// Where a fuzz input becomes a file: the parsers read files (they map them), so each
/// input is written to a private folder in /dev/shm (memory, no disk wear) and parsed from
/// there, through the same open and mmap path a user's file takes.
public enum Scratch {
    public static let folder: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let path = "\(base)/ckpt-surgeon-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Scratch.folder) }
        return path
    }()

    /// Writes `size` bytes at `data` to `name` in the scratch folder; returns its path.
    public static func write(_ data: UnsafePointer<UInt8>, _ size: Int, as name: String) -> String {
        let path = folder + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "cannot write \(path)")
        var done = 0
        while done < size {
            let n = Foundation.write(fd, data + done, size - done)
            precondition(n > 0, "cannot write \(path)")
            done += n
        }
        close(fd)
        return path
    }

    /// A file of the repository's fixtures (for targets that need a sound file beside the
    /// fuzzed one), copied into the scratch folder once.
    public static func fixture(_ relative: String, as name: String) -> String {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        let path = folder + "/" + name
        if !FileManager.default.fileExists(atPath: path) {
            try? FileManager.default.copyItem(atPath: repo + "/" + relative, toPath: path)
        }
        return path
    }
}

/// Runs libFuzzer on `input` with this process's arguments; returns its exit status.
public func runFuzzer(_ input: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32 {
    var argc = CommandLine.argc
    var argv = Optional(CommandLine.unsafeArgv)
    return LLVMFuzzerRunDriver(&argc, &argv, input)
}

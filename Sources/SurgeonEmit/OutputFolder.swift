import Foundation
import SurgeonFormats

/// A folder output built under a temporary name beside its destination, then renamed.
///
/// Readers never see a half-written folder: until `commit()` the files live in
/// `.NAME.tmp-PID`, which is removed again if the write fails.
public final class OutputFolder {
    public let path: String
    public let temporaryPath: String
    private let replace: Bool
    private var committed = false
    private let claim: OutputClaim
    /// Names of the files made so far, flushed together by `commit()`.
    private var names: [String] = []

    public init(path: String, replace: Bool) throws {
        let fm = FileManager.default
        self.path = path
        self.replace = replace
        try OutputFile.refuseExisting(path, replace: replace)
        claim = try OutputClaim(path: path)
        temporaryPath = OutputClaim.sibling(of: path, suffix: "tmp-\(getpid())")
        try? fm.removeItem(atPath: temporaryPath)
        guard mkdir(temporaryPath, 0o755) == 0 else {
            throw FormatError(.io, path: path, "cannot create output folder: \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        if !committed { try? FileManager.default.removeItem(atPath: temporaryPath) }
    }

    /// A new file inside the folder; call `commit()` on it when written.
    public func file(_ name: String) throws -> OutputFile {
        names.append(name)
        return try OutputFile(path: temporaryPath + "/" + name, claimed: false, reportedAs: path + "/" + name)
    }

    public func write(_ name: String, _ data: Data) throws {
        let out = try file(name)
        try data.withUnsafeBytes { try out.write($0) }
        try out.commit()
    }

    public func copy(_ name: String, from source: String) throws {
        guard let data = FilePath.contents(source) else {
            throw FormatError(.io, path: source, "cannot read")
        }
        try write(name, data)
    }

    /// Flushes the files and the folder to disk, then renames the folder into place
    /// (replacing an old one only when allowed).
    public func commit() throws {
        let fm = FileManager.default
        for name in Set(names).sorted() where FilePath.exists(temporaryPath + "/" + name) {
            try OutputFile.flushToDisk(temporaryPath + "/" + name, reportedAs: path + "/" + name)
        }
        syncDirectory(temporaryPath)
        var old: String?
        if claim.outputExistedWhenClaimed || FilePath.exists(path) {
            guard replace else { throw FormatError(.io, path: path, "already exists (pass --force to replace it)") }
            try claim.checkUnchanged()
            old = OutputClaim.sibling(of: path, suffix: "old-\(getpid())")
            try? fm.removeItem(atPath: old!)
            guard rename(path, old!) == 0 else {
                throw FormatError(.io, path: path, "cannot move the old output aside: \(String(cString: strerror(errno)))")
            }
        }
        do {
            try claim.renameWithoutReplacing(temporaryPath)
        } catch {
            if let old { rename(old, path) }
            throw error
        }
        committed = true
        if let old { try? fm.removeItem(atPath: old) }
        let dfd = open(FilePath.directory(of: path), O_RDONLY | O_DIRECTORY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
        claim.release()
    }
}

/// Free bytes on the file system holding `path` (its folder when it does not exist yet).
public func freeSpace(near path: String) -> Int? {
    var folder = path
    while !FilePath.exists(folder) && folder != "." && folder != "/" {
        folder = FilePath.directory(of: folder)
    }
    var st = statvfs()
    guard statvfs(folder, &st) == 0 else { return nil }
    return Int(st.f_bavail) * Int(st.f_frsize)
}

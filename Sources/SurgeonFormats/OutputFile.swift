#if canImport(Glibc)
import Glibc
#endif
import CPlatform

/// A file being written under a temporary name in its destination folder.
///
/// Nothing appears at `path` until `commit()` has flushed the data to disk and renamed the
/// temporary file into place; an error or a crash before that leaves only the temporary
/// file (or nothing, when the error is caught: `deinit` removes it). Every failure names the
/// destination, so "No space left on device" tells the user which output could not be written.
public final class OutputFile {
    public let path: String
    public let temporaryPath: String
    public private(set) var bytesWritten = 0
    private var fd: Int32
    private var committed = false
    private let claim: OutputClaim?
    /// The path errors name: the file's place in the finished output.
    private let reportedPath: String

    /// `claimed: false` for files inside an output folder's temporary folder, which the
    /// folder's claim covers and whose commit flushes them (`flushToDisk`) all at once;
    /// `reportedAs` is where such a file will end up.
    public init(path: String, claimed: Bool = true, reportedAs: String? = nil) throws {
        self.path = path
        reportedPath = reportedAs ?? path
        claim = claimed ? try OutputClaim(path: path) : nil
        temporaryPath = OutputClaim.sibling(of: path, suffix: "tmp-\(getpid())")
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FormatError(.io, path: reportedPath, "cannot create: \(errnoText())") }
    }

    deinit { if !committed { abandon() } }

    /// Outputs are replaced only when the user asked for it (`--force`).
    public static func refuseExisting(_ path: String, replace: Bool) throws {
        if !replace && access(path, F_OK) == 0 {
            throw FormatError(.io, path: path, "already exists (pass --force to replace it)")
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = Glibc.write(fd, p, min(left, 1 << 30))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FormatError(.io, path: reportedPath, "write failed: \(errnoText())") }
            p += n
            left -= n
            bytesWritten += n
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    public func writeZeros(_ count: Int) throws {
        guard count > 0 else { return }
        try write([UInt8](repeating: 0, count: count))
    }

    /// Copies `range` of `source` into this file. The kernel moves the bytes from the
    /// page cache without touching our address space (`copy_file_range`); where that is
    /// not possible we write from the mapping and release its pages afterwards.
    public func copy(from source: MappedFile, range: Range<Int>) throws {
        var inOffset = Int64(range.lowerBound)
        var left = range.count
        while left > 0 {
            let n = cplatform_copy_file_range(source.fileDescriptor, &inOffset, fd, left)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) { break }
            guard n > 0 else {
                if n == 0 { break }
                throw FormatError(.io, path: reportedPath, "write failed: \(errnoText())")
            }
            left -= n
            bytesWritten += n
        }
        if left > 0 {
            let rest = (range.upperBound - left)..<range.upperBound
            try write(source.bytes(rest))
            source.release(rest)
        }
    }

    /// Flushes to disk, renames into place, and flushes the folder entry. A file inside an
    /// output folder is only renamed: nothing of the folder is visible before its own
    /// commit, which flushes the files and the folder once (7 fsyncs for an HF folder
    /// instead of 11).
    public func commit() throws {
        guard let claim else {
            close(fd)
            fd = -1
            guard rename(temporaryPath, path) == 0 else {
                throw FormatError(.io, path: reportedPath, "cannot rename into place: \(errnoText())")
            }
            committed = true
            return
        }
        guard fsync(fd) == 0 else { throw FormatError(.io, path: reportedPath, "fsync failed: \(errnoText())") }
        close(fd)
        fd = -1
        try claim.moveIntoPlace(temporaryPath)
        committed = true
        syncDirectory(directoryOf(path))
        claim.release()
    }

    /// Flushes the file at `path` to disk; errors name `reportedPath`.
    public static func flushToDisk(_ path: String, reportedAs reportedPath: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0, fsync(fd) == 0 else {
            let problem = errnoText()
            if fd >= 0 { close(fd) }
            throw FormatError(.io, path: reportedPath, "fsync failed: \(problem)")
        }
        close(fd)
    }

    /// Closes and removes the temporary file.
    public func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(temporaryPath)
    }
}

public func syncDirectory(_ path: String) {
    let dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard dfd >= 0 else { return }
    fsync(dfd)
    close(dfd)
}

#if canImport(Glibc)
import Glibc
#endif
import CPlatform
import Foundation

/// The right to write one output path, held from the start of a run to its commit.
///
/// Two runs writing the same `-o` at once would both pass the "already exists" check and
/// the later rename would silently replace the earlier output. A claim is an `flock` on
/// `.NAME.lock` beside the output: the kernel drops it when its holder exits, however it
/// exits, so a killed run never leaves a claim that blocks the next one. While it holds the
/// claim, a run also removes what dead runs left for this name (`.NAME.tmp-PID`,
/// `.NAME.old-PID` of PIDs no longer alive), and at commit it refuses to replace an output
/// that some other program created after the claim was taken.
public final class OutputClaim {
    public let path: String
    public let lockPath: String
    private var fd: Int32
    /// The output's identity when claimed: nil when it did not exist.
    private let original: FileIdentity?

    public init(path: String) throws {
        self.path = path
        lockPath = Self.sibling(of: path, suffix: "lock")
        fd = try Self.acquire(lockPath, output: path)
        original = FileIdentity(path)
        Self.removeLeftoversOfDeadRuns(for: path)
    }

    deinit { release() }

    /// Whether the output existed when the claim was taken (then only `--force` runs go on).
    public var outputExistedWhenClaimed: Bool { original != nil }

    /// Refuses to go on if the output is no longer the one there when claimed: some other
    /// program created, replaced or removed it meanwhile.
    public func checkUnchanged() throws {
        guard FileIdentity(path) == original else { throw Self.createdMeanwhile(path) }
    }

    /// Renames a finished file into place: over the output only if it is still the one
    /// that was there when claimed, and never over one that appeared since.
    public func moveIntoPlace(_ temporary: String) throws {
        guard original != nil else { return try renameWithoutReplacing(temporary) }
        try checkUnchanged()
        guard rename(temporary, path) == 0 else {
            throw FormatError(.io, path: path, "cannot rename into place: \(errnoText())")
        }
    }

    /// Renames `temporary` to the output path, failing if anything is there.
    public func renameWithoutReplacing(_ temporary: String) throws {
        if cplatform_rename_noreplace(temporary, path) == 0 { return }
        switch errno {
        case EEXIST, ENOTEMPTY: throw Self.createdMeanwhile(path)
        case EINVAL, ENOSYS, EOPNOTSUPP:
            // A file system without RENAME_NOREPLACE: check, then rename (the claim keeps
            // other runs of this tool out; only other programs could slip in between).
            guard FileIdentity(path) == nil else { throw Self.createdMeanwhile(path) }
            guard rename(temporary, path) == 0 else {
                throw FormatError(.io, path: path, "cannot rename into place: \(errnoText())")
            }
        default:
            throw FormatError(.io, path: path, "cannot rename into place: \(errnoText())")
        }
    }

    /// Gives the claim up: the lock file goes while still locked, so no waiting run can
    /// lock an unlinked file and believe it holds the claim (`acquire` rechecks).
    public func release() {
        guard fd >= 0 else { return }
        unlink(lockPath)
        close(fd)
        fd = -1
    }

    /// `.NAME.SUFFIX` in the output's folder: the lock, and the temporaries a run writes
    /// (`tmp-PID`) or moves an old output to (`old-PID`).
    public static func sibling(of path: String, suffix: String) -> String {
        FilePath.directory(of: path) + "/.\(FilePath.name(of: path)).\(suffix)"
    }

    private static func createdMeanwhile(_ path: String) -> FormatError {
        FormatError(.io, path: path, "was created or changed by another program while this run was writing it; left as it is")
    }

    private static func acquire(_ lockPath: String, output: String) throws -> Int32 {
        for _ in 0..<8 {
            let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else { throw FormatError(.io, path: output, "cannot create: \(errnoText())") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let busy = errno == EWOULDBLOCK
                let holder = busy ? readPID(fd) : nil
                let message = errnoText()
                close(fd)
                guard busy else { throw FormatError(.io, path: output, "cannot lock \(lockPath): \(message)") }
                throw FormatError(.io, path: output, "another run\(holder.map { " (pid \($0))" } ?? "") is writing this output")
            }
            // The holder before us may have unlinked the file after we opened it: then our
            // lock is on a name nobody else sees; start again.
            var mine = stat(), named = stat()
            if fstat(fd, &mine) == 0, stat(lockPath, &named) == 0, mine.st_ino == named.st_ino, mine.st_dev == named.st_dev {
                writePID(fd)
                return fd
            }
            close(fd)
        }
        throw FormatError(.io, path: output, "cannot lock \(lockPath): it keeps being replaced")
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private static func writePID(_ fd: Int32) {
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// `.NAME.tmp-PID` and `.NAME.old-PID` whose PID is gone: what a killed run left.
    /// A live PID's are kept, whoever it is.
    private static func removeLeftoversOfDeadRuns(for path: String) {
        let folder = FilePath.directory(of: path)
        let prefixes = ["tmp-", "old-"].map { ".\(FilePath.name(of: path)).\($0)" }
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] {
            guard let prefix = prefixes.first(where: name.hasPrefix), let pid = Int32(name.dropFirst(prefix.count)),
                  pid != getpid(), !isAlive(pid) else { continue }
            try? fm.removeItem(atPath: folder + "/" + name)
        }
    }

    private static func isAlive(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}

/// A file's device and inode: which file a path names, not what it holds.
struct FileIdentity: Equatable {
    let device: UInt64
    let inode: UInt64

    init?(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Path arithmetic on plain strings.
///
/// Foundation's `NSString` path helpers trap on some short relative paths in
/// swift-corelibs-foundation (e.g. the folder of "o"), so we do not use them.
public enum FilePath {
    /// The folder holding `path`: "." for a bare name, "/" for a file at the root.
    public static func directory(of path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        let dir = p[..<slash]
        return dir.isEmpty ? "/" : String(dir)
    }

    /// The last component of `path`, ignoring trailing slashes.
    public static func name(of path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return String(p) }
        return String(p[p.index(after: slash)...])
    }

    /// Why `path` cannot be looked at, in words (a symlink loop is not a missing file);
    /// nil when it can. `missing` is what to say when it does not exist.
    public static func lookupProblem(_ path: String, missing: String = "no such file or folder") -> String? {
        var st = stat()
        guard stat(path, &st) != 0 else { return nil }
        switch errno {
        case ENOENT: return missing
        case ELOOP: return "too many levels of symbolic links (a symlink loop?)"
        case EACCES: return "permission denied"
        case ENOTDIR: return "a component of the path is not a folder"
        default: return errnoText()
        }
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// Whether `path` is a regular file (not a FIFO, socket or device, whose reads can
    /// block forever or never end).
    public static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The most `contents` reads: JSON side files (configs, tokenizers, manifests) are
    /// megabytes; a "config" of gigabytes is not one.
    public static let maxContentsBytes = 1 << 30

    /// The bytes of a regular file of at most `maxContentsBytes`; nil when it cannot be
    /// read, is larger, or is no regular file (a FIFO would block the read until some
    /// writer comes). Opened non-blocking and checked on the open descriptor, so the file
    /// read is the file checked. (Foundation's reader also leaks a page on empty files.)
    public static func contents(_ path: String) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= maxContentsBytes else { return nil }
        var data = Data(count: Int(st.st_size))
        let complete = data.withUnsafeMutableBytes { buffer -> Bool in
            var done = 0
            while done < buffer.count {
                let n = read(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                done += n
            }
            return true
        }
        return complete ? data : nil
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}

func directoryOf(_ path: String) -> String { FilePath.directory(of: path) }
func fileExists(_ path: String) -> Bool { FilePath.exists(path) }

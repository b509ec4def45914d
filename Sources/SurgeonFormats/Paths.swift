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

    /// The bytes of a regular file; nil when it cannot be read or is no regular file (a
    /// FIFO would block the read until some writer comes).
    public static func contents(_ path: String) -> Data? {
        isRegularFile(path) ? FileManager.default.contents(atPath: path) : nil
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}

func directoryOf(_ path: String) -> String { FilePath.directory(of: path) }
func fileExists(_ path: String) -> Bool { FilePath.exists(path) }

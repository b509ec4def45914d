#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file.
///
/// Checkpoints are never read into memory: tensors are views into this mapping, and the
/// kernel pages them in on demand. `release(_:)` hands pages back after a tensor has been
/// copied or decoded, so that streaming a 13 GB checkpoint keeps the resident set near the
/// size of one tensor.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let count: Int
    private let base: UnsafeRawPointer?
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        // Non-blocking, so that a FIFO fails the type check below instead of waiting for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw FormatError(.io, path: path, "cannot open: \(errnoText())") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let message = errnoText()
            close(fd)
            throw FormatError(.io, path: path, "cannot stat: \(message)")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw FormatError(.io, path: path, "not a regular file")
        }
        self.fd = fd
        self.count = Int(st.st_size)
        if count == 0 {
            base = nil
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            let message = errnoText()
            close(fd)
            throw FormatError(.io, path: path, "cannot map: \(message)")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
        close(fd)
    }

    /// The file descriptor, for zero-copy `copy_file_range` of unchanged tensors.
    public var fileDescriptor: Int32 { fd }

    /// The bytes in `range`, which the caller has already checked lies inside the file.
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range outside mapping")
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    public var all: UnsafeRawBufferPointer { bytes(0..<count) }

    /// Drops the pages of `range` from this process's resident set; the data stays in the
    /// page cache and is faulted back in if touched again.
    public func release(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound / page) * page
        let end = min(count, ((range.upperBound + page - 1) / page) * page)
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }

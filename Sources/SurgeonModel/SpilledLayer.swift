import Foundation
import SurgeonFormats
import CPlatform
import Synchronization

/// A decoder layer's f32 weights parked in an unlinked temporary file.
///
/// Surgery builds merged layers as f32; a prune to 21 layers holds nine of them, which on
/// a 7B model would be 7 GB of RAM. Parked here they cost disk, and each use reads back
/// the one layer (or the rows of one tensor) it needs.
public final class SpilledLayer: @unchecked Sendable {
    private let fd: Int32
    /// Where each present field's floats start in the file, and how many there are.
    private let extents: [Field: (offset: Int, count: Int)]
    private let sourceLayer: Int?
    private let byteCount: Int
    public typealias Field = LayerField

    public init(_ weights: DecoderLayerWeights) throws {
        let fd = try TemporaryFile.create()
        self.fd = fd
        var extents: [Field: (offset: Int, count: Int)] = [:]
        var offset = 0
        do {
            for field in weights.fields {
                let values = weights[field]!
                try values.withUnsafeBytes { try Self.writeAll(fd, $0, at: offset * 4) }
                extents[field] = (offset, values.count)
                offset += values.count
            }
        } catch {
            close(fd)
            throw error
        }
        self.extents = extents
        sourceLayer = weights.sourceLayer
        byteCount = offset * 4
        TemporaryFile.track(byteCount)
    }

    deinit {
        close(fd)
        TemporaryFile.track(-byteCount)
    }

    /// The number of floats stored for `field` (nil: the layer has no such tensor).
    public func count(_ field: Field) -> Int? { extents[field]?.count }

    /// Floats `range` of `field`, written to `out`.
    public func read(_ field: Field, _ range: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
        guard let extent = extents[field], range.upperBound <= extent.count else {
            preconditionFailure("\(field): \(range) outside the stored tensor")
        }
        var done = 0
        let bytes = range.count * 4, start = (extent.offset + range.lowerBound) * 4
        while done < bytes {
            let n = pread(fd, UnsafeMutableRawPointer(out) + done, bytes - done, off_t(start + done))
            guard n > 0 else { throw FormatError(.io, path: TemporaryFile.directory, "reading a merged layer back from its spill file failed: \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    /// The whole field (nil when the layer has no such tensor).
    public func values(_ field: Field) throws -> [Float]? {
        guard let count = extents[field]?.count else { return nil }
        return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try read(field, 0..<count, into: buffer.baseAddress!)
            initialized = count
        }
    }

    /// The layer, read back.
    public func load() throws -> DecoderLayerWeights {
        var w = DecoderLayerWeights()
        w.sourceLayer = sourceLayer
        for field in extents.keys { w[field] = try values(field) }
        return w
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            guard n > 0 else {
                throw FormatError(.io, path: TemporaryFile.directory,
                                  "parking a merged layer in a spill file failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}

/// Unlinked temporary files for data parked during a run (merged layers, hidden states).
public enum TemporaryFile {
    /// Where they go: $TMPDIR, or /tmp.
    public static var directory: String { ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp" }

    private static let usage = Mutex((now: 0, peak: 0))

    /// Bytes the temporary files of this process hold now, and the most they held at once.
    public static var bytesInUse: (now: Int, peak: Int) { usage.withLock { $0 } }

    /// Records that the temporary files grew (or, negative, shrank) by `delta` bytes.
    public static func track(_ delta: Int) {
        usage.withLock {
            $0.now += delta
            $0.peak = max($0.peak, $0.now)
        }
    }

    /// A new unlinked temporary file in `directory`, open for reading and writing. It has
    /// no name at any moment (O_TMPFILE) where the file system allows, so a killed run
    /// leaves nothing in $TMPDIR; elsewhere it is unlinked right after it is made.
    public static func create() throws -> Int32 {
        let dir = directory
        let unnamed = cplatform_open_tmpfile(dir)
        if unnamed >= 0 { return unnamed }
        var template = Array("\(dir)/ckpt-surgeon-spill-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw FormatError(.io, path: dir, "cannot create a spill file: \(String(cString: strerror(errno)))") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return fd
    }
}

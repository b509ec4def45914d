import CZstd
import Foundation
import SurgeonModel
import SurgeonFormats

/// The hidden states of every calibration sequence between two layers:
/// [sequences × length × width] f32.
///
/// Held as one buffer while it fits in the memory budget; above it, chunks of sequences
/// live zstd-compressed in a temporary file, and each pass reads a chunk, lets the layer
/// update it, and writes it to the next file.
public final class HiddenStates: @unchecked Sendable {
    public let sequences: Int, length: Int, width: Int
    /// Sequences per chunk of a pass (the executor's unit of work).
    public let chunkSequences: Int
    private var memory: [Float]?
    private var spill: SpillFile?

    public var byteCount: Int { sequences * length * width * 4 }
    public var isSpilled: Bool { spill != nil }

    public init(sequences: Int, length: Int, width: Int, chunkSequences: Int, memoryBudget: Int) throws {
        self.sequences = sequences
        self.length = length
        self.width = width
        self.chunkSequences = max(1, min(chunkSequences, sequences))
        if sequences * length * width * 4 <= memoryBudget {
            memory = [Float](repeating: 0, count: sequences * length * width)
        } else {
            spill = try SpillFile(chunkFloats: self.chunkSequences * length * width)
        }
    }

    /// Sequence ranges of the chunks, in order.
    public var chunks: [Range<Int>] {
        stride(from: 0, to: sequences, by: chunkSequences).map { $0..<min($0 + chunkSequences, sequences) }
    }

    /// One read-modify-write pass over all chunks in order: `body` gets each chunk's
    /// sequence range and its [chunk × length × width] floats to update in place.
    public func pass(_ body: (Range<Int>, UnsafeMutablePointer<Float>) throws -> Void) throws {
        let perSequence = length * width
        if memory != nil {
            try memory!.withUnsafeMutableBufferPointer { all in
                for chunk in chunks { try body(chunk, all.baseAddress! + chunk.lowerBound * perSequence) }
            }
            return
        }
        try spill!.pass(chunkCount: chunks.count) { index, buffer in
            try body(chunks[index], buffer)
        }
    }

    /// Read-only access to chunk `index` (the sequences `chunks[index]`) outside a pass:
    /// healing reads the teacher's states chunk by chunk while the student's pass runs.
    public func withChunk<R>(_ index: Int, _ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        if let memory {
            return try memory.withUnsafeBufferPointer { try body($0.baseAddress! + chunks[index].lowerBound * length * width) }
        }
        return try spill!.withChunk(index, body)
    }

    private init(copying other: HiddenStates) throws {
        sequences = other.sequences
        length = other.length
        width = other.width
        chunkSequences = other.chunkSequences
        memory = other.memory
        spill = try other.spill?.clone()
    }

    /// A copy (for caching the state at a layer boundary); spilled states stay spilled.
    public func copy() throws -> HiddenStates { try HiddenStates(copying: self) }

    /// A copy held in memory when it fits `memoryBudget`, spilled to disk otherwise
    /// (0 always spills: boundary caches live on disk).
    public func copy(memoryBudget: Int) throws -> HiddenStates {
        let fits = byteCount <= memoryBudget
        if fits == (memory != nil) { return try copy() }
        let target = try HiddenStates(sequences: sequences, length: length, width: width,
                                      chunkSequences: chunkSequences, memoryBudget: memoryBudget)
        if let memory {
            // In memory → spilled: one pass over the target, filled from our buffer.
            let perSequence = length * width
            try memory.withUnsafeBufferPointer { all in
                try target.pass { chunk, buffer in
                    buffer.update(from: all.baseAddress! + chunk.lowerBound * perSequence, count: chunk.count * perSequence)
                }
            }
        } else {
            // Spilled → memory: one pass over ours (rewrites our file unchanged).
            var filled: [Float] = []
            filled.reserveCapacity(sequences * length * width)
            try pass { chunk, buffer in filled += UnsafeBufferPointer(start: buffer, count: chunk.count * length * width) }
            target.memory = filled
        }
        return target
    }

    /// The states of `sequence`, copied out ([length × width]).
    public func read(sequence: Int) throws -> [Float] {
        var out: [Float] = []
        try pass { chunk, buffer in
            if chunk.contains(sequence) {
                let start = buffer + (sequence - chunk.lowerBound) * length * width
                out = Array(UnsafeBufferPointer(start: start, count: length * width))
            }
        }
        return out
    }
}

/// zstd-compressed chunks in a pair of unlinked temporary files: each pass reads every
/// chunk from one and writes it to the other, then they swap.
///
/// Working buffers exist only during a pass, so a boundary cache of many spilled states
/// costs disk, not memory.
final class SpillFile {
    private let chunkFloats: Int
    private var current: (fd: Int32, offsets: [(Int, Int)])
    private var next: Int32

    init(chunkFloats: Int) throws {
        self.chunkFloats = chunkFloats
        current = (try TemporaryFile.create(), [])
        next = try TemporaryFile.create()
    }

    /// Bytes in the two files (for `TemporaryFile.bytesInUse`).
    private var sizes = (current: 0, next: 0)

    deinit {
        close(current.fd)
        close(next)
        TemporaryFile.track(-(sizes.current + sizes.next))
    }

    func pass(chunkCount: Int, _ body: (Int, UnsafeMutablePointer<Float>) throws -> Void) throws {
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: chunkFloats)
        let bound = ZSTD_compressBound(chunkFloats * 4)
        let compressed = UnsafeMutableRawPointer.allocate(byteCount: bound, alignment: 16)
        defer {
            buffer.deallocate()
            compressed.deallocate()
        }
        var written: [(Int, Int)] = []
        var offset = 0
        guard ftruncate(next, 0) == 0 else { throw FormatError(.io, path: "spill file", "truncate failed") }
        TemporaryFile.track(-sizes.next)
        sizes.next = 0
        for i in 0..<chunkCount {
            if i < current.offsets.count {
                try readChunk(current.offsets[i], into: buffer, scratch: compressed)
            } else {
                buffer.initialize(repeating: 0, count: chunkFloats)
            }
            try body(i, buffer)
            let size = try Profile.measure(.spill) {
                // A fast negative level: f32 states hardly compress at any level (a few
                // percent), and level 1 made spill I/O a tenth of a SmolLM2 prune.
                let size = ZSTD_compress(compressed, bound, buffer, chunkFloats * 4, -5)
                guard ZSTD_isError(size) == 0 else {
                    throw FormatError(.io, path: "spill file", "zstd: \(String(cString: ZSTD_getErrorName(size)))")
                }
                guard pwrite(next, compressed, size, off_t(offset)) == size else {
                    throw FormatError(.io, path: "spill file", "write failed: \(String(cString: strerror(errno)))")
                }
                TemporaryFile.track(size)
                sizes.next += size
                return size
            }
            written.append((offset, size))
            offset += size
        }
        let old = current.fd
        current = (next, written)
        next = old
        sizes = (sizes.next, sizes.current)
    }

    /// Chunk `index` decoded into a temporary buffer (zeros if it was never written).
    func withChunk<R>(_ index: Int, _ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: chunkFloats)
        defer { buffer.deallocate() }
        if index < current.offsets.count {
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: ZSTD_compressBound(chunkFloats * 4), alignment: 16)
            defer { scratch.deallocate() }
            try readChunk(current.offsets[index], into: buffer, scratch: scratch)
        } else {
            buffer.initialize(repeating: 0, count: chunkFloats)
        }
        return try body(buffer)
    }

    /// An independent copy of the current chunks.
    func clone() throws -> SpillFile {
        let started = Profile.now()
        defer { Profile.add(.spill, since: started) }
        let copy = try SpillFile(chunkFloats: chunkFloats)
        let total = current.offsets.last.map { $0.0 + $0.1 } ?? 0
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { bytes.deallocate() }
        var offset = 0
        while offset < total {
            let n = min(1 << 20, total - offset)
            guard pread(current.fd, bytes, n, off_t(offset)) == n, pwrite(copy.current.fd, bytes, n, off_t(offset)) == n else {
                throw FormatError(.io, path: "spill file", "copy failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        copy.current.offsets = current.offsets
        copy.sizes.current = total
        TemporaryFile.track(total)
        return copy
    }

    private func readChunk(_ location: (offset: Int, size: Int), into buffer: UnsafeMutablePointer<Float>,
                           scratch: UnsafeMutableRawPointer) throws {
        let started = Profile.now()
        defer { Profile.add(.spill, since: started) }
        guard pread(current.fd, scratch, location.size, off_t(location.offset)) == location.size else {
            throw FormatError(.io, path: "spill file", "read failed")
        }
        let n = ZSTD_decompress(buffer, chunkFloats * 4, scratch, location.size)
        guard ZSTD_isError(n) == 0, n == chunkFloats * 4 else {
            throw FormatError(.io, path: "spill file", "corrupt chunk")
        }
    }
}

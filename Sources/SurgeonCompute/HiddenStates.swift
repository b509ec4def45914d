import CPlatform
import Foundation
import SurgeonFormats
import SurgeonModel
import Synchronization

/// The hidden states of every calibration sequence between two layers:
/// [sequences × length × width] f32.
///
/// Held as one buffer while it fits in the memory budget; above it, chunks of sequences
/// live in a temporary file, and each pass reads a chunk, lets the layer update it, and
/// writes it to the next file.
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
            spill = SpillFile(chunkFloats: self.chunkSequences * length * width)
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
            // Spilled → memory: each chunk read, our file left as it is.
            var filled: [Float] = []
            filled.reserveCapacity(sequences * length * width)
            for (index, chunk) in chunks.enumerated() {
                try withChunk(index) { filled += UnsafeBufferPointer(start: $0, count: chunk.count * length * width) }
            }
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

/// Chunks of f32 in an unlinked temporary file, at fixed offsets: each pass reads every
/// chunk from it and writes it to another file, which then replaces it.
///
/// The floats go to disk as they are. Hidden states hardly compress (a few percent at
/// zstd's fastest levels), and at 10 × 2048 tokens on SmolLM2 compressing them made spill
/// I/O 13% of a prune. Writing into a file's existing pages is a copy (3.8 GB/s here);
/// new pages must first be allocated and zeroed by the kernel (0.5 GB/s), so the files a
/// spill lets go of are kept for the next one (`pool`) and overwritten in place. Working
/// buffers exist only during a pass, so a boundary cache of many spilled states costs
/// disk, not memory.
final class SpillFile {
    private struct File {
        let fd: Int32
        var bytes = 0
    }

    private let chunkFloats: Int
    private var chunkBytes: Int { chunkFloats * 4 }
    /// The file holding the current chunks, and how many it holds (none before the first pass).
    private var current: File?, chunks = 0

    /// Files no spill holds now, their bytes still counted by `TemporaryFile.bytesInUse`:
    /// never more than were in use at once, and at most `poolLimit` of them.
    private static let pool = Mutex<[File]>([])
    private static let poolLimit = 64

    init(chunkFloats: Int) {
        self.chunkFloats = chunkFloats
    }

    deinit {
        if let current { Self.release(current) }
    }

    /// The pooled file with the most pages to overwrite, or a new one.
    private static func take() throws -> File {
        let pooled = pool.withLock { pool -> File? in
            guard let best = pool.indices.max(by: { pool[$0].bytes < pool[$1].bytes }) else { return nil }
            return pool.remove(at: best)
        }
        return try pooled ?? File(fd: TemporaryFile.create())
    }

    private static func release(_ file: File) {
        let closing = pool.withLock { pool -> File? in
            pool.append(file)
            guard pool.count > poolLimit, let smallest = pool.indices.min(by: { pool[$0].bytes < pool[$1].bytes }) else {
                return nil
            }
            return pool.remove(at: smallest)
        }
        if let closing {
            close(closing.fd)
            TemporaryFile.track(-closing.bytes)
        }
    }

    func pass(chunkCount: Int, _ body: (Int, UnsafeMutablePointer<Float>) throws -> Void) throws {
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: chunkFloats)
        defer { buffer.deallocate() }
        var target = try Self.take()
        do {
            for i in 0..<chunkCount {
                try readChunk(i, into: buffer)
                try body(i, buffer)
                try Profile.measure(.spill) { try write(buffer, at: i * chunkBytes, to: &target) }
            }
            try resize(&target, to: chunkCount * chunkBytes)
        } catch {
            Self.release(target)
            throw error
        }
        if let current { Self.release(current) }
        (current, chunks) = (target, chunkCount)
    }

    /// Chunk `index` read into a temporary buffer (zeros if it was never written).
    func withChunk<R>(_ index: Int, _ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: chunkFloats)
        defer { buffer.deallocate() }
        try readChunk(index, into: buffer)
        return try body(buffer)
    }

    /// An independent copy of the current chunks, copied inside the kernel where the file
    /// system allows (`copy_file_range`), else through a buffer.
    func clone() throws -> SpillFile {
        let started = Profile.now()
        defer { Profile.add(.spill, since: started) }
        let copy = SpillFile(chunkFloats: chunkFloats)
        guard let current else { return copy }
        var target = try Self.take()
        do {
            let total = chunks * chunkBytes
            var offset: Int64 = 0
            lseek(target.fd, 0, SEEK_SET)
            copying: while offset < total {
                let n = cplatform_copy_file_range(current.fd, &offset, target.fd, total - Int(offset))
                if n > 0 || (n < 0 && errno == EINTR) { continue }
                guard n < 0 && [EXDEV, ENOSYS, EINVAL, EOPNOTSUPP].contains(errno) else {
                    throw FormatError(.io, path: "spill file", "copy failed: \(String(cString: strerror(errno)))")
                }
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: chunkFloats)
                defer { buffer.deallocate() }
                for index in 0..<chunks {
                    try readChunk(index, into: buffer)
                    try write(buffer, at: index * chunkBytes, to: &target)
                }
                break copying
            }
            TemporaryFile.track(max(0, total - target.bytes))
            target.bytes = max(target.bytes, total)
            try resize(&target, to: total)
        } catch {
            Self.release(target)
            throw error
        }
        (copy.current, copy.chunks) = (target, chunks)
        return copy
    }

    private func readChunk(_ index: Int, into buffer: UnsafeMutablePointer<Float>) throws {
        guard let current, index < chunks else { return buffer.initialize(repeating: 0, count: chunkFloats) }
        let started = Profile.now()
        defer { Profile.add(.spill, since: started) }
        guard pread(current.fd, buffer, chunkBytes, off_t(index * chunkBytes)) == chunkBytes else {
            throw FormatError(.io, path: "spill file", "read failed: \(String(cString: strerror(errno)))")
        }
    }

    private func write(_ buffer: UnsafePointer<Float>, at offset: Int, to file: inout File) throws {
        guard pwrite(file.fd, buffer, chunkBytes, off_t(offset)) == chunkBytes else {
            throw FormatError(.io, path: "spill file", "write failed: \(String(cString: strerror(errno)))")
        }
        TemporaryFile.track(max(0, offset + chunkBytes - file.bytes))
        file.bytes = max(file.bytes, offset + chunkBytes)
    }

    /// Drops what lies past `bytes` (the pages before it are kept for overwriting).
    private func resize(_ file: inout File, to bytes: Int) throws {
        guard file.bytes > bytes else { return }
        guard ftruncate(file.fd, off_t(bytes)) == 0 else { throw FormatError(.io, path: "spill file", "truncate failed") }
        TemporaryFile.track(bytes - file.bytes)
        file.bytes = bytes
    }
}

import Foundation
import SurgeonFormats

extension DecoderLayerWeights {
    /// The layer's tensors by field, so that a layer can be stored and rebuilt field by field.
    public enum Field: CaseIterable, Sendable {
        case inputNorm, q, k, v, o, qBias, kBias, vBias, oBias, qNorm, kNorm
        case postAttentionNorm, gate, up, down, gateBias, upBias, downBias
    }

    public subscript(field: Field) -> [Float]? {
        switch field {
        case .inputNorm: inputNorm
        case .q: q
        case .k: k
        case .v: v
        case .o: o
        case .qBias: qBias
        case .kBias: kBias
        case .vBias: vBias
        case .oBias: oBias
        case .qNorm: qNorm
        case .kNorm: kNorm
        case .postAttentionNorm: postAttentionNorm
        case .gate: gate
        case .up: up
        case .down: down
        case .gateBias: gateBias
        case .upBias: upBias
        case .downBias: downBias
        }
    }
}

/// A decoder layer's f32 weights parked in an unlinked temporary file.
///
/// Surgery builds merged layers as f32; a prune to 21 layers holds nine of them, which on
/// a 7B model would be 7 GB of RAM. Parked here they cost disk, and each use reads back
/// the one layer (or the rows of one tensor) it needs.
public final class SpilledLayer: @unchecked Sendable {
    private let fd: Int32
    /// Where each present field's floats start in the file, and how many there are.
    private let extents: [Field: (offset: Int, count: Int)]
    public typealias Field = DecoderLayerWeights.Field

    public init(_ weights: DecoderLayerWeights) throws {
        let fd = try SpillFile.temporaryFile()
        self.fd = fd
        var extents: [Field: (offset: Int, count: Int)] = [:]
        var offset = 0
        do {
            for field in Field.allCases {
                guard let values = weights[field] else { continue }
                try values.withUnsafeBytes { try Self.writeAll(fd, $0, at: offset * 4) }
                extents[field] = (offset, values.count)
                offset += values.count
            }
        } catch {
            close(fd)
            throw error
        }
        self.extents = extents
    }

    deinit { close(fd) }

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
            guard n > 0 else { throw FormatError(.io, path: SpillFile.directory, "reading a merged layer back from its spill file failed: \(String(cString: strerror(errno)))") }
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
        func required(_ f: Field) throws -> [Float] { try values(f)! }
        return DecoderLayerWeights(
            inputNorm: try required(.inputNorm), q: try required(.q), k: try required(.k), v: try required(.v),
            o: try required(.o), qBias: try values(.qBias), kBias: try values(.kBias), vBias: try values(.vBias),
            oBias: try values(.oBias), qNorm: try values(.qNorm), kNorm: try values(.kNorm),
            postAttentionNorm: try required(.postAttentionNorm), gate: try required(.gate), up: try required(.up),
            down: try required(.down), gateBias: try values(.gateBias), upBias: try values(.upBias),
            downBias: try values(.downBias))
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            guard n > 0 else {
                throw FormatError(.io, path: SpillFile.directory,
                                  "parking a merged layer in a spill file failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}

/// Lays out a GGUF v3 file: header, metadata, tensor infos, padding, then each tensor's
/// data at an offset aligned to `alignment`.
///
/// As with safetensors, the layout depends only on sizes, so data is streamed afterwards
/// in `tensors` order, each tensor preceded by `padding(before:)` zero bytes.
public struct GGUFLayout: Sendable {
    /// Shapes are outermost-first, as everywhere in this library; reversed on disk.
    public typealias Entry = TensorEntry

    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [Entry]
    public let alignment: Int
    /// Offsets relative to the data section.
    public let offsets: [Int]

    public init(metadata: [(key: String, value: GGUFValue)], tensors: [Entry]) {
        self.metadata = metadata
        self.tensors = tensors
        let a = metadata.first { $0.key == "general.alignment" }?.value.int ?? GGUFFile.defaultAlignment
        alignment = a
        var offsets: [Int] = []
        var offset = 0
        for t in tensors {
            offsets.append(offset)
            offset = alignUp(offset + t.byteCount, a)
        }
        self.offsets = offsets
    }

    /// Everything before the data section, including the padding after the tensor infos.
    public func headerBytes() -> [UInt8] {
        var out = ByteSink()
        out.u32(GGUFFile.magic)
        out.u32(3)
        out.u64(UInt64(tensors.count))
        out.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            out.string(key)
            out.u32(value.type.rawValue)
            out.value(value)
        }
        for (t, offset) in zip(tensors, offsets) {
            out.string(t.name)
            out.u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { out.u64(UInt64(d)) }
            out.u32(t.dtype.ggmlType!)
            out.u64(UInt64(offset))
        }
        out.bytes.append(contentsOf: [UInt8](repeating: 0, count: alignUp(out.bytes.count, alignment) - out.bytes.count))
        return out.bytes
    }

    /// Zero bytes to write before tensor `index` (alignment padding after the previous one).
    public func padding(before index: Int) -> Int {
        index == 0 ? 0 : offsets[index] - (offsets[index - 1] + tensors[index - 1].byteCount)
    }

    /// Total file size, for progress and free-space checks.
    public var fileSize: Int {
        headerBytes().count + (tensors.last.map { offsets.last! + $0.byteCount } ?? 0)
    }
}

func alignUp(_ n: Int, _ a: Int) -> Int { (n + a - 1) / a * a }

/// Little-endian serialisation of GGUF fields.
private struct ByteSink {
    var bytes: [UInt8] = []

    mutating func int<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func u32(_ v: UInt32) { int(v) }
    mutating func u64(_ v: UInt64) { int(v) }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    mutating func value(_ v: GGUFValue) {
        switch v {
        case .uint8(let x): int(x)
        case .int8(let x): int(x)
        case .uint16(let x): int(x)
        case .int16(let x): int(x)
        case .uint32(let x): int(x)
        case .int32(let x): int(x)
        case .float32(let x): int(x.bitPattern)
        case .bool(let x): int(UInt8(x ? 1 : 0))
        case .string(let s): string(s)
        case .uint64(let x): int(x)
        case .int64(let x): int(x)
        case .float64(let x): int(x.bitPattern)
        case .array(let type, let items):
            u32(type.rawValue)
            u64(UInt64(items.count))
            for item in items { value(item) }
        }
    }
}

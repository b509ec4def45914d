/// GGUF metadata value types (gguf.md `gguf_metadata_value_type`).
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5
    case float32 = 6, bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Smallest encoded size of one value, used to refuse counts a file cannot hold.
    var minimumSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }
}

/// A typed GGUF metadata value.
public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .array: .array
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        }
    }

    /// Any integer type as Int (nil for other types or values that do not fit).
    public var int: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(exactly: v)
        default: nil
        }
    }

    /// Any number as Double.
    public var double: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: int.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var array: [GGUFValue]? { if case .array(_, let a) = self { a } else { nil } }
}

/// Reads little-endian fields from a byte range, throwing instead of reading past its end.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset = 0

    var remaining: Int { bytes.count - offset }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        guard remaining >= MemoryLayout<T>.size else { throw FormatError.truncated(path, what()) }
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    /// A length-prefixed string. Names (keys, tensor names) must be valid UTF-8 without
    /// control characters: a name that does not read back as itself cannot be written back
    /// or looked up. Values are decoded leniently, as gguf-py and llama.cpp take their bytes.
    mutating func readString(_ what: @autoclosure () -> String, isName: Bool = false) throws -> String {
        let at = offset
        let length = try read(UInt64.self, what())
        guard length <= UInt64(remaining) else {
            throw FormatError(.truncated, path: path,
                              "truncated: string of length \(length) at byte \(at) (\(what())) runs past the end of the file")
        }
        let n = Int(length)
        let raw = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
        offset += n
        guard isName else { return String(decoding: raw, as: UTF8.self) }
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw FormatError(.invalidHeader, path: path, "\(what()) at byte \(at) is not valid UTF-8")
        }
        guard !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw FormatError(.invalidHeader, path: path, "\(what()) at byte \(at) contains control characters")
        }
        return s
    }
}

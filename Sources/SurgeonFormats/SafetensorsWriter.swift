/// Lays out and writes a safetensors file whose tensors are supplied one at a time.
///
/// The header is computed from sizes alone, so tensor data can be streamed straight from
/// a mapping or an encoder without holding more than one tensor.
public struct SafetensorsLayout: Sendable {
    public typealias Entry = TensorEntry

    public let entries: [Entry]
    public let metadata: [(key: String, value: String)]

    public init(entries: [Entry], metadata: [(key: String, value: String)] = [("format", "pt")]) {
        self.entries = entries
        self.metadata = metadata
    }

    public var dataSize: Int { entries.reduce(0) { $0 + $1.byteCount } }

    /// The 8-byte length plus the JSON header, padded with spaces to a multiple of 8 so
    /// that the data section starts aligned.
    public func headerBytes() -> [UInt8] {
        var json = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.map { "\(jsonQuote($0.key)):\(jsonQuote($0.value))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(fields)}")
        }
        var offset = 0
        for e in entries {
            precondition(e.dtype.safetensorsName != nil, "\(e.dtype) cannot be stored in safetensors")
            let shape = e.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonQuote(e.name)):{\"dtype\":\"\(e.dtype.safetensorsName!)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + e.byteCount)]}")
            offset += e.byteCount
        }
        json += parts.joined(separator: ",") + "}"
        var header = Array(json.utf8)
        while (8 + header.count) % 8 != 0 { header.append(0x20) }
        var out = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        out.append(contentsOf: header)
        return out
    }
}

/// A tensor to be laid out in a file: name, dtype and (outermost-first) shape.
public struct TensorEntry: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]

    public init(name: String, dtype: DType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    public var byteCount: Int {
        dtype.byteCount(elements: shape.reduce(1, *), rowLength: shape.last ?? 1) ?? 0
    }
}

/// JSON string literal with the escapes JSON requires.
public func jsonQuote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// An element type of tensor data, covering both safetensors dtypes and ggml types.
///
/// Block-quantized types store `blockSize` elements in `blockBytes` bytes; plain types
/// have a block of one element.
public enum DType: String, CaseIterable, Sendable, Codable {
    case f64, f32, f16, bf16
    case i64, i32, i16, i8, u8, bool
    case f8e4m3, f8e5m2
    case q8_0, q4_0, q4_1, q5_0, q5_1
    case q4_K, q5_K, q6_K

    /// Elements per block (1 for plain types).
    public var blockSize: Int {
        switch self {
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1: 32
        case .q4_K, .q5_K, .q6_K: 256
        default: 1
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: 1
        case .q8_0: 2 + 32
        case .q4_0: 2 + 16
        case .q4_1: 2 + 2 + 16
        case .q5_0: 2 + 4 + 16
        case .q5_1: 2 + 2 + 4 + 16
        case .q4_K: 2 + 2 + 12 + 128
        case .q5_K: 2 + 2 + 12 + 32 + 128
        case .q6_K: 128 + 64 + 16 + 2
        }
    }

    public var isQuantized: Bool { blockSize > 1 }

    /// Whether values of this type can be turned into f32 (integers and bools are data,
    /// not weights, and are only ever copied).
    public var isFloatingPoint: Bool {
        switch self {
        case .i64, .i32, .i16, .i8, .u8, .bool: false
        default: true
        }
    }

    /// Bytes needed for `elements` elements laid out as rows of `rowLength`; nil when a row
    /// is not a whole number of blocks or the size overflows.
    public func byteCount(elements: Int, rowLength: Int) -> Int? {
        guard rowLength > 0 || elements == 0 else { return nil }
        if blockSize > 1 && rowLength % blockSize != 0 { return nil }
        let (blocks, r) = elements.quotientAndRemainder(dividingBy: blockSize)
        guard r == 0 else { return nil }
        let (n, overflow) = blocks.multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : n
    }

    // MARK: safetensors names

    public init?(safetensorsName: String) {
        switch safetensorsName {
        case "F64": self = .f64
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        case "I64": self = .i64
        case "I32": self = .i32
        case "I16": self = .i16
        case "I8": self = .i8
        case "U8": self = .u8
        case "BOOL": self = .bool
        case "F8_E4M3": self = .f8e4m3
        case "F8_E5M2": self = .f8e5m2
        default: return nil
        }
    }

    /// The safetensors name, or nil for ggml block types, which safetensors cannot hold.
    public var safetensorsName: String? {
        switch self {
        case .f64: "F64"
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .i64: "I64"
        case .i32: "I32"
        case .i16: "I16"
        case .i8: "I8"
        case .u8: "U8"
        case .bool: "BOOL"
        case .f8e4m3: "F8_E4M3"
        case .f8e5m2: "F8_E5M2"
        default: nil
        }
    }

    // MARK: ggml type ids (ggml.h `enum ggml_type`)

    public init?(ggmlType: UInt32) {
        switch ggmlType {
        case 0: self = .f32
        case 1: self = .f16
        case 2: self = .q4_0
        case 3: self = .q4_1
        case 6: self = .q5_0
        case 7: self = .q5_1
        case 8: self = .q8_0
        case 12: self = .q4_K
        case 13: self = .q5_K
        case 14: self = .q6_K
        case 24: self = .i8
        case 25: self = .i16
        case 26: self = .i32
        case 27: self = .i64
        case 28: self = .f64
        case 30: self = .bf16
        default: return nil
        }
    }

    public var ggmlType: UInt32? {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q5_0: 6
        case .q5_1: 7
        case .q8_0: 8
        case .q4_K: 12
        case .q5_K: 13
        case .q6_K: 14
        case .i8: 24
        case .i16: 25
        case .i32: 26
        case .i64: 27
        case .f64: 28
        case .bf16: 30
        default: nil
        }
    }

    /// The name ggml and gguf-py print (`Q4_K`, `BF16`, …).
    public var ggmlName: String { rawValue.uppercased() }

    /// Parses a user-facing name such as `bf16`, `Q8_0`, `q4_k`.
    public init?(userName: String) {
        let lower = userName.lowercased()
        if let match = DType.allCases.first(where: { $0.rawValue.lowercased() == lower }) {
            self = match
        } else if let st = DType(safetensorsName: userName.uppercased()) {
            self = st
        } else {
            return nil
        }
    }
}

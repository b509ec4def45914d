/// One tensor stored in a file: its name, type, shape and where its bytes lie.
///
/// `shape` is outermost-first (row-major, as numpy and PyTorch write it) for every format;
/// GGUF's innermost-first dims are reversed when the file is read.
public struct TensorInfo: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Absolute byte offsets in `file`.
    public let dataRange: Range<Int>
    public let file: MappedFile

    public init(name: String, dtype: DType, shape: [Int], dataRange: Range<Int>, file: MappedFile) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataRange = dataRange
        self.file = file
    }

    public var elementCount: Int { shape.reduce(1, *) }
    /// Elements in one row (the innermost dimension); quantized rows are whole blocks.
    public var rowLength: Int { shape.last ?? 1 }
    public var byteCount: Int { dataRange.count }
    public var bytes: UnsafeRawBufferPointer { file.bytes(dataRange) }
}

/// Product of `dims`, or nil when it overflows Int or a dim is negative.
public func checkedElementCount(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        n = p
    }
    return n
}

/// Decodes a whole tensor to f32. Use for small tensors or one at a time: the result is
/// `elementCount` floats in memory.
public func decodeF32(_ tensor: TensorInfo) -> [Float] {
    let n = tensor.elementCount
    return [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
        TensorCodec.decode(tensor.dtype, from: tensor.bytes, into: buffer)
        initialized = n
    }
}

extension TensorInfo {
    /// XXH3-64 of the stored bytes as manifests write it (16 hex digits). The bytes are
    /// read in 8 MiB pieces whose pages go back to the kernel as it goes, so hashing a
    /// large tensor (a 113 MB embedding) does not keep it resident.
    public func xxh3Hex() -> String {
        var hasher = XXH3Hasher()
        var at = dataRange.lowerBound
        while at < dataRange.upperBound {
            let end = min(at + (8 << 20), dataRange.upperBound)
            hasher.update(file.bytes(at..<end))
            file.release(at..<end)
            at = end
        }
        return XXH3Hasher.hex(hasher.digest())
    }
}

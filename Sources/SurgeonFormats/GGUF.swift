/// A GGUF file (versions 2 and 3, little-endian): header, typed metadata, tensor infos,
/// then tensor data aligned to `general.alignment`.
///
/// Opening validates every count, string, dimension, type and offset against the file,
/// before allocating anything sized by the file's own claims.
public struct GGUFFile: Sendable {
    public static let magic: UInt32 = 0x4655_4747 // "GGUF" read as little-endian u32
    public static let defaultAlignment = 32
    public static let maxDimensions = 4

    public let file: MappedFile
    public let version: UInt32
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [TensorInfo]
    public let alignment: Int
    public let dataStart: Int

    public var path: String { file.path }

    public subscript(key: String) -> GGUFValue? {
        metadata.first { $0.key == key }?.value
    }

    public func tensor(named name: String) -> TensorInfo? { tensors.first { $0.name == name } }

    public init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        var cursor = ByteCursor(bytes: file.all, path: path)
        guard file.count >= 4 else { throw FormatError.truncated(path, "the magic number (file is \(file.count) bytes)") }
        guard try cursor.read(UInt32.self, "the magic number") == Self.magic else {
            throw FormatError(.invalidHeader, path: path, "bad magic: not a GGUF file")
        }
        version = try cursor.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw FormatError(.unsupported, path: path, "unsupported GGUF version \(version) (versions 2 and 3 are read)")
        }
        let tensorCount = try cursor.read(UInt64.self, "the tensor count")
        let kvCount = try cursor.read(UInt64.self, "the metadata count")
        // A tensor info takes at least 24 bytes and a key/value pair at least 13.
        guard tensorCount <= UInt64(cursor.remaining / 24) else {
            throw FormatError(.invalidHeader, path: path, "tensor count \(tensorCount) is impossible in a file of \(file.count) bytes")
        }
        guard kvCount <= UInt64(cursor.remaining / 13) else {
            throw FormatError(.invalidHeader, path: path, "metadata count \(kvCount) is impossible in a file of \(file.count) bytes")
        }
        metadata = try Self.readMetadata(&cursor, count: Int(kvCount))
        alignment = try Self.alignment(of: metadata, path: path)
        let infos = try Self.readTensorInfos(&cursor, count: Int(tensorCount))
        let (aligned, overflow) = cursor.offset.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw FormatError(.invalidHeader, path: path, "header size overflows") }
        let dataStart = aligned / alignment * alignment
        let alignment = alignment
        tensors = try infos.map { try Self.locate($0, dataStart: dataStart, alignment: alignment, file: file) }
        try Self.checkNoOverlap(tensors, path: path)
        self.dataStart = dataStart
    }

    // MARK: parsing steps

    private static func readMetadata(_ cursor: inout ByteCursor, count: Int) throws -> [(key: String, value: GGUFValue)] {
        var metadata: [(key: String, value: GGUFValue)] = []
        var seen = Set<String>()
        for index in 0..<count {
            let key = try cursor.readString("metadata key \(index)", isName: true)
            guard seen.insert(key).inserted else {
                throw FormatError(.invalidHeader, path: cursor.path, "duplicate metadata key '\(key)'")
            }
            let rawType = try cursor.read(UInt32.self, "the type of '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw FormatError(.invalidHeader, path: cursor.path, "unknown value type \(rawType) for key '\(key)'")
            }
            metadata.append((key, try readValue(&cursor, type: type, key: key, depth: 0)))
        }
        return metadata
    }

    private static func readValue(_ c: inout ByteCursor, type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        let what = "the value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try c.read(UInt8.self, what))
        case .int8: return .int8(try c.read(Int8.self, what))
        case .uint16: return .uint16(try c.read(UInt16.self, what))
        case .int16: return .int16(try c.read(Int16.self, what))
        case .uint32: return .uint32(try c.read(UInt32.self, what))
        case .int32: return .int32(try c.read(Int32.self, what))
        case .float32: return .float32(Float(bitPattern: try c.read(UInt32.self, what)))
        case .bool:
            let b = try c.read(UInt8.self, what)
            guard b <= 1 else { throw FormatError(.invalidHeader, path: c.path, "'\(key)': bool value \(b) is not 0 or 1") }
            return .bool(b == 1)
        case .string: return .string(try c.readString(what))
        case .uint64: return .uint64(try c.read(UInt64.self, what))
        case .int64: return .int64(try c.read(Int64.self, what))
        case .float64: return .float64(Double(bitPattern: try c.read(UInt64.self, what)))
        case .array:
            guard depth < 4 else { throw FormatError(.invalidHeader, path: c.path, "'\(key)': arrays nested too deeply") }
            let rawType = try c.read(UInt32.self, "the array type of '\(key)'")
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw FormatError(.invalidHeader, path: c.path, "unknown value type \(rawType) in array '\(key)'")
            }
            let count = try c.read(UInt64.self, "the array length of '\(key)'")
            guard count <= UInt64(c.remaining / elementType.minimumSize) else {
                throw FormatError(.truncated, path: c.path, "truncated: array '\(key)' count \(count) runs past the end of the file")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                items.append(try readValue(&c, type: elementType, key: key, depth: depth + 1))
            }
            return .array(elementType, items)
        }
    }

    private static func alignment(of metadata: [(key: String, value: GGUFValue)], path: String) throws -> Int {
        guard let value = metadata.first(where: { $0.key == "general.alignment" })?.value else {
            return defaultAlignment
        }
        guard let a = value.int, a > 0, a & (a - 1) == 0, a <= 1 << 20 else {
            throw FormatError(.invalidHeader, path: path, "general.alignment \(value) is not a power of two up to 1 MiB")
        }
        return a
    }

    private struct RawTensorInfo {
        let name: String, dtype: DType, shape: [Int], offset: Int
    }

    private static func readTensorInfos(_ c: inout ByteCursor, count: Int) throws -> [RawTensorInfo] {
        var infos: [RawTensorInfo] = []
        var seen = Set<String>()
        for index in 0..<count {
            let name = try c.readString("the name of tensor \(index)", isName: true)
            func bad(_ problem: String) -> FormatError {
                FormatError(.invalidHeader, path: c.path, "tensor '\(name)': \(problem)")
            }
            guard seen.insert(name).inserted else { throw bad("duplicate tensor name") }
            let nDims = try c.read(UInt32.self, "the dimensions of '\(name)'")
            guard nDims <= UInt32(maxDimensions) else { throw bad("n_dims \(nDims) exceeds \(maxDimensions) dimensions") }
            var dims: [UInt64] = []
            for _ in 0..<nDims { dims.append(try c.read(UInt64.self, "the dimensions of '\(name)'")) }
            let rawType = try c.read(UInt32.self, "the type of '\(name)'")
            let offset = try c.read(UInt64.self, "the offset of '\(name)'")
            guard let dtype = DType(ggmlType: rawType) else { throw bad("unknown or unsupported ggml type \(rawType)") }
            guard let intDims = dims.map({ Int(exactly: $0) }) as? [Int], checkedElementCount(intDims) != nil else {
                throw bad("dims \(dims) element count overflows")
            }
            guard let intOffset = Int(exactly: offset) else { throw bad("offset \(offset) past end of file") }
            infos.append(RawTensorInfo(name: name, dtype: dtype, shape: intDims.reversed(), offset: intOffset))
        }
        return infos
    }

    /// Two tensors sharing bytes would silently alias (llama.cpp refuses such files too).
    private static func checkNoOverlap(_ tensors: [TensorInfo], path: String) throws {
        let sorted = tensors.filter { !$0.dataRange.isEmpty }.sorted { $0.dataRange.lowerBound < $1.dataRange.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.dataRange.lowerBound < a.dataRange.upperBound {
            throw FormatError(.invalidHeader, path: path, "tensors '\(a.name)' and '\(b.name)' overlap")
        }
    }

    private static func locate(_ info: RawTensorInfo, dataStart: Int, alignment: Int, file: MappedFile) throws -> TensorInfo {
        func bad(_ problem: String) -> FormatError {
            FormatError(.invalidHeader, path: file.path, "tensor '\(info.name)': \(problem)")
        }
        let rowLength = info.shape.last ?? 1
        let elements = checkedElementCount(info.shape)!
        guard let size = info.dtype.byteCount(elements: elements, rowLength: rowLength) else {
            if info.dtype.isQuantized && rowLength % info.dtype.blockSize != 0 {
                throw bad("innermost dimension \(rowLength) is not a multiple of the \(info.dtype.ggmlName) block size \(info.dtype.blockSize)")
            }
            throw bad("byte size overflows")
        }
        guard info.offset % alignment == 0 else { throw bad("offset \(info.offset) is not aligned to \(alignment)") }
        let (start, o1) = dataStart.addingReportingOverflow(info.offset)
        let (end, o2) = start.addingReportingOverflow(size)
        guard !o1, !o2, end <= file.count else {
            throw bad("data [\(info.offset), +\(size)) runs past end of file (\(file.count) bytes)")
        }
        return TensorInfo(name: info.name, dtype: info.dtype, shape: info.shape, dataRange: start..<end, file: file)
    }
}

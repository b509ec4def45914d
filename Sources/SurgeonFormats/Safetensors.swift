/// A safetensors file: 8-byte little-endian header length N, N bytes of JSON, then data.
///
/// Opening validates the whole header against the file (SPEC §2): nothing past this
/// point needs to re-check offsets, sizes or dtypes.
public struct SafetensorsFile: Sendable {
    /// Headers above this are refused before any allocation (the reference library's limit).
    public static let maxHeaderLength = 100_000_000

    public let file: MappedFile
    public let tensors: [TensorInfo]
    /// `__metadata__`, in file order.
    public let metadata: [(key: String, value: String)]
    public let dataStart: Int

    public var path: String { file.path }

    public init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        guard file.count >= 8 else {
            throw FormatError.truncated(path, "the 8-byte header length (file is \(file.count) bytes)")
        }
        let headerLength = file.all.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLength <= UInt64(Self.maxHeaderLength) else {
            throw FormatError(.invalidHeader, path: path,
                              "header length \(headerLength) exceeds the 100 MB limit")
        }
        guard Int(headerLength) <= file.count - 8 else {
            throw FormatError(.truncated, path: path,
                              "header length \(headerLength) runs past the end of the file (\(file.count) bytes)")
        }
        dataStart = 8 + Int(headerLength)
        let header: JSONValue
        do {
            header = try StrictJSONParser.parse(file.bytes(8..<dataStart))
        } catch let error as JSONParseError {
            throw FormatError(.invalidHeader, path: path, "invalid JSON header: \(error)")
        }
        guard let members = header.object else {
            throw FormatError(.invalidHeader, path: path, "JSON header is not an object")
        }
        var tensors: [TensorInfo] = []
        var metadata: [(key: String, value: String)] = []
        let dataSize = file.count - dataStart
        for (name, entry) in members {
            if name == "__metadata__" {
                metadata = try Self.parseMetadata(entry, path: path)
                continue
            }
            tensors.append(try Self.parseTensor(name, entry, dataStart: dataStart, dataSize: dataSize, file: file))
        }
        try Self.checkContiguous(tensors, dataStart: dataStart, fileSize: file.count, path: path)
        self.tensors = tensors
        self.metadata = metadata
    }

    public func tensor(named name: String) -> TensorInfo? { tensors.first { $0.name == name } }

    private static func parseMetadata(_ entry: JSONValue, path: String) throws -> [(key: String, value: String)] {
        guard let members = entry.object else {
            throw FormatError(.invalidHeader, path: path, "invalid __metadata__: not an object")
        }
        return try members.map { key, value in
            guard let s = value.string else {
                throw FormatError(.invalidHeader, path: path, "invalid __metadata__: value of '\(key)' is not a string")
            }
            return (key, s)
        }
    }

    private static func parseTensor(_ name: String, _ entry: JSONValue, dataStart: Int, dataSize: Int,
                                    file: MappedFile) throws -> TensorInfo {
        let path = file.path
        func bad(_ problem: String) -> FormatError {
            FormatError(.invalidHeader, path: path, "tensor '\(name)': \(problem)")
        }
        guard entry.object != nil else { throw bad("entry is \(entry.kindDescription), not an object") }
        func field(_ key: String) throws -> JSONValue {
            guard let value = entry[key] else { throw bad("missing \(key)") }
            return value
        }
        let dtypeValue = try field("dtype")
        guard let dtypeName = dtypeValue.string else { throw bad("dtype must be a string, found \(dtypeValue.kindDescription)") }
        guard let dtype = DType(safetensorsName: dtypeName) else { throw bad("unknown dtype \"\(dtypeName)\"") }
        let shapeValue = try field("shape")
        guard let shapeValues = shapeValue.array else { throw bad("shape must be a list, found \(shapeValue.kindDescription)") }
        var shape: [Int] = []
        for dim in shapeValues {
            switch dim.integer {
            case .value(let d) where d >= 0: shape.append(d)
            case .overflow: throw bad("shape dimension overflows")
            default: throw bad("invalid shape (dimensions must be non-negative integers)")
            }
        }
        let offsetsValue = try field("data_offsets")
        guard let offsets = offsetsValue.array, offsets.count == 2 else {
            throw bad("data_offsets must be a list of two integers, found \(offsetsValue.kindDescription)")
        }
        guard case .value(let begin) = offsets[0].integer, case .value(let end) = offsets[1].integer else {
            throw bad("data_offsets are not integers")
        }
        guard begin >= 0, begin <= end, end <= dataSize else {
            throw bad("data_offsets [\(begin), \(end)] out of range (data section is \(dataSize) bytes)")
        }
        guard let count = checkedElementCount(shape) else { throw bad("shape \(shape) element count overflows") }
        let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.blockBytes)
        guard !overflow else { throw bad("shape \(shape) byte size overflows") }
        guard end - begin == expected else {
            throw bad("size mismatch: data_offsets span \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(expected)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape,
                          dataRange: (dataStart + begin)..<(dataStart + end), file: file)
    }

    /// The data section is the tensors back to back, as the format requires: no byte is
    /// shared by two tensors, none lies between them, none follows the last.
    private static func checkContiguous(_ tensors: [TensorInfo], dataStart: Int, fileSize: Int, path: String) throws {
        let sorted = tensors.sorted { ($0.dataRange.lowerBound, $0.dataRange.upperBound) < ($1.dataRange.lowerBound, $1.dataRange.upperBound) }
        var end = dataStart
        var previous: TensorInfo?
        for t in sorted {
            if t.dataRange.lowerBound < end, let previous {
                throw FormatError(.invalidHeader, path: path, "tensors '\(previous.name)' and '\(t.name)' overlap")
            }
            if t.dataRange.lowerBound > end {
                throw FormatError(.invalidHeader, path: path,
                                  "\(t.dataRange.lowerBound - end) unused bytes before tensor '\(t.name)' (data must be contiguous)")
            }
            end = t.dataRange.upperBound
            previous = t
        }
        guard end == fileSize else {
            throw FormatError(.invalidHeader, path: path, "\(fileSize - end) bytes after the last tensor's data (data must end the file)")
        }
    }
}

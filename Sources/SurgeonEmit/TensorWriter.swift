import SurgeonFormats
import SurgeonModel

/// Streams one tensor into an output file: which stored rows, in which order, in which dtype.
///
/// Same dtype: the bytes go from the input mapping to the output unchanged (one
/// `copy_file_range` when the rows are in order). Otherwise rows are decoded to f32 and
/// re-encoded a chunk at a time, so no more than `chunkBytes` of f32 is ever held.
public struct TensorWriter {
    public static let chunkBytes = 8 << 20

    public let tensor: CheckpointTensor
    /// Output row i is stored row `storedRows[i]`; nil writes the stored rows in order.
    public let storedRows: [Int]?
    public let outputDType: DType

    public init(tensor: CheckpointTensor, hfRowOrder: [Int]? = nil, outputDType: DType) {
        self.tensor = tensor
        self.outputDType = outputDType
        // Compose the requested HF row order with the order rows are stored in.
        switch (hfRowOrder, tensor.storedRows) {
        case (nil, nil): storedRows = nil
        case (nil, let stored?): storedRows = stored
        case (let hf?, nil): storedRows = hf
        case (let hf?, let stored?): storedRows = hf.map { stored[$0] }
        }
    }

    public var outputByteCount: Int {
        outputDType.byteCount(elements: tensor.elementCount, rowLength: tensor.shape.last ?? 1) ?? 0
    }

    public func write(to out: OutputFile) throws {
        let stored = tensor.stored
        defer { tensor.release() }
        let runs = rowRuns()
        if outputDType == tensor.dtype {
            for run in runs {
                try out.copy(from: stored.file, range: byteRange(of: run))
            }
            return
        }
        try convert(runs, to: out)
    }

    /// Maximal runs of consecutive stored rows, in output order.
    func rowRuns() -> [Range<Int>] {
        guard let rows = storedRows else { return [0..<tensor.rowCount] }
        var runs: [Range<Int>] = []
        var i = 0
        while i < rows.count {
            var end = i + 1
            while end < rows.count && rows[end] == rows[end - 1] + 1 { end += 1 }
            runs.append(rows[i]..<(rows[i] + end - i))
            i = end
        }
        return runs
    }

    private func byteRange(of rows: Range<Int>) -> Range<Int> {
        let base = tensor.stored.dataRange.lowerBound, rb = tensor.rowBytes
        return (base + rows.lowerBound * rb)..<(base + rows.upperBound * rb)
    }

    private func convert(_ runs: [Range<Int>], to out: OutputFile) throws {
        let rowLength = tensor.shape.count >= 2 ? tensor.stored.rowLength : tensor.elementCount
        let rowsPerChunk = max(1, Self.chunkBytes / 4 / max(rowLength, 1))
        let outRowBytes = outputDType.byteCount(elements: rowLength, rowLength: rowLength) ?? 0
        var floats = [Float](repeating: 0, count: rowsPerChunk * rowLength)
        var encoded = [UInt8](repeating: 0, count: rowsPerChunk * outRowBytes)
        for run in runs {
            var row = run.lowerBound
            while row < run.upperBound {
                let n = min(rowsPerChunk, run.upperBound - row)
                let source = tensor.stored.file.bytes(byteRange(of: row..<(row + n)))
                try floats.withUnsafeMutableBufferPointer { f in
                    let chunk = UnsafeMutableBufferPointer(rebasing: f[0..<(n * rowLength)])
                    TensorCodec.decode(tensor.dtype, from: source, into: chunk)
                    try encoded.withUnsafeMutableBytes { e in
                        let target = UnsafeMutableRawBufferPointer(rebasing: e[0..<(n * outRowBytes)])
                        try TensorCodec.encode(UnsafeBufferPointer(chunk), as: outputDType, into: target)
                        try out.write(UnsafeRawBufferPointer(target))
                    }
                }
                tensor.stored.file.release(byteRange(of: row..<(row + n)))
                row += n
            }
        }
    }
}

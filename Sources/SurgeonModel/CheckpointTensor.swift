import SurgeonFormats

/// A tensor of a checkpoint under its HF name and in HF layout, backed by the bytes of
/// the file it came from.
///
/// GGUF LLaMA q/k rows are stored permuted; `storedRows` says which stored row holds each
/// HF row, so both raw copies and decoding present HF order without a copy of the file.
/// Rows of block-quantized data are whole blocks, so reordering rows never decodes.
public struct CheckpointTensor: Sendable {
    public let name: String
    public let stored: TensorInfo
    /// HF row r is stored row `storedRows[r]`; nil when stored in HF order.
    public let storedRows: [Int]?
    /// HF value = stored value + `addend` (Gemma GGUFs store norm weights as 1 + w).
    public let addend: Float

    public init(name: String, stored: TensorInfo, storedRows: [Int]? = nil, addend: Float = 0) {
        self.name = name
        self.stored = stored
        self.storedRows = storedRows
        self.addend = addend
    }

    /// Where a family's GGUFs store `hfName`'s values shifted: the amount added on the way
    /// to GGUF (llama.cpp's converter writes Gemma's norm weights as 1 + w), 0 elsewhere.
    public static func ggufAddend(_ hfName: String, family: ModelFamily) -> Float {
        family.traits.ggufStoresNormPlusOne && hfName.hasSuffix("norm.weight") ? 1 : 0
    }

    public var dtype: DType { stored.dtype }
    /// The HF tensor's shape: the stored one, or `storedRows.count` rows of it (a part of a
    /// fused tensor, e.g. Phi-3's q rows of `qkv_proj`).
    public var shape: [Int] {
        guard let storedRows, stored.shape.count >= 2 else { return stored.shape }
        return [storedRows.count] + stored.shape.dropFirst()
    }
    public var elementCount: Int { storedRows != nil && stored.shape.count >= 2 ? rowCount * stored.rowLength : stored.elementCount }
    public var byteCount: Int { storedRows != nil && stored.shape.count >= 2 ? rowCount * rowBytes : stored.byteCount }
    public var rowCount: Int { storedRows?.count ?? storedRowCount }
    /// Bytes of one stored row.
    public var rowBytes: Int { stored.byteCount / max(storedRowCount, 1) }
    private var storedRowCount: Int { stored.shape.count >= 2 ? stored.elementCount / stored.rowLength : 1 }

    /// Calls `body` with the tensor's bytes in HF row order, as few contiguous runs as the
    /// row order allows (one run when no reordering is needed).
    public func forEachRun(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        let all = stored.bytes
        guard storedRows != nil else { return try body(all) }
        for run in Self.runs(storedRows, count: rowCount) {
            try body(UnsafeRawBufferPointer(rebasing: all[(run.lowerBound * rowBytes)..<(run.upperBound * rowBytes)]))
        }
    }

    /// Maximal runs of consecutive rows in `rows` (all `count` rows in order when nil), in
    /// the order given: each run is one contiguous byte range of the stored tensor.
    public static func runs(_ rows: [Int]?, count: Int) -> [Range<Int>] {
        guard let rows else { return [0..<count] }
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

    /// The tensor as f32 in HF layout.
    public func decodeF32() -> [Float] {
        var out = [Float](repeating: 0, count: elementCount)
        let perRow = stored.rowLength
        out.withUnsafeMutableBufferPointer { dst in
            var written = 0
            forEachRun { run in
                let n = storedRows == nil ? elementCount : run.count / rowBytes * perRow
                TensorCodec.decode(dtype, from: run, into: UnsafeMutableBufferPointer(rebasing: dst[written..<(written + n)]))
                written += n
            }
        }
        if addend != 0 { for i in out.indices { out[i] += addend } }
        return out
    }

    /// Decodes HF rows `rows` (each `shape.last` wide) into `out`.
    public func decodeRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let perRow = stored.rowLength
        let all = stored.bytes
        if storedRows == nil {
            let bytes = UnsafeRawBufferPointer(rebasing: all[(rows.lowerBound * rowBytes)..<(rows.upperBound * rowBytes)])
            TensorCodec.decode(dtype, from: bytes, into: UnsafeMutableBufferPointer(start: out, count: rows.count * perRow))
            if addend != 0 { for i in 0..<(rows.count * perRow) { out[i] += addend } }
            return
        }
        for (i, r) in rows.enumerated() {
            let start = storedRows![r] * rowBytes
            TensorCodec.decode(dtype, from: UnsafeRawBufferPointer(rebasing: all[start..<(start + rowBytes)]),
                               into: UnsafeMutableBufferPointer(start: out + i * perRow, count: perRow))
        }
        if addend != 0 { for i in 0..<(rows.count * perRow) { out[i] += addend } }
    }

    /// Gives the tensor's pages back to the kernel once it has been copied or decoded.
    public func release() { stored.file.release(stored.dataRange) }

    /// Gives back the pages of HF rows `rows` once decoded, so that a pass over a large
    /// tensor a slice at a time holds one slice of it (a tensor stored in another row
    /// order gives back all of its pages).
    public func release(rows: Range<Int>) {
        guard storedRows == nil else { return release() }
        let base = stored.dataRange.lowerBound
        stored.file.release((base + rows.lowerBound * rowBytes)..<(base + rows.upperBound * rowBytes))
    }
}

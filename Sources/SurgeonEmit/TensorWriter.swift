import SurgeonFormats
import SurgeonModel

/// Streams one output tensor into a file: from which source, which rows in which order,
/// in which dtype, under which (HF) name.
///
/// A stored tensor in its own dtype goes from the input mapping to the output unchanged
/// (one `copy_file_range` when the rows are in order). Anything else is decoded to f32 and
/// re-encoded a chunk of rows at a time, so no more than `chunkBytes` of f32 is held beyond
/// an in-memory source itself.
public struct TensorWriter {
    public static let chunkBytes = 8 << 20

    public enum Source {
        /// Bytes of a checkpoint tensor, rows taken in `rows` order (nil: stored order).
        case stored(CheckpointTensor, rows: [Int]?)
        /// f32 values in HF layout, rows taken in `rows` order.
        case memory([Float], rows: [Int]?)
        /// A merged layer's f32 tensor parked on disk, read a chunk of rows at a time.
        case spilled(SpilledLayer, LayerField, rows: [Int]?)
        /// Parts written one after the other: a fused tensor's rows (Phi-3's qkv_proj).
        case fused([TensorWriter])
    }

    public let name: String
    public let shape: [Int]
    public let source: Source
    public let outputDType: DType
    /// Added to every HF value on the way out (Gemma norms in GGUF: +1).
    public var addend: Float = 0

    /// A checkpoint tensor, optionally renamed (layers renumbered) and with its HF rows
    /// reordered (`hfRowOrder[i]` is the HF row written as output row i).
    public init(tensor: CheckpointTensor, name: String? = nil, hfRowOrder: [Int]? = nil, outputDType: DType) {
        self.name = name ?? tensor.name
        shape = tensor.shape
        self.outputDType = outputDType
        // Compose the requested HF row order with the order rows are stored in.
        let rows: [Int]?
        switch (hfRowOrder, tensor.storedRows) {
        case (nil, nil): rows = nil
        case (nil, let stored?): rows = stored
        case (let hf?, nil): rows = hf
        case (let hf?, let stored?): rows = hf.map { stored[$0] }
        }
        source = .stored(tensor, rows: rows)
    }

    public init(name: String, shape: [Int], values: [Float], hfRowOrder: [Int]? = nil, outputDType: DType) {
        precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
        self.name = name
        self.shape = shape
        self.outputDType = outputDType
        source = .memory(values, rows: hfRowOrder)
    }

    public init(name: String, shape: [Int], spilled layer: SpilledLayer, field: LayerField,
                hfRowOrder: [Int]? = nil, outputDType: DType) {
        precondition(layer.count(field) == shape.reduce(1, *), "\(name): stored values do not fill shape \(shape)")
        self.name = name
        self.shape = shape
        self.outputDType = outputDType
        source = .spilled(layer, field, rows: hfRowOrder)
    }

    /// The parts as one tensor under `name` (all parts of one dtype and row length).
    public init(name: String, fusing parts: [TensorWriter]) {
        precondition(Set(parts.map(\.outputDType)).count == 1 && Set(parts.map { $0.shape.dropFirst() }).count == 1,
                     "\(name): parts differ in dtype or row length")
        self.name = name
        shape = [parts.reduce(0) { $0 + $1.shape[0] }] + parts[0].shape.dropFirst()
        outputDType = parts[0].outputDType
        source = .fused(parts)
    }

    /// `writers` with the parts of each tensor the family stores fused replaced, where the
    /// first part stood, by one writer of the fused tensor.
    public static func fusingParts(_ writers: [TensorWriter], family: ModelFamily, config: ModelConfig) -> [TensorWriter] {
        guard family.traits.fusesProjections else { return writers }
        let byName = Dictionary(writers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var consumed = Set<String>()
        var out: [TensorWriter] = []
        for w in writers where !consumed.contains(w.name) {
            guard let layer = TensorLayout.layerIndex(of: w.name) else { out.append(w); continue }
            let prefix = TensorLayout.layerPrefix(layer)
            guard let fused = LayerTensors.fused.first(where: { f in
                      prefix + f.partRows(config, family: family)[0].suffix == w.name }) else { out.append(w); continue }
            let names = fused.partRows(config, family: family).map { prefix + $0.suffix }
            let parts = names.compactMap { byName[$0] }
            guard parts.count == names.count else { out.append(w); continue }
            consumed.formUnion(names)
            var writer = TensorWriter(name: prefix + fused.hfSuffix, fusing: parts)
            writer.addend = w.addend
            out.append(writer)
        }
        return out
    }

    private var rowLength: Int { shape.count >= 2 ? shape.last! : shape.reduce(1, *) }
    private var rowCount: Int { shape.count >= 2 ? shape.reduce(1, *) / max(rowLength, 1) : 1 }

    public var outputByteCount: Int {
        if case .fused(let parts) = source { return parts.reduce(0) { $0 + $1.outputByteCount } }
        return outputDType.byteCount(elements: shape.reduce(1, *), rowLength: shape.last ?? 1) ?? 0
    }

    public func write(to out: OutputFile) throws {
        switch source {
        case .stored(let tensor, let rows):
            defer { tensor.release() }
            let runs = CheckpointTensor.runs(rows, count: rowCount)
            // Stored values plus both shifts (the input's and the output's) is what goes out.
            let shift = tensor.addend + addend
            if outputDType == tensor.dtype && shift == 0 {
                for run in runs { try out.copy(from: tensor.stored.file, range: byteRange(tensor, run)) }
                return
            }
            try convert(runs, to: out, shift: shift) { run, buffer in
                TensorCodec.decode(tensor.dtype, from: tensor.stored.file.bytes(byteRange(tensor, run)),
                                   into: UnsafeMutableBufferPointer(start: buffer, count: run.count * rowLength))
                tensor.stored.file.release(byteRange(tensor, run))
            }
        case .memory(let values, let rows):
            try values.withUnsafeBufferPointer { v in
                try convert(CheckpointTensor.runs(rows, count: rowCount), to: out, shift: addend) { run, buffer in
                    buffer.update(from: v.baseAddress! + run.lowerBound * rowLength, count: run.count * rowLength)
                }
            }
        case .fused(let parts):
            for var part in parts {
                part.addend = addend
                try part.write(to: out)
            }
        case .spilled(let layer, let field, let rows):
            try convert(CheckpointTensor.runs(rows, count: rowCount), to: out, shift: addend) { run, buffer in
                try layer.read(field, (run.lowerBound * rowLength)..<(run.upperBound * rowLength), into: buffer)
            }
        }
    }

    private func byteRange(_ tensor: CheckpointTensor, _ rows: Range<Int>) -> Range<Int> {
        let base = tensor.stored.dataRange.lowerBound, rb = tensor.rowBytes
        return (base + rows.lowerBound * rb)..<(base + rows.upperBound * rb)
    }

    /// Fills f32 rows chunk by chunk with `load`, encodes them as `outputDType`, writes them.
    private func convert(_ runs: [Range<Int>], to out: OutputFile, shift: Float,
                         load: (Range<Int>, UnsafeMutablePointer<Float>) throws -> Void) throws {
        // A chunk of up to 8 MB of f32, but no larger than the tensor: small tensors get small
        // buffers, which malloc serves from the heap instead of mapping fresh pages.
        let rowsPerChunk = min(max(1, Self.chunkBytes / 4 / max(rowLength, 1)), max(1, runs.reduce(0) { $0 + $1.count }))
        let outRowBytes = outputDType.byteCount(elements: rowLength, rowLength: rowLength) ?? 0
        var floats = [Float](repeating: 0, count: rowsPerChunk * rowLength)
        var encoded = [UInt8](repeating: 0, count: rowsPerChunk * outRowBytes)
        for run in runs {
            var row = run.lowerBound
            while row < run.upperBound {
                let n = min(rowsPerChunk, run.upperBound - row)
                try floats.withUnsafeMutableBufferPointer { f in
                    try load(row..<(row + n), f.baseAddress!)
                    if shift != 0 { for i in 0..<(n * rowLength) { f[i] += shift } }
                    try encoded.withUnsafeMutableBytes { e in
                        let target = UnsafeMutableRawBufferPointer(rebasing: e[0..<(n * outRowBytes)])
                        try TensorCodec.encode(UnsafeBufferPointer(rebasing: f[0..<(n * rowLength)]), as: outputDType, into: target)
                        try out.write(UnsafeRawBufferPointer(target))
                    }
                }
                row += n
            }
        }
    }
}

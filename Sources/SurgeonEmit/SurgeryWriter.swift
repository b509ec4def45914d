import Foundation
import SurgeonFormats
import SurgeonModel

/// Writes the model a layer stack describes, with its manifest: original layers copied
/// from the mapping (renumbered, bytes unchanged unless `--dtype` asks), merged layers
/// encoded from f32, embeddings and head copied.
public struct SurgeryWriter {
    public let checkpoint: Checkpoint
    public let stack: LayerStack
    public let format: OutputFormat
    public let dtype: DTypeChoice
    public var maxShardBytes = 5_000_000_000
    /// The method name for the GGUF surgery summary (`ckpt_surgeon.surgery.*`).
    public var methodName = "come"
    /// The GGUF surgery summary, when it is not the stack's own (a healed student keeps
    /// the provenance its manifest records).
    public var ggufSummary: [(key: String, value: GGUFValue)]?

    public init(checkpoint: Checkpoint, stack: LayerStack, format: OutputFormat, dtype: DTypeChoice) {
        self.checkpoint = checkpoint
        self.stack = stack
        self.format = format
        self.dtype = dtype
    }

    /// The pruned model's config: fewer layers, otherwise the source's.
    public var config: ModelConfig {
        var c = checkpoint.config
        c.numHiddenLayers = stack.count
        if checkpoint.family.traits.slidingWindowOnEvenLayers {
            // Each layer keeps the attention kind of the first original it stands for.
            c.layerTypes = (0..<stack.count).map {
                checkpoint.config.isSlidingLayer(stack.originals($0).lowerBound) ? "sliding_attention" : "full_attention"
            }
        }
        return c
    }

    /// Writers for every output tensor, in transformers' order, under HF names.
    public func writers() throws -> [TensorWriter] {
        let c = checkpoint.config
        func copy(_ name: String, as outName: String? = nil) throws -> TensorWriter? {
            guard let t = checkpoint.tensor(name) else { return nil }
            let out = outName ?? name
            return TensorWriter(tensor: t, name: out, hfRowOrder: rowOrder(out),
                                outputDType: try dtype.resolve(for: t, in: format))
        }
        var out: [TensorWriter] = []
        if let w = try copy("model.embed_tokens.weight") { out.append(w) }
        for i in 0..<stack.count {
            switch stack.layers[i] {
            case .original(let j):
                for spec in TensorLayout.layerTensors(c, family: checkpoint.family, layer: j) {
                    let suffix = spec.name.dropFirst(TensorLayout.layerPrefix(j).count)
                    if let w = try copy(spec.name, as: TensorLayout.layerPrefix(i) + suffix) { out.append(w) }
                }
            case .built(let layer, let originals):
                for row in LayerTensors.present(c, family: checkpoint.family) where layer.count(row.field) != nil {
                    let suffix = row.hfSuffix, shape = row.shape(c), field = row.field
                    let name = TensorLayout.layerPrefix(i) + suffix
                    // A merged tensor keeps the dtype its first source tensor had, where
                    // the output can hold it.
                    let source = checkpoint.tensor(TensorLayout.layerPrefix(originals.lowerBound) + suffix)!
                    out.append(TensorWriter(name: name, shape: shape, spilled: layer, field: field, hfRowOrder: rowOrder(name),
                                            outputDType: try mergedDType(source, shape: shape)))
                }
            }
        }
        if let w = try copy("model.norm.weight") { out.append(w) }
        if !c.tieWordEmbeddings, let w = try copy("lm_head.weight") { out.append(w) }
        return TensorWriter.fusingParts(out, family: checkpoint.family, config: c)
    }

    private func rowOrder(_ name: String) -> [Int]? {
        format == .gguf ? GGUFExporter.ggufRowOrder(for: name, config: checkpoint.config, family: checkpoint.family) : nil
    }

    private func mergedDType(_ source: CheckpointTensor, shape: [Int]) throws -> DType {
        let resolved = try dtype.resolve(for: source, in: format)
        if TensorCodec.encodable.contains(resolved) { return resolved }
        // Other block types cannot be produced: f32 in safetensors, Q8_0 (or F16) in GGUF.
        if format == .safetensors { return .f32 }
        return shape.count >= 2 && shape.last! % 32 == 0 ? .q8_0 : .f32
    }

    /// Writes the model and its manifest; `manifest` receives the output tensor hashes.
    public func write(to path: String, replace: Bool, progress: ProgressHandler? = nil,
                      manifest: @escaping ([String: String], [String]) throws -> SurgeryManifest) throws {
        try Converter.refuseOverwritingInput(checkpoint.path, output: path)
        let writers = try writers()
        switch format {
        case .safetensors:
            var folder = HFFolderWriter(checkpoint: checkpoint, writers: writers, maxShardBytes: maxShardBytes)
            folder.numLayers = stack.count
            folder.keptLayers = (0..<stack.count).map { stack.originals($0).lowerBound }
            folder.finalize = { temporary in
                let files = try SurgeryManifest.tensorFiles(of: temporary)
                let m = try manifest(try SurgeryManifest.hashes(of: files), files.map { FilePath.name(of: $0) })
                return [("surgery.json", try m.encoded())]
            }
            try Converter.requireSpace(folder.dataBytes, at: path)
            try folder.write(to: path, replace: replace, progress: progress)
        case .gguf:
            try OutputFile.refuseExisting(path, replace: replace)
            var exporter = GGUFExporter(checkpoint: checkpoint, tensors: writers.map { (TensorNames.gguf(fromHF: $0.name, family: checkpoint.family) ?? $0.name, $0) })
            exporter.config = config
            exporter.extraMetadata = ggufSummary ?? SurgeryManifest.ggufSummary(
                method: methodName, sourceLayers: checkpoint.config.numHiddenLayers,
                layers: SurgeryManifest.provenance(stack).0)
            try Converter.requireSpace(writers.reduce(0) { $0 + $1.outputByteCount }, at: path)
            try exporter.write(to: path, progress: progress)
            let m = try manifest(try SurgeryManifest.hashes(of: [path]), [FilePath.name(of: path)])
            let out = try OutputFile(path: SurgeryManifest.location(of: path))
            try out.write(Array(try m.encoded()))
            try out.commit()
        }
    }
}

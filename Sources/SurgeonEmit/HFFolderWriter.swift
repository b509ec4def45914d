import Foundation
import SurgeonFormats
import SurgeonModel

/// Writes a Hugging Face folder: config.json, safetensors (sharded above the limit, with
/// the index), and the tokenizer and generation files.
public struct HFFolderWriter {
    /// Files copied verbatim from an HF input folder.
    public static let tokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "generation_config.json", "vocab.json", "merges.txt", "tokenizer.model",
                                        "added_tokens.json", "chat_template.jinja"]

    public let checkpoint: Checkpoint
    public let writers: [TensorWriter]
    public let maxShardBytes: Int
    /// Set when layers were removed or merged; nil keeps the input's layer count.
    public var numLayers: Int?
    public var keptLayers: [Int]?
    /// Called with the finished (not yet committed) folder; returns extra files to add,
    /// such as a manifest that hashes the written tensors.
    public var finalize: ((String) throws -> [(name: String, data: Data)])?

    public init(checkpoint: Checkpoint, writers: [TensorWriter], maxShardBytes: Int) {
        self.checkpoint = checkpoint
        self.writers = writers
        self.maxShardBytes = maxShardBytes
    }

    public var dataBytes: Int { writers.reduce(0) { $0 + $1.outputByteCount } }

    public func write(to path: String, replace: Bool, progress: ProgressHandler? = nil) throws {
        let folder = try OutputFolder(path: path, replace: replace)
        let plan = ShardPlan(sizes: writers.map(\.outputByteCount), maxShardBytes: maxShardBytes)
        var done = 0
        var weightMap: [(String, String)] = []
        for (s, indices) in plan.shards.enumerated() {
            let name = plan.fileName(s)
            let layout = SafetensorsLayout(entries: indices.map {
                SafetensorsLayout.Entry(name: writers[$0].name, dtype: writers[$0].outputDType,
                                        shape: writers[$0].shape)
            })
            let out = try folder.file(name)
            try out.write(layout.headerBytes())
            for i in indices {
                try writers[i].write(to: out)
                done += writers[i].outputByteCount
                progress?(done, dataBytes)
                weightMap.append((writers[i].name, name))
            }
            try out.commit()
        }
        if plan.shards.count > 1 {
            let map = weightMap.map { "    \(jsonQuote($0.0)): \(jsonQuote($0.1))" }.joined(separator: ",\n")
            let index = "{\n  \"metadata\": {\n    \"total_size\": \(dataBytes)\n  },\n  \"weight_map\": {\n\(map)\n  }\n}\n"
            try folder.write(ShardedSafetensors.indexFileName, Data(index.utf8))
        }
        try folder.write("config.json", try HFConfigWriter.configJSON(
            for: checkpoint, numLayers: numLayers, keptLayers: keptLayers, torchDtype: dominantTorchDtype()))
        try writeTokenizer(into: folder)
        for (name, data) in try finalize?(folder.temporaryPath) ?? [] { try folder.write(name, data) }
        try folder.commit()
    }

    /// The dtype most weight bytes are in, as config.json's `torch_dtype`.
    func dominantTorchDtype() -> String? {
        var bytes: [DType: Int] = [:]
        for w in writers { bytes[w.outputDType, default: 0] += w.outputByteCount }
        return bytes.max { $0.value < $1.value }.flatMap { HFConfigWriter.torchName($0.key) }
    }

    private func writeTokenizer(into folder: OutputFolder) throws {
        if let source = checkpoint.folder {
            for name in Self.tokenizerFiles where FileManager.default.fileExists(atPath: source + "/" + name) {
                try folder.copy(name, from: source + "/" + name)
            }
            return
        }
        guard let gguf = checkpoint.gguf, let tokenizer = try GGUFTokenizer(gguf: gguf) else { return }
        do {
            try folder.write("tokenizer.json", Data(try TokenizerFiles.tokenizerJSON(tokenizer).utf8))
        } catch let error as TokenizerFiles.Unsupported {
            warn("\(checkpoint.path): no tokenizer.json written: \(error)")
        }
        try folder.write("tokenizer_config.json",
                         try TokenizerFiles.tokenizerConfigJSON(tokenizer, modelMaxLength: checkpoint.config.maxPositionEmbeddings))
        try folder.write("generation_config.json", try TokenizerFiles.generationConfigJSON(tokenizer))
    }
}

/// A warning on stderr; stdout stays for data.
public func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

import Foundation
import SurgeonFormats

/// A model checkpoint on disk, seen in HF names and layout whatever its format.
///
/// Nothing is loaded: tensors stay in their memory mappings until someone copies or
/// decodes them. Formats are translated here, at the edge (SPEC §2).
public struct Checkpoint: Sendable {
    public enum Format: String, Sendable, Codable {
        case huggingFace = "hf-folder"
        case safetensors = "safetensors-file"
        case gguf
    }

    public let path: String
    public let format: Format
    public let config: ModelConfig
    public let family: ModelFamily
    /// The original `config.json` bytes (HF inputs); rewritten configs start from these.
    public let configJSON: Data?
    public let tensors: [CheckpointTensor]
    /// Stored tensors with no HF counterpart (e.g. llama.cpp's `rope_freqs.weight`).
    public let unmappedTensors: [TensorInfo]
    /// The GGUF, for its metadata (tokenizer, provenance), when the input is one.
    public let gguf: GGUFFile?
    /// The folder holding tokenizer and generation files, when the input has one.
    public let folder: String?
    /// safetensors `__metadata__` of the first file, if any.
    public let safetensorsMetadata: [(key: String, value: String)]

    public func tensor(_ name: String) -> CheckpointTensor? {
        tensors.first { $0.name == name }
    }

    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.elementCount } }

    /// The rows of the token embedding as stored (0 without one): what a tokenizer's ids
    /// are bounded by, whatever the config claims.
    public var embeddingRows: Int { tensor("model.embed_tokens.weight")?.shape.first ?? 0 }

    /// Tensors in the order transformers and llama.cpp write them: embeddings, layer by
    /// layer, final norm, head; then anything else the input held, in file order.
    public var orderedTensors: [CheckpointTensor] {
        let expected = TensorLayout.expectedTensors(config, family: family).map(\.name)
        let rank = Dictionary(expected.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        func key(_ i: Int, _ t: CheckpointTensor) -> (Int, Int) { (rank[t.name] ?? expected.count + i, i) }
        return tensors.enumerated().sorted { key($0.offset, $0.element) < key($1.offset, $1.element) }.map(\.element)
    }

    /// Opens an HF folder, a `.safetensors` file (config.json beside it, or `configPath`),
    /// or a `.gguf` file.
    public static func open(_ path: String, configPath: String? = nil) throws -> Checkpoint {
        if let problem = FilePath.lookupProblem(path) { throw FormatError(.io, path: path, problem) }
        if FilePath.isDirectory(path) {
            return try openFolder(path, configPath: configPath)
        }
        guard FilePath.isRegularFile(path) else { throw FormatError(.io, path: path, "not a regular file") }
        if try looksLikeGGUF(path) {
            return try openGGUF(path)
        }
        let file = try SafetensorsFile(path: path)
        let directory = FilePath.directory(of: path)
        let config = try loadConfig(configPath ?? directory + "/config.json")
        // Tokenizer files beside a lone .safetensors file belong to it, as its config does.
        let folder = FilePath.exists(directory + "/tokenizer.json") ? directory : nil
        return try fromSafetensors(path: path, format: .safetensors, config: config, tensors: file.tensors,
                                   metadata: file.metadata, folder: folder)
    }

    private static func looksLikeGGUF(_ path: String) throws -> Bool {
        if path.hasSuffix(".gguf") { return true }
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    private static func openFolder(_ folder: String, configPath: String?) throws -> Checkpoint {
        let config = try loadConfig(configPath ?? folder + "/config.json")
        let indexPath = folder + "/" + ShardedSafetensors.indexFileName
        let single = folder + "/model.safetensors"
        let fm = FileManager.default
        if fm.fileExists(atPath: indexPath) {
            let sharded = try ShardedSafetensors(indexPath: indexPath)
            return try fromSafetensors(path: folder, format: .huggingFace, config: config, tensors: sharded.tensors,
                                       metadata: sharded.shards.first?.metadata ?? [], folder: folder)
        }
        var file = single
        if !fm.fileExists(atPath: single) {
            let candidates = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
            guard candidates.count == 1 else {
                throw FormatError(.io, path: folder, candidates.isEmpty
                    ? "no model.safetensors or \(ShardedSafetensors.indexFileName) in this folder"
                    : "several .safetensors files but no \(ShardedSafetensors.indexFileName)")
            }
            file = folder + "/" + candidates[0]
        }
        let st = try SafetensorsFile(path: file)
        return try fromSafetensors(path: folder, format: .huggingFace, config: config, tensors: st.tensors,
                                   metadata: st.metadata, folder: folder)
    }

    private static func fromSafetensors(path: String, format: Format, config: LoadedConfig, tensors: [TensorInfo],
                                        metadata: [(key: String, value: String)], folder: String?) throws -> Checkpoint {
        let viewed = tensors.map { CheckpointTensor(name: $0.name, stored: $0) }
        try checkLayerCount(config.config, tensors: viewed, path: path, key: "num_hidden_layers")
        return Checkpoint(path: path, format: format, config: config.config, family: config.family, configJSON: config.json,
                          tensors: unfused(viewed, config: config.config, family: config.family),
                          unmappedTensors: [], gguf: nil, folder: folder, safetensorsMetadata: metadata)
    }

    public struct LoadedConfig: Sendable {
        public let config: ModelConfig
        public let family: ModelFamily
        public let json: Data
    }

    /// Reads and decodes `config.json`, refusing families we do not support.
    public static func loadConfig(_ path: String) throws -> LoadedConfig {
        if let problem = FilePath.lookupProblem(path, missing: "config.json not found") {
            throw FormatError(.io, path: path, problem)
        }
        guard FilePath.isRegularFile(path) else { throw FormatError(.io, path: path, "not a regular file") }
        guard let data = FilePath.contents(path) else { throw FormatError(.io, path: path, "cannot read config.json") }
        let config: ModelConfig
        do {
            config = try JSONDecoder().decode(ModelConfig.self, from: data)
        } catch let error as DecodingError {
            throw FormatError(.invalidHeader, path: path, "invalid config.json: \(ConfigDecodingProblem(error, json: data))")
        }
        guard let family = config.family else {
            let supported = ModelFamily.allCases.map(\.rawValue).joined(separator: ", ")
            throw FormatError(.unsupported, path: path, "unsupported model_type \"\(config.modelType)\" (supported: \(supported))")
        }
        try config.checkSizes(path: path)
        return LoadedConfig(config: config, family: family, json: data)
    }

    /// A config must not claim more decoder layers than its tensors hold: everything built
    /// per layer (the expected-tensor table first) is sized by this count.
    static func checkLayerCount(_ c: ModelConfig, tensors: [CheckpointTensor], path: String, key: String) throws {
        let layers = Set(tensors.compactMap { TensorLayout.layerIndex(of: $0.name) })
        let present = (layers.max() ?? -1) + 1
        guard c.numHiddenLayers <= present else {
            let held = present == 0 ? "no decoder layers" : "layers 0–\(present - 1) only"
            throw FormatError(.inconsistent, path: path, "\(key) is \(c.numHiddenLayers) but the tensors hold \(held)")
        }
    }

    private static func openGGUF(_ path: String) throws -> Checkpoint {
        let gguf = try GGUFFile(path: path)
        let (config, family) = try GGUFModelConfig.derive(from: gguf)
        var tensors: [CheckpointTensor] = []
        var unmapped: [TensorInfo] = []
        for info in gguf.tensors {
            guard let name = TensorNames.hf(fromGGUF: info.name, family: family) else {
                unmapped.append(info)
                continue
            }
            tensors.append(CheckpointTensor(name: name, stored: info,
                                            storedRows: QKPermutation.rows(of: name, config: config, family: family, .ggufRowsForHF,
                                                                               storedRows: info.shape.first),
                                            addend: -CheckpointTensor.ggufAddend(name, family: family)))
        }
        try checkLayerCount(config, tensors: tensors, path: path, key: "\(family.traits.ggufArchitecture).block_count")
        return Checkpoint(path: path, format: .gguf, config: config, family: family, configJSON: nil,
                          tensors: unfused(tensors, config: config, family: family), unmappedTensors: unmapped, gguf: gguf, folder: nil,
                          safetensorsMetadata: [])
    }

    /// A fused tensor (Phi-3's `qkv_proj`, `gate_up_proj`) becomes row views of its parts,
    /// under the parts' HF names: the rest of the tool sees q, k, v, gate and up.
    static func unfused(_ tensors: [CheckpointTensor], config: ModelConfig, family: ModelFamily) -> [CheckpointTensor] {
        guard family.traits.fusesProjections else { return tensors }
        return tensors.flatMap { t -> [CheckpointTensor] in
            guard let layer = TensorLayout.layerIndex(of: t.name), t.storedRows == nil, t.shape.count == 2 else { return [t] }
            let prefix = TensorLayout.layerPrefix(layer)
            guard let fused = LayerTensors.fused.first(where: { prefix + $0.hfSuffix == t.name }) else { return [t] }
            let parts = fused.partRows(config, family: family)
            // A fused tensor of the wrong height stays whole; the integrity check names it.
            guard parts.last!.rows.upperBound == t.shape[0] else { return [t] }
            return parts.map { CheckpointTensor(name: prefix + $0.suffix, stored: t.stored, storedRows: Array($0.rows)) }
        }
    }
}

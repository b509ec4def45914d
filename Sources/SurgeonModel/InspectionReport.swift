import SurgeonFormats

/// Everything `inspect` shows about a checkpoint, as plain data (printed as text or JSON).
public struct InspectionReport: Codable, Sendable {
    public struct Tensor: Codable, Sendable {
        public let name: String
        /// The name in the file, where it differs (GGUF).
        public let storedName: String
        public let dtype: String
        public let shape: [Int]
        public let bytes: Int
        /// Absolute offset of the data in its file, and the file.
        public let offset: Int
        public let file: String
        /// XXH3-64 of the stored bytes, when asked for.
        public let xxh3: String?
        /// The decoder layer it belongs to.
        public let layer: Int?
    }

    public struct Tokenizer: Codable, Sendable {
        public let kind: String
        public let preTokenizer: String?
        public let vocabSize: Int
        public let merges: Int
        public let specialTokens: [String: String]
        public let hasChatTemplate: Bool
    }

    public struct Integrity: Codable, Sendable {
        public let ok: Bool
        public let problems: [String]
        public let unexpectedTensors: [String]
    }

    public let path: String
    public let format: String
    public let family: String
    public let config: ModelConfig
    public let parameterCount: Int
    public let bytesByDtype: [String: Int]
    public let tensors: [Tensor]
    public let tokenizer: Tokenizer?
    /// GGUF metadata (arrays summarised) or safetensors `__metadata__`.
    public let metadata: [String: String]
    public let integrity: Integrity

    public init(_ c: Checkpoint, hashes: Bool = false) throws {
        path = c.path
        format = c.format.rawValue
        family = c.family.rawValue
        config = c.config
        parameterCount = c.parameterCount
        var byType: [String: Int] = [:]
        for t in c.tensors { byType[t.dtype.ggmlName, default: 0] += t.byteCount }
        for t in c.unmappedTensors { byType[t.dtype.ggmlName, default: 0] += t.byteCount }
        bytesByDtype = byType
        var rows = c.orderedTensors.map { t in
            Tensor(name: t.name, storedName: t.stored.name, dtype: t.dtype.ggmlName, shape: t.shape, bytes: t.byteCount,
                   offset: t.stored.dataRange.lowerBound, file: t.stored.file.path,
                   xxh3: hashes ? t.stored.xxh3Hex() : nil, layer: TensorLayout.layerIndex(of: t.name))
        }
        rows += c.unmappedTensors.map { t in
            Tensor(name: t.name, storedName: t.name, dtype: t.dtype.ggmlName, shape: t.shape, bytes: t.byteCount,
                   offset: t.dataRange.lowerBound, file: t.file.path, xxh3: hashes ? t.xxh3Hex() : nil, layer: nil)
        }
        tensors = rows
        tokenizer = try Self.tokenizerSummary(c)
        if let gguf = c.gguf {
            metadata = Dictionary(gguf.metadata.map { ($0.key, Self.describe($0.value)) }, uniquingKeysWith: { a, _ in a })
        } else {
            metadata = Dictionary(c.safetensorsMetadata.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        }
        let problems = c.integrityProblems()
        integrity = Integrity(ok: problems.isEmpty, problems: problems, unexpectedTensors: c.unexpectedTensorNames())
    }

    /// A short text for a metadata value: arrays as their length and first items.
    public static func describe(_ v: GGUFValue) -> String {
        switch v {
        case .string(let s): return s
        case .array(let type, let items):
            let head = items.prefix(4).map(describe).joined(separator: ", ")
            return "[\(items.count) × \(type)]" + (items.isEmpty ? "" : " \(head)\(items.count > 4 ? ", …" : "")")
        case .bool(let b): return String(b)
        case .float32(let f): return String(describing: f)
        case .float64(let d): return String(describing: d)
        case .uint64(let u): return String(u)
        default: return v.int.map(String.init) ?? "?"
        }
    }

    static func tokenizerSummary(_ c: Checkpoint) throws -> Tokenizer? {
        if let gguf = c.gguf, let t = try GGUFTokenizer(gguf: gguf) {
            return Tokenizer(kind: t.model == "gpt2" ? "byte-level BPE (gpt2)" : t.model, preTokenizer: t.pre,
                             vocabSize: t.tokens.count, merges: t.merges.count, specialTokens: specialTokens(t),
                             hasChatTemplate: t.chatTemplate != nil)
        }
        guard let folder = c.folder, FilePath.exists(folder + "/tokenizer.json") else { return nil }
        // A tokenizer.json that is there but broken fails inspect as it fails every other
        // command; one of a kind we do not convert is only not summarised. It is padded to
        // the embedding rows the file holds, not to a size the config merely claims.
        let t: GGUFTokenizer
        do {
            t = try TokenizerFiles.ggufTokenizer(folder: folder, vocabSize: c.embeddingRows, configIds: c.config)
        } catch let error as FormatError where error.kind == .unsupported {
            return nil
        }
        return Tokenizer(kind: "byte-level BPE (tokenizer.json)", preTokenizer: t.pre,
                         vocabSize: t.tokenTypes.filter { $0 != .unused }.count, merges: t.merges.count,
                         specialTokens: specialTokens(t), hasChatTemplate: t.chatTemplate != nil)
    }

    static func specialTokens(_ t: GGUFTokenizer) -> [String: String] {
        var special: [String: String] = [:]
        for (k, id) in [("bos", t.bosId), ("eos", t.eosId), ("unk", t.unkId), ("pad", t.padId)] {
            if let token = t.token(id) { special[k] = token }
        }
        return special
    }
}

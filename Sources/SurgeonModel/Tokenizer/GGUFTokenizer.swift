import SurgeonFormats

/// The tokenizer a GGUF carries in its `tokenizer.ggml.*` keys, as plain values.
public struct GGUFTokenizer: Sendable {
    /// llama.cpp token types (llama.h `llama_token_type`).
    public enum TokenType: Int32, Sendable {
        case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public var model: String            // "gpt2" (byte-level BPE) or "llama" (SentencePiece)
    public var pre: String?             // pre-tokenizer name for gpt2 models
    public var tokens: [String]
    public var tokenTypes: [TokenType]
    public var merges: [String]         // "a b", by rank
    public var scores: [Float]?         // SentencePiece scores
    public var bosId: Int?, eosId: Int?, unkId: Int?, padId: Int?
    public var addBos: Bool?, addEos: Bool?, addSpacePrefix: Bool?
    public var chatTemplate: String?

    public init(model: String, pre: String?, tokens: [String], tokenTypes: [TokenType], merges: [String],
                scores: [Float]? = nil, bosId: Int? = nil, eosId: Int? = nil, unkId: Int? = nil, padId: Int? = nil,
                addBos: Bool? = nil, addEos: Bool? = nil, addSpacePrefix: Bool? = nil, chatTemplate: String? = nil) {
        self.model = model
        self.pre = pre
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.scores = scores
        self.bosId = bosId
        self.eosId = eosId
        self.unkId = unkId
        self.padId = padId
        self.addBos = addBos
        self.addEos = addEos
        self.addSpacePrefix = addSpacePrefix
        self.chatTemplate = chatTemplate
    }

    /// Reads the tokenizer keys; nil when the file has no tokenizer.
    public init?(gguf: GGUFFile) throws {
        guard let model = gguf["tokenizer.ggml.model"]?.string else { return nil }
        func strings(_ key: String) throws -> [String] {
            guard let value = gguf[key] else { return [] }
            guard let items = value.array, let strings = items.map(\.string) as? [String] else {
                throw FormatError(.invalidHeader, path: gguf.path, "\(key) is not an array of strings")
            }
            return strings
        }
        tokens = try strings("tokenizer.ggml.tokens")
        merges = try strings("tokenizer.ggml.merges")
        let types = gguf["tokenizer.ggml.token_type"]?.array?.map { $0.int ?? 1 } ?? []
        guard types.isEmpty || types.count == tokens.count else {
            throw FormatError(.invalidHeader, path: gguf.path,
                              "tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        tokenTypes = types.isEmpty ? Array(repeating: .normal, count: tokens.count)
                                   : types.map { TokenType(rawValue: Int32(clamping: $0)) ?? .normal }
        scores = gguf["tokenizer.ggml.scores"]?.array?.map { Float($0.double ?? 0) }
        self.model = model
        pre = gguf["tokenizer.ggml.pre"]?.string
        bosId = gguf["tokenizer.ggml.bos_token_id"]?.int
        eosId = gguf["tokenizer.ggml.eos_token_id"]?.int
        unkId = gguf["tokenizer.ggml.unknown_token_id"]?.int
        padId = gguf["tokenizer.ggml.padding_token_id"]?.int
        addBos = gguf["tokenizer.ggml.add_bos_token"]?.bool
        addEos = gguf["tokenizer.ggml.add_eos_token"]?.bool
        addSpacePrefix = gguf["tokenizer.ggml.add_space_prefix"]?.bool
        chatTemplate = gguf["tokenizer.chat_template"]?.string
    }

    /// The keys to write into a GGUF, in llama.cpp's order.
    public var metadata: [(key: String, value: GGUFValue)] {
        var kv: [(key: String, value: GGUFValue)] = [("tokenizer.ggml.model", .string(model))]
        if let pre { kv.append(("tokenizer.ggml.pre", .string(pre))) }
        kv.append(("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })))
        kv.append(("tokenizer.ggml.token_type", .array(.int32, tokenTypes.map { .int32($0.rawValue) })))
        if let scores { kv.append(("tokenizer.ggml.scores", .array(.float32, scores.map { .float32($0) }))) }
        if !merges.isEmpty { kv.append(("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))) }
        for (key, id) in [("bos_token_id", bosId), ("eos_token_id", eosId), ("unknown_token_id", unkId),
                          ("padding_token_id", padId)] {
            if let id { kv.append(("tokenizer.ggml.\(key)", .uint32(UInt32(id)))) }
        }
        for (key, flag) in [("add_space_prefix", addSpacePrefix), ("add_bos_token", addBos), ("add_eos_token", addEos)] {
            if let flag { kv.append(("tokenizer.ggml.\(key)", .bool(flag))) }
        }
        if let chatTemplate { kv.append(("tokenizer.chat_template", .string(chatTemplate))) }
        return kv
    }

    public func token(_ id: Int?) -> String? {
        guard let id, id >= 0, id < tokens.count else { return nil }
        return tokens[id]
    }
}

import Foundation
import SurgeonFormats

extension ModelConfig {
    /// The largest size a config may claim (README "Limits"): the product of two such
    /// sizes, a tensor's element count, never overflows.
    public static let maxDimension = Int(Int32.max)
    /// The most decoder layers a config may claim; the tensors present bound it further.
    public static let maxLayers = 1 << 16

    /// Refuses sizes no model can have, naming the key as the file spells it (`keyPrefix`
    /// set for GGUF, whose keys differ), before anything is sized by them.
    public func checkSizes(path: String, keyPrefix: String? = nil) throws {
        let gguf = keyPrefix != nil
        func key(_ hf: String, _ ggufKey: String) -> String { gguf ? keyPrefix! + ggufKey : hf }
        func check(_ value: Int, _ hf: String, _ ggufKey: String, from minimum: Int = 1, to maximum: Int = ModelConfig.maxDimension) throws {
            guard value < minimum || value > maximum else { return }
            throw FormatError(.invalidHeader, path: path, "\(key(hf, ggufKey)) is \(value) (must be \(minimum)…\(maximum))")
        }
        try check(hiddenSize, "hidden_size", "embedding_length")
        try check(intermediateSize, "intermediate_size", "feed_forward_length")
        try check(numHiddenLayers, "num_hidden_layers", "block_count", from: 0, to: Self.maxLayers)
        try check(numAttentionHeads, "num_attention_heads", "attention.head_count")
        try check(numKeyValueHeads, "num_key_value_heads", "attention.head_count_kv")
        try check(headDim, "head_dim", "attention.key_length")
        try check(vocabSize, "vocab_size", "vocab_size")
        try check(maxPositionEmbeddings, "max_position_embeddings", "context_length")
        if let slidingWindow { try check(slidingWindow, "sliding_window", "attention.sliding_window") }
        if let originalMaxPositionEmbeddings {
            try check(originalMaxPositionEmbeddings, "original_max_position_embeddings", "rope.scaling.original_context_length")
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw FormatError(.invalidHeader, path: path,
                              "\(key("num_attention_heads", "attention.head_count")) \(numAttentionHeads) is not a multiple of "
                              + "\(key("num_key_value_heads", "attention.head_count_kv")) \(numKeyValueHeads)")
        }
    }
}

/// What a `DecodingError` from `config.json` says, in the file's own terms: the key path,
/// what was expected there and what was found.
struct ConfigDecodingProblem: CustomStringConvertible {
    let description: String

    /// Integer keys, where corelibs Foundation reports a fraction or an overflow as
    /// "not valid JSON" with no key.
    private static let integerKeys = [
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "head_dim", "max_position_embeddings", "vocab_size", "sliding_window", "original_max_position_embeddings",
    ]

    /// The JSON's own syntax error with its byte offset, or the integer key that holds
    /// something else.
    private static func syntaxOrNumberProblem(_ json: Data) -> String {
        let parsed = Result { try json.withUnsafeBytes { try StrictJSONParser.parse($0) } }
        switch parsed {
        case .failure(let error):
            return "not valid JSON (\(error))"
        case .success(let value):
            let scopes = [("", value)] + (value["rope_scaling"].map { [("rope_scaling.", $0)] } ?? [])
            for (prefix, object) in scopes {
                for key in integerKeys {
                    guard let v = object[key], case .number(let text) = v else { continue }
                    switch v.integer {
                    case .value: continue
                    case .overflow: return "\(prefix)\(key) is \(text), too large for an integer"
                    case .notInteger: return "\(prefix)\(key) must be an integer, found \(text)"
                    }
                }
            }
            return "not valid JSON"
        }
    }

    init(_ error: DecodingError, json: Data) {
        func at(_ path: [CodingKey]) -> String {
            path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
                .replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = at(context.codingPath)
            description = "missing \"\(key.stringValue)\"" + (parent.isEmpty ? "" : " in \(parent)")
        case .typeMismatch(let type, let context) where context.codingPath.isEmpty:
            description = "expected \(Self.expected(type)) at the top level, found \(Self.found(context))"
        case .typeMismatch(let type, let context):
            description = "\(at(context.codingPath)) must be \(Self.expected(type)), found \(Self.found(context))"
        case .valueNotFound(let type, let context):
            description = "\(at(context.codingPath)) must be \(Self.expected(type)), found null"
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            description = Self.syntaxOrNumberProblem(json)
        case .dataCorrupted(let context):
            // Foundation says "Parsed JSON number <2.5> does not fit in Int."
            let number = context.debugDescription.firstMatch(of: /<(.*)>/).map { String($0.1) }
            description = "\(at(context.codingPath)) must be an integer" + (number.map { ", found \($0)" } ?? "")
        @unknown default:
            description = "\(error)"
        }
    }

    private static func expected(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is [Any].Type, is [String].Type, is [Int].Type, is [Double].Type: "a list"
        default: String(describing: type).hasPrefix("Array") ? "a list" : "an object"
        }
    }

    /// Foundation's "Expected to decode Int but found a string instead." → "a string".
    private static func found(_ context: DecodingError.Context) -> String {
        context.debugDescription.firstMatch(of: /found (.*) instead/).map { String($0.1) } ?? "another type"
    }
}

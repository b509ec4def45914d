import SurgeonFormats

/// The pre-tokenizer splits we know, by the name llama.cpp gives them in
/// `tokenizer.ggml.pre`, with the equivalent `tokenizers` configuration.
public enum PreTokenizerKind: String, Sendable, CaseIterable {
    /// GPT-2's byte-level regex.
    case gpt2 = "gpt-2"
    /// SmolLM/StarCoder: every digit alone, then GPT-2's byte-level regex.
    case smollm
    /// LLaMA-3: digits in runs of up to three, case-insensitive contractions.
    case llama3 = "llama-bpe"
    /// Qwen2: as LLaMA-3 but single digits.
    case qwen2

    public init?(ggufName: String) {
        switch ggufName {
        case "gpt-2", "gpt2", "default": self = .gpt2
        case "smollm": self = .smollm
        case "llama-bpe", "llama3": self = .llama3
        case "qwen2": self = .qwen2
        default: return nil
        }
    }

    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The `pre_tokenizer` object of tokenizer.json.
    var tokenizerJSON: String {
        let byteLevelRegex = #"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#
        let byteLevelPlain = #"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}"#
        func split(_ pattern: String) -> String {
            #"{"type":"Split","pattern":{"Regex":"# + jsonQuote(pattern) + #"},"behavior":"Isolated","invert":false}"#
        }
        switch self {
        case .gpt2: return byteLevelRegex
        case .smollm:
            return #"{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},"# + byteLevelRegex + "]}"
        case .llama3: return #"{"type":"Sequence","pretokenizers":["# + split(Self.llama3Pattern) + "," + byteLevelPlain + "]}"
        case .qwen2: return #"{"type":"Sequence","pretokenizers":["# + split(Self.qwen2Pattern) + "," + byteLevelPlain + "]}"
        }
    }

    /// Recognises a tokenizer.json `pre_tokenizer` (parsed with JSONSerialization).
    static func detect(_ pre: Any?) -> PreTokenizerKind? {
        guard let pre = pre as? [String: Any], let type = pre["type"] as? String else { return nil }
        if type == "ByteLevel" { return (pre["use_regex"] as? Bool ?? true) ? .gpt2 : nil }
        guard type == "Sequence", let parts = pre["pretokenizers"] as? [[String: Any]], parts.count == 2 else { return nil }
        let first = parts[0], second = parts[1]
        guard second["type"] as? String == "ByteLevel" else { return nil }
        if first["type"] as? String == "Digits", first["individual_digits"] as? Bool == true,
           second["use_regex"] as? Bool ?? true {
            return .smollm
        }
        if first["type"] as? String == "Split", let pattern = (first["pattern"] as? [String: Any])?["Regex"] as? String {
            if pattern == llama3Pattern { return .llama3 }
            if pattern == qwen2Pattern { return .qwen2 }
        }
        return nil
    }
}

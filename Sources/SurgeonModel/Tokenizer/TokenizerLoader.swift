import Foundation
import SurgeonFormats

/// Builds the tokenizer of a checkpoint: from GGUF tokenizer metadata, or from the HF
/// folder's tokenizer.json (with tokenizer_config.json for BOS/EOS policy).
public enum TokenizerLoader {
    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    public static func load(for checkpoint: Checkpoint) throws -> Tokenizer {
        if let gguf = checkpoint.gguf { return try load(gguf: gguf) }
        guard let folder = checkpoint.folder else {
            throw Unsupported(description: "\(checkpoint.path): no tokenizer (pass the HF folder, not a lone .safetensors)")
        }
        return try make(TokenizerFiles.ggufTokenizer(folder: folder, vocabSize: checkpoint.config.vocabSize,
                                                     configIds: checkpoint.config), path: folder + "/tokenizer.json")
    }

    /// The tokenizer alone: a GGUF (vocab-only files work) or an HF folder, whose
    /// config.json is used for the vocabulary size and special ids when present.
    public static func load(path: String) throws -> Tokenizer {
        if !FilePath.isDirectory(path) { return try load(gguf: GGUFFile(path: path)) }
        let config = try? Checkpoint.loadConfig(path + "/config.json").config
        return try make(TokenizerFiles.ggufTokenizer(folder: path, vocabSize: config?.vocabSize ?? 0, configIds: config),
                        path: path + "/tokenizer.json")
    }

    static func load(gguf: GGUFFile) throws -> Tokenizer {
        guard let t = try GGUFTokenizer(gguf: gguf) else {
            throw Unsupported(description: "\(gguf.path): no tokenizer metadata in this GGUF")
        }
        return try make(t, path: gguf.path)
    }

    /// A tokenizer from the GGUF-style description (either source is first put in this form).
    public static func make(_ t: GGUFTokenizer, path: String) throws -> Tokenizer {
        let added = t.tokenTypes.enumerated().compactMap { id, type in
            type == .control || type == .userDefined ? (content: t.tokens[id], id: id) : nil
        }
        switch t.model {
        case "gpt2":
            guard let pre = PreTokenizerKind(ggufName: t.pre ?? "default") else {
                throw Unsupported(description: "\(path): unknown pre-tokenizer \"\(t.pre ?? "")\"")
            }
            return try ByteLevelBPE(tokens: t.tokens, merges: t.merges, addedTokens: added, preTokenizer: pre,
                                    bosId: t.bosId, eosId: t.eosId, addsBos: t.addBos ?? false)
        case "llama":
            // Control tokens (<s>, </s>) are not matched inside text by llama.cpp's SPM path
            // unless asked; user-defined ones are.
            let userDefined = t.tokenTypes.enumerated().compactMap { id, type in
                type == .userDefined ? (content: t.tokens[id], id: id) : nil
            }
            return SentencePieceBPE(tokens: t.tokens, scores: t.scores ?? [], addedTokens: userDefined,
                                    bosId: t.bosId, eosId: t.eosId, addsBos: t.addBos ?? true,
                                    addSpacePrefix: t.addSpacePrefix ?? true)
        default:
            throw Unsupported(description: "\(path): tokenizer model \"\(t.model)\" is not supported (gpt2 and llama are)")
        }
    }
}

import Foundation
import SurgeonFormats

/// The Hugging Face tokenizer files (`tokenizer.json`, `tokenizer_config.json`,
/// `generation_config.json`) for a GGUF tokenizer, and the way back.
public enum TokenizerFiles {
    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    /// tokenizer.json for a byte-level BPE (`tokenizer.ggml.model` = gpt2) vocabulary.
    public static func tokenizerJSON(_ t: GGUFTokenizer) throws -> String {
        guard t.model == "gpt2" else {
            throw Unsupported(description: "tokenizer.json can only be rebuilt for byte-level BPE (gpt2) vocabularies, not \"\(t.model)\"")
        }
        let preName = t.pre ?? "default"
        guard let pre = PreTokenizerKind(ggufName: preName) else {
            throw Unsupported(description: "unknown pre-tokenizer \"\(preName)\"")
        }
        var added: [String] = []
        for (id, type) in t.tokenTypes.enumerated() where type == .control || type == .userDefined {
            let special = type == .control
            added.append(#"{"id":\#(id),"content":\#(jsonQuote(t.tokens[id])),"single_word":false,"lstrip":false,"rstrip":false,"normalized":\#(!special),"special":\#(special)}"#)
        }
        var vocab: [String] = []
        vocab.reserveCapacity(t.tokens.count)
        for (id, token) in t.tokens.enumerated() { vocab.append("\(jsonQuote(token)):\(id)") }
        let merges = t.merges.map(jsonQuote).joined(separator: ",")
        return """
        {"version":"1.0","truncation":null,"padding":null,"added_tokens":[\(added.joined(separator: ","))],\
        "normalizer":null,"pre_tokenizer":\(pre.tokenizerJSON),"post_processor":null,\
        "decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},\
        "model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,\
        "end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,\
        "vocab":{\(vocab.joined(separator: ","))},"merges":[\(merges)]}}
        """
    }

    /// tokenizer_config.json: special tokens by content, BOS/EOS policy, chat template.
    public static func tokenizerConfigJSON(_ t: GGUFTokenizer, modelMaxLength: Int) throws -> Data {
        var config: [String: Any] = [
            "add_bos_token": t.addBos ?? false,
            "add_eos_token": t.addEos ?? false,
            "clean_up_tokenization_spaces": false,
            "model_max_length": modelMaxLength,
            "tokenizer_class": "GPT2Tokenizer",
        ]
        for (key, id) in [("bos_token", t.bosId), ("eos_token", t.eosId), ("unk_token", t.unkId), ("pad_token", t.padId)] {
            if let token = t.token(id) { config[key] = token }
        }
        if let template = t.chatTemplate { config["chat_template"] = template }
        return try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
    }

    public static func generationConfigJSON(_ t: GGUFTokenizer) throws -> Data {
        var config: [String: Any] = ["_from_model_config": true]
        if let bos = t.bosId { config["bos_token_id"] = bos }
        if let eos = t.eosId { config["eos_token_id"] = eos }
        if let pad = t.padId { config["pad_token_id"] = pad }
        return try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
    }

    /// Throws when the folder's tokenizer.json is there but is not a tokenizer (not JSON,
    /// or no `model` object); whatever kind it is, it is otherwise taken as it is.
    /// Token ids must lie below `embeddingRows` or the number of entries.
    public static func checkTokenizerJSON(folder: String, embeddingRows: Int) throws {
        let path = folder + "/tokenizer.json"
        guard FilePath.exists(path) else { return }
        // The strict parser, not Foundation's: only the ids are needed here, and every
        // command on an HF folder pays for this check. On SmolLM2's 2 MB file Foundation's
        // parse and the boxing into [String: Any] took 65 ms, the strict parser 25 ms.
        let data = try tokenizerData(path)
        guard let json = try? data.withUnsafeBytes({ try StrictJSONParser.parse($0) }), let model = json["model"],
              model.object != nil else {
            throw FormatError(.invalidHeader, path: path, "invalid tokenizer.json: not a JSON object with a model")
        }
        func integer(_ value: JSONValue?) -> Int? { if case .value(let v) = value?.integer { v } else { nil } }
        var ids = (model["vocab"]?.object ?? []).compactMap { integer($0.value) }
        ids += (json["added_tokens"]?.array ?? []).compactMap { integer($0["id"]) }
        try checkIds(ids, entries: Set(ids).count, embeddingRows: embeddingRows, path: path)
    }

    /// The token table is sized by the largest id: one far past both the entries and the
    /// embedding rows is a broken file, not a reason to allocate gigabytes.
    private static func checkIds(_ ids: some Sequence<Int>, entries: Int, embeddingRows: Int, path: String) throws {
        let limit = max(embeddingRows, entries)
        if let bad = ids.first(where: { $0 < 0 || $0 >= limit }) {
            throw FormatError(.invalidHeader, path: path,
                              "invalid tokenizer.json: token id \(bad) is outside 0..<\(limit) (\(entries) tokens, \(embeddingRows) embedding rows)")
        }
    }

    private static func tokenizerData(_ path: String) throws -> Data {
        guard let data = FilePath.contents(path) else {
            throw FormatError(.io, path: path, FilePath.isRegularFile(path) ? "cannot read tokenizer.json" : "not a regular file")
        }
        return data
    }

    private static func tokenizerObject(_ path: String) throws -> (json: [String: Any], model: [String: Any]) {
        let data = try tokenizerData(path)
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let model = json["model"] as? [String: Any] else {
            throw FormatError(.invalidHeader, path: path, "invalid tokenizer.json: not a JSON object with a model")
        }
        return (json, model)
    }

    /// The GGUF tokenizer of an HF folder: vocabulary and merges from tokenizer.json,
    /// special tokens and flags from tokenizer_config.json, ids falling back to config.json.
    /// The vocabulary is padded to `vocabSize` (the embedding rows) when that is larger.
    public static func ggufTokenizer(folder: String, vocabSize: Int, configIds: ModelConfig?) throws -> GGUFTokenizer {
        let path = folder + "/tokenizer.json"
        guard FilePath.exists(path) else { throw FormatError(.io, path: path, "tokenizer.json not found") }
        let (json, model) = try tokenizerObject(path)
        guard model["type"] as? String == "BPE", let vocab = model["vocab"] as? [String: Int] else {
            throw FormatError(.unsupported, path: path, "only byte-level BPE tokenizers are converted to GGUF")
        }
        guard let pre = PreTokenizerKind.detect(json["pre_tokenizer"]) else {
            throw FormatError(.unsupported, path: path, "unrecognised pre_tokenizer (known: gpt-2, smollm, llama-bpe, qwen2)")
        }
        var byId: [Int: String] = [:]
        for (token, id) in vocab { byId[id] = token }
        var types: [Int: GGUFTokenizer.TokenType] = [:]
        for entry in json["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = entry["id"] as? Int, let content = entry["content"] as? String else { continue }
            byId[id] = content
            types[id] = (entry["special"] as? Bool ?? false) ? .control : .userDefined
        }
        try checkIds(byId.keys, entries: byId.count, embeddingRows: vocabSize, path: path)
        let count = max(vocabSize, (byId.keys.max() ?? -1) + 1)
        var tokens: [String] = []
        var tokenTypes: [GGUFTokenizer.TokenType] = []
        for id in 0..<count {
            // Embedding rows beyond the tokenizer's vocabulary get placeholder tokens,
            // as llama.cpp's converter writes them.
            tokens.append(byId[id] ?? "[PAD\(id)]")
            tokenTypes.append(byId[id] == nil ? .unused : types[id] ?? .normal)
        }
        let merges: [String] = (model["merges"] as? [Any] ?? []).compactMap { m in
            if let s = m as? String { return s }
            if let pair = m as? [String], pair.count == 2 { return pair[0] + " " + pair[1] }
            return nil
        }
        let tc = readJSONObject(folder + "/tokenizer_config.json")
        let idOf = { (key: String) -> Int? in
            (tc[key] as? String ?? (tc[key] as? [String: Any])?["content"] as? String).flatMap { content in
                vocab[content] ?? byId.first { $0.value == content }?.key
            }
        }
        return GGUFTokenizer(
            model: "gpt2", pre: pre.rawValue, tokens: tokens, tokenTypes: tokenTypes, merges: merges,
            bosId: idOf("bos_token") ?? configIds?.bosTokenId, eosId: idOf("eos_token") ?? configIds?.eosTokenIds.first,
            unkId: idOf("unk_token"), padId: idOf("pad_token"),
            addBos: tc["add_bos_token"] as? Bool ?? false, addEos: tc["add_eos_token"] as? Bool,
            addSpacePrefix: false, chatTemplate: tc["chat_template"] as? String)
    }

    static func readJSONObject(_ path: String) -> [String: Any] {
        guard let data = FilePath.contents(path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }
}

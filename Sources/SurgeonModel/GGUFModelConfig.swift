import SurgeonFormats

/// Reads a model's hyperparameters from GGUF metadata (`{arch}.*` keys) into the same
/// `ModelConfig` an HF `config.json` gives.
public enum GGUFModelConfig {
    public static func derive(from gguf: GGUFFile) throws -> (ModelConfig, ModelFamily) {
        let path = gguf.path
        guard let arch = gguf["general.architecture"]?.string else {
            throw FormatError(.invalidHeader, path: path, "missing general.architecture")
        }
        guard let family = ModelFamily(ggufArchitecture: arch) else {
            let supported = ModelFamily.ggufArchitectures.joined(separator: ", ")
            throw FormatError(.unsupported, path: path, "unsupported architecture \"\(arch)\" (supported: \(supported))")
        }
        func int(_ key: String) throws -> Int {
            guard let v = gguf["\(arch).\(key)"]?.int else {
                throw FormatError(.invalidHeader, path: path, "missing or non-integer \(arch).\(key)")
            }
            return v
        }
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let kvHeads = gguf["\(arch).attention.head_count_kv"]?.int ?? heads
        let headDim = gguf["\(arch).attention.key_length"]?.int
            ?? gguf["\(arch).rope.dimension_count"]?.int ?? hidden / max(heads, 1)
        let vocab = gguf["\(arch).vocab_size"]?.int ?? gguf["tokenizer.ggml.tokens"]?.array?.count
            ?? gguf.tensor(named: "token_embd.weight")?.shape.first ?? 0
        let eos = gguf["tokenizer.ggml.eos_token_id"]?.int
        let config = ModelConfig(
            modelType: family.rawValue,
            hiddenSize: hidden,
            intermediateSize: try int("feed_forward_length"),
            numHiddenLayers: try int("block_count"),
            numAttentionHeads: heads,
            numKeyValueHeads: kvHeads,
            headDim: headDim,
            rmsNormEps: gguf["\(arch).attention.layer_norm_rms_epsilon"]?.double.map(roundTripFloat) ?? 1e-6,
            ropeTheta: gguf["\(arch).rope.freq_base"]?.double.map(roundTripFloat) ?? 10000,
            ropeScaling: ropeScaling(gguf, arch: arch),
            maxPositionEmbeddings: gguf["\(arch).context_length"]?.int ?? 2048,
            vocabSize: vocab,
            tieWordEmbeddings: gguf.tensor(named: "output.weight") == nil,
            attentionBias: gguf.tensor(named: "blk.0.attn_output.bias") != nil,
            mlpBias: gguf.tensor(named: "blk.0.ffn_up.bias") != nil,
            bosTokenId: gguf["tokenizer.ggml.bos_token_id"]?.int,
            eosTokenIds: eos.map { [$0] } ?? [],
            torchDtype: nil)
        var withFamilyKeys = config
        if family.traits.slidingWindowOnEvenLayers {
            // llama.cpp's gemma2: tanh-GELU, head_dim^-½ attention scale, and these keys.
            withFamilyKeys.hiddenActivation = "gelu_pytorch_tanh"
            withFamilyKeys.slidingWindow = gguf["\(arch).attention.sliding_window"]?.int ?? 4096
            withFamilyKeys.attnLogitSoftcapping = gguf["\(arch).attn_logit_softcapping"]?.double.map(roundTripFloat)
            withFamilyKeys.finalLogitSoftcapping = gguf["\(arch).final_logit_softcapping"]?.double.map(roundTripFloat)
            withFamilyKeys.queryPreAttnScalar = Double(headDim)
            if let pattern = gguf["\(arch).attention.sliding_window_pattern"]?.array, pattern.count == config.numHiddenLayers {
                withFamilyKeys.layerTypes = pattern.map { $0.bool == true ? "sliding_attention" : "full_attention" }
            }
        }
        if family.traits.fusesProjections {
            withFamilyKeys.slidingWindow = gguf["\(arch).attention.sliding_window"]?.int.flatMap { $0 > 0 ? $0 : nil }
            if let long = factors(gguf, "rope_factors_long.weight"), let short = factors(gguf, "rope_factors_short.weight"),
               let original = gguf["\(arch).rope.scaling.original_context_length"]?.int {
                withFamilyKeys.originalMaxPositionEmbeddings = original
                withFamilyKeys.ropeScaling = RopeScaling(ropeType: "longrope", factor: nil)
                withFamilyKeys.ropeScaling?.shortFactor = short
                withFamilyKeys.ropeScaling?.longFactor = long
            }
        }
        try withFamilyKeys.checkSizes(path: path, keyPrefix: "\(arch).")
        return (withFamilyKeys, family)
    }

    /// An f32 vector tensor's values (longrope factors), as the shortest decimals.
    static func factors(_ gguf: GGUFFile, _ name: String) -> [Double]? {
        guard let t = gguf.tensor(named: name), t.dtype == .f32, t.shape.count == 1 else { return nil }
        return CheckpointTensor(name: name, stored: t).decodeF32().map { roundTripFloat(Double($0)) }
    }

    /// Linear and YaRN scaling are stored as keys; llama3 scaling only as a `rope_freqs`
    /// tensor, whose parameters cannot be recovered exactly, so it is not reconstructed.
    static func ropeScaling(_ gguf: GGUFFile, arch: String) -> RopeScaling? {
        guard let type = gguf["\(arch).rope.scaling.type"]?.string, type != "none",
              let factor = gguf["\(arch).rope.scaling.factor"]?.double else { return nil }
        return RopeScaling(ropeType: type, factor: factor,
                           originalMaxPositionEmbeddings: gguf["\(arch).rope.scaling.original_context_length"]?.int)
    }

    /// GGUF stores eps and theta as f32; print them as the shortest decimal that reads
    /// back to the same f32 (1e-05, not 9.999999747378752e-06), as HF configs have them.
    static func roundTripFloat(_ x: Double) -> Double {
        Double(String(describing: Float(x))) ?? x
    }
}

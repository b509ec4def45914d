import Foundation

/// The hyperparameters of a decoder-only model, as Hugging Face `config.json` spells them.
///
/// Optional keys get the defaults transformers applies, so the rest of the code never
/// deals with absent values. The original JSON is kept alongside (see `Checkpoint`) so
/// that a rewritten config preserves every key we do not model.
public struct ModelConfig: Codable, Sendable, Equatable {
    public var modelType: String
    public var architectures: [String]
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    public var maxPositionEmbeddings: Int
    public var vocabSize: Int
    public var tieWordEmbeddings: Bool
    /// LLaMA/Mistral `attention_bias`: q/k/v/o biases (Qwen2 always has q/k/v biases).
    public var attentionBias: Bool
    public var mlpBias: Bool
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]
    public var torchDtype: String?
    /// Gemma 2: the MLP's activation, attention scaled by query_pre_attn_scalar^-½ instead
    /// of head_dim^-½, tanh soft-capping of attention and final logits, sliding-window
    /// attention on the layers `layer_types` names (configs before transformers 4.53 lack
    /// it: then the even layers).
    public var hiddenActivation: String?
    public var queryPreAttnScalar: Double?
    public var slidingWindow: Int?
    public var attnLogitSoftcapping: Double?
    public var finalLogitSoftcapping: Double?
    public var layerTypes: [String]?
    /// Phi-3: the context the short `longrope` factors are for (a top-level key there).
    public var originalMaxPositionEmbeddings: Int?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", architectures
        case hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", headDim = "head_dim"
        case rmsNormEps = "rms_norm_eps", ropeTheta = "rope_theta", ropeScaling = "rope_scaling"
        case maxPositionEmbeddings = "max_position_embeddings", vocabSize = "vocab_size"
        case tieWordEmbeddings = "tie_word_embeddings", attentionBias = "attention_bias", mlpBias = "mlp_bias"
        case bosTokenId = "bos_token_id", eosTokenIds = "eos_token_id", torchDtype = "torch_dtype"
        case hiddenActivation = "hidden_activation", queryPreAttnScalar = "query_pre_attn_scalar"
        case slidingWindow = "sliding_window", attnLogitSoftcapping = "attn_logit_softcapping"
        case finalLogitSoftcapping = "final_logit_softcapping", layerTypes = "layer_types"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    }

    public init(modelType: String, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, numKeyValueHeads: Int, headDim: Int? = nil, rmsNormEps: Double,
                ropeTheta: Double, ropeScaling: RopeScaling? = nil, maxPositionEmbeddings: Int, vocabSize: Int,
                tieWordEmbeddings: Bool, attentionBias: Bool = false, mlpBias: Bool = false,
                bosTokenId: Int? = nil, eosTokenIds: [Int] = [], torchDtype: String? = nil,
                architectures: [String]? = nil) {
        self.modelType = modelType
        self.architectures = architectures ?? ModelFamily(modelType: modelType).map { [$0.hfClassName] } ?? []
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim ?? hiddenSize / max(numAttentionHeads, 1)
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.vocabSize = vocabSize
        self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias
        self.mlpBias = mlpBias
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        self.torchDtype = torchDtype
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decode(String.self, forKey: .modelType)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures) ?? []
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
        // Keys a family's config class defaults get that default when absent (an explicit
        // null stays null).
        let defaults = ModelFamily(modelType: modelType)?.traits.configDefaults ?? ConfigDefaults()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T?) -> T? {
            c.contains(key) ? (try? c.decodeIfPresent(T.self, forKey: key)) ?? nil : fallback
        }
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? defaults.headDim ?? hiddenSize / max(numAttentionHeads, 1)
        rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? 1e-6
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10000
        ropeScaling = try c.decodeIfPresent(RopeScaling.self, forKey: .ropeScaling)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        // Each family's config class has its own default (Gemma 2 ties).
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings)
            ?? ModelFamily(modelType: modelType)?.traits.tiesEmbeddingsByDefault ?? false
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false
        bosTokenId = try? c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        if let one = try? c.decodeIfPresent(Int.self, forKey: .eosTokenIds) {
            eosTokenIds = [one]
        } else {
            eosTokenIds = (try? c.decodeIfPresent([Int].self, forKey: .eosTokenIds)) ?? []
        }
        torchDtype = try c.decodeIfPresent(String.self, forKey: .torchDtype)
        hiddenActivation = value(.hiddenActivation, defaults.hiddenActivation)
        queryPreAttnScalar = value(.queryPreAttnScalar, defaults.queryPreAttnScalar)
        slidingWindow = value(.slidingWindow, defaults.slidingWindow)
        attnLogitSoftcapping = value(.attnLogitSoftcapping, defaults.attnLogitSoftcapping)
        finalLogitSoftcapping = value(.finalLogitSoftcapping, defaults.finalLogitSoftcapping)
        layerTypes = try? c.decodeIfPresent([String].self, forKey: .layerTypes)
        originalMaxPositionEmbeddings = value(.originalMaxPositionEmbeddings, defaults.originalMaxPositionEmbeddings)
    }

    /// Whether decoder layer `layer` attends within a sliding window (families that use one).
    public func isSlidingLayer(_ layer: Int) -> Bool {
        guard let family, family.traits.slidingWindowOnEvenLayers, slidingWindow != nil else { return false }
        if let layerTypes, layer < layerTypes.count { return layerTypes[layer] == "sliding_attention" }
        return layer % 2 == 0
    }

    public var kvGroupSize: Int { numAttentionHeads / max(numKeyValueHeads, 1) }
    public var family: ModelFamily? { ModelFamily(modelType: modelType) }
}

/// `rope_scaling`: LLaMA-3 style frequency scaling, or linear/dynamic/yarn factors.
public struct RopeScaling: Codable, Sendable, Equatable {
    public var ropeType: String
    public var factor: Double?
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    public var originalMaxPositionEmbeddings: Int?
    /// `longrope` (Phi-3): per-frequency divisors for short and long contexts, and the
    /// cos/sin scale (derived from the context extension when absent).
    public var shortFactor: [Double]?
    public var longFactor: [Double]?
    public var attentionFactor: Double?

    enum CodingKeys: String, CodingKey {
        case shortFactor = "short_factor", longFactor = "long_factor", attentionFactor = "attention_factor"
        case ropeType = "rope_type", type, factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    }

    public init(ropeType: String, factor: Double?, lowFreqFactor: Double? = nil, highFreqFactor: Double? = nil,
                originalMaxPositionEmbeddings: Int? = nil) {
        self.ropeType = ropeType
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // Older configs say "type", newer ones "rope_type".
        ropeType = try c.decodeIfPresent(String.self, forKey: .ropeType)
            ?? c.decodeIfPresent(String.self, forKey: .type) ?? "default"
        factor = try c.decodeIfPresent(Double.self, forKey: .factor)
        lowFreqFactor = try c.decodeIfPresent(Double.self, forKey: .lowFreqFactor)
        highFreqFactor = try c.decodeIfPresent(Double.self, forKey: .highFreqFactor)
        originalMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings)
        shortFactor = try c.decodeIfPresent([Double].self, forKey: .shortFactor)
        longFactor = try c.decodeIfPresent([Double].self, forKey: .longFactor)
        attentionFactor = try c.decodeIfPresent(Double.self, forKey: .attentionFactor)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ropeType, forKey: .ropeType)
        try c.encodeIfPresent(factor, forKey: .factor)
        try c.encodeIfPresent(lowFreqFactor, forKey: .lowFreqFactor)
        try c.encodeIfPresent(highFreqFactor, forKey: .highFreqFactor)
        try c.encodeIfPresent(originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
        try c.encodeIfPresent(shortFactor, forKey: .shortFactor)
        try c.encodeIfPresent(longFactor, forKey: .longFactor)
        try c.encodeIfPresent(attentionFactor, forKey: .attentionFactor)
    }
}

extension RopeScaling {
    /// `longrope`'s original context and cos/sin scale, as transformers derives them:
    /// factor = max_position_embeddings / original, scale √(1 + ln factor / ln original).
    public static func longropeContext(_ c: ModelConfig) -> (original: Int, attentionFactor: Double) {
        let original = c.originalMaxPositionEmbeddings ?? c.ropeScaling?.originalMaxPositionEmbeddings ?? c.maxPositionEmbeddings
        let factor = Double(c.maxPositionEmbeddings) / Double(original)
        let scale = c.ropeScaling?.attentionFactor ?? (factor <= 1 ? 1 : (1 + log(factor) / log(Double(original))).squareRoot())
        return (original, scale)
    }

    /// The divisor of each inverse frequency under llama3 scaling (1 for high
    /// frequencies, `factor` for low ones, smoothed between), as convert_hf_to_gguf.py
    /// computes llama.cpp's `rope_freqs` tensor; GGUF has no keys for these parameters.
    public func llama3FrequencyFactors(headDim: Int, theta: Double) -> [Float]? {
        guard ropeType == "llama3" else { return nil }
        let factor = self.factor ?? 8, low = lowFreqFactor ?? 1, high = highFreqFactor ?? 4
        let original = Double(originalMaxPositionEmbeddings ?? 8192)
        let lowWavelen = original / low, highWavelen = original / high
        return stride(from: 0, to: headDim, by: 2).map { i in
            let freq = Double(Float(1 / pow(theta, Double(i) / Double(headDim))))
            let wavelen = 2 * Double.pi / freq
            if wavelen < highWavelen { return 1 }
            if wavelen > lowWavelen { return Float(factor) }
            let smooth = (original / wavelen - low) / (high - low)
            return Float(1 / ((1 - smooth) / factor + smooth))
        }
    }
}

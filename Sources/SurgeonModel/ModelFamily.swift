/// The architectures we read, each described in its own file under `Families/`.
public enum ModelFamily: String, Sendable, CaseIterable, Codable {
    case llama, mistral, qwen2, qwen3, gemma2, phi3

    public init?(modelType: String) {
        self.init(rawValue: modelType)
    }

    public var traits: FamilyTraits {
        switch self {
        case .llama: .llama
        case .mistral: .mistral
        case .qwen2: .qwen2
        case .qwen3: .qwen3
        case .gemma2: .gemma2
        case .phi3: .phi3
        }
    }

    public var hfClassName: String { traits.hfClassName }
}

/// Every fact that distinguishes one family from another, in one record per family
/// (`Families/`). Code elsewhere asks the record, never the family's name.
public struct FamilyTraits: Sendable {
    /// `transformers` class in `architectures`.
    public let hfClassName: String
    /// `general.architecture` and the prefix of its keys in GGUF.
    public let ggufArchitecture: String
    /// LLaMA-arch GGUFs store q/k rows permuted for llama.cpp's adjacent-pair RoPE;
    /// NEOX-RoPE families (Qwen) do not (SPEC §2).
    public let ggufPermutesQK: Bool
    /// llama.cpp reads `{arch}.attention.key_length` even when head_dim is hidden / heads.
    public let ggufAlwaysWritesKeyLength: Bool
    /// q/k/v projections always carry biases (Qwen2); otherwise `attention_bias` decides.
    public let alwaysHasQKVBias: Bool
    /// Per-head RMSNorm on queries and keys, one weight of head_dim per layer (Qwen3).
    public let hasQKNorm: Bool
    /// RMSNorm weights are offsets: the norm multiplies by (1 + w) (Gemma).
    public var normWeightOffset: Float = 0
    /// The MLP's gate activation.
    public var activation: Activation = .silu
    /// Embeddings are multiplied by √hidden_size (Gemma).
    public var scalesEmbeddings = false
    /// Four norms per layer: after attention and after the MLP as well as before each
    /// (Gemma 2's `post_attention_layernorm` is the first of those).
    public var hasSandwichNorms = false
    /// Without `layer_types`, the even layers use the config's sliding window (Gemma 2).
    public var slidingWindowOnEvenLayers = false
    /// `tie_word_embeddings` when the config omits it.
    public var tiesEmbeddingsByDefault = false
    /// Checkpoints store q/k/v as one `qkv_proj` and gate/up as one `gate_up_proj`
    /// (Phi-3): `LayerTensors.fused`.
    public var fusesProjections = false
    /// What the family's transformers config class fills in for absent keys.
    public var configDefaults = ConfigDefaults()
    /// llama.cpp's converter stores norm weights as 1 + w (Gemma).
    public var ggufStoresNormPlusOne = false

    public enum Activation: Sendable { case silu, geluTanh }

    /// CoMe's defaults (SPEC §4): the exponent p of the BI-heuristic ratios and the
    /// minimum ratio ρ of the most important layer.
    public let comeP: Double
    public let comeRho: Double?
}

/// Config values a family's transformers config class defaults (absent keys get them).
public struct ConfigDefaults: Sendable {
    public var headDim: Int?
    public var hiddenActivation: String?
    public var queryPreAttnScalar: Double?
    public var slidingWindow: Int?
    public var attnLogitSoftcapping: Double?
    public var finalLogitSoftcapping: Double?
    public var originalMaxPositionEmbeddings: Int?
    public init() {}
}

extension ModelFamily {
    /// The family llama.cpp's architecture name `arch` is read as (Mistral and other LLaMA
    /// copies are stored as "llama": the first family claiming a name reads it).
    public init?(ggufArchitecture arch: String) {
        guard let family = Self.allCases.first(where: { $0.traits.ggufArchitecture == arch }) else { return nil }
        self = family
    }

    /// Architecture names GGUF inputs may carry.
    public static var ggufArchitectures: [String] {
        allCases.map(\.traits.ggufArchitecture).reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }
}

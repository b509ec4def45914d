/// The architectures we read, each described in its own file under `Families/`.
public enum ModelFamily: String, Sendable, CaseIterable, Codable {
    case llama, mistral, qwen2, qwen3

    public init?(modelType: String) {
        self.init(rawValue: modelType)
    }

    public var traits: FamilyTraits {
        switch self {
        case .llama: .llama
        case .mistral: .mistral
        case .qwen2: .qwen2
        case .qwen3: .qwen3
        }
    }

    public var hfClassName: String { traits.hfClassName }
}

/// What distinguishes one family's checkpoint from another's.
public struct FamilyTraits: Sendable {
    /// `transformers` class in `architectures`.
    public let hfClassName: String
    /// `general.architecture` and the prefix of its keys in GGUF.
    public let ggufArchitecture: String
    /// LLaMA-arch GGUFs store q/k rows permuted for llama.cpp's adjacent-pair RoPE;
    /// NEOX-RoPE families (Qwen) do not (SPEC §2).
    public let ggufPermutesQK: Bool
    /// q/k/v projections always carry biases (Qwen2); otherwise `attention_bias` decides.
    public let alwaysHasQKVBias: Bool
    /// Per-head RMSNorm on queries and keys, one weight of head_dim per layer (Qwen3).
    public let hasQKNorm: Bool
}

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
    /// CoMe's defaults (SPEC §4): the exponent p of the BI-heuristic ratios and the
    /// minimum ratio ρ of the most important layer.
    public let comeP: Double
    public let comeRho: Double?
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

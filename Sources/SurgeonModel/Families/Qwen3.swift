extension FamilyTraits {
    /// Qwen3: no q/k/v biases, per-head RMSNorm on q and k before RoPE, explicit head_dim
    /// (often not hidden_size / num_heads), NEOX RoPE.
    public static let qwen3 = FamilyTraits(
        hfClassName: "Qwen3ForCausalLM", ggufArchitecture: "qwen3",
        ggufPermutesQK: false, ggufAlwaysWritesKeyLength: true,
        alwaysHasQKVBias: false, hasQKNorm: true, comeP: 32, comeRho: 0.85)
}
